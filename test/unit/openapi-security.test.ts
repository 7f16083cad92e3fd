/**
 * The OpenAPI document's security, as Redocly's `security-defined` and Spectral's `oas3` rules
 * read it (both run clean by hand: see DESIGN.md), checked here on every build: every operation
 * says how it is authenticated, the /orders operations list their scopes and describe 401 and 403.
 */
import { describe, expect, it } from 'vitest';
import { OPERATION_SCOPES, type Operation as PolicyOperation } from '../../src/auth/policy.js';
import { buildOpenApiDocument } from '../../src/commands/openapi.js';

type Operation = {
  operationId?: string;
  security?: Record<string, string[]>[];
  responses: Record<string, { headers?: Record<string, unknown> }>;
  requestBody?: { required?: boolean };
};
type Document = {
  servers?: { url: string }[];
  components: { securitySchemes?: Record<string, { type: string; scheme?: string; bearerFormat?: string }> };
  paths: Record<string, Record<string, Operation>>;
};

const doc = (await buildOpenApiDocument(24)) as Document;

/** Every /orders operation and the policy operation whose scopes it lists. */
const EXPECTED_OPERATION: Record<string, PolicyOperation> = {
  createOrder: 'create',
  getOrder: 'read',
  listOrderEvents: 'read',
  listOrders: 'list',
  cancelOrder: 'cancel',
  shipOrder: 'ship',
};
const operations = Object.entries(doc.paths).flatMap(([path, methods]) =>
  Object.entries(methods).map(([method, operation]) => ({ path, method, operation })),
);

describe('OpenAPI security', () => {
  it('declares an http bearer JWT scheme and a server', () => {
    expect(doc.components.securitySchemes?.bearerAuth).toMatchObject({
      type: 'http',
      scheme: 'bearer',
      bearerFormat: 'JWT',
    });
    expect(doc.servers?.length).toBeGreaterThan(0);
  });

  it('gives every operation a security requirement and an operationId', () => {
    for (const { path, method, operation } of operations) {
      expect({ path, method, security: Array.isArray(operation.security) }).toEqual({
        path,
        method,
        security: true,
      });
      expect(operation.operationId, `${method} ${path}`).toMatch(/^[a-z][A-Za-z]+$/);
    }
  });

  it('opens health, readiness and metrics (security: []) and secures every /orders operation with its scopes', () => {
    for (const { path, method, operation } of operations) {
      if (!path.startsWith('/orders')) {
        expect(operation.security).toEqual([]);
        continue;
      }
      const scopes = operation.security!.flatMap((requirement) => requirement.bearerAuth ?? []);
      const expected = EXPECTED_OPERATION[operation.operationId ?? ''];
      expect(expected, `${method} ${path}: an /orders operation missing from the table`).toBeDefined();
      expect(scopes, operation.operationId).toEqual([...OPERATION_SCOPES[expected!]]);
      for (const status of ['401', '403']) {
        expect(operation.responses[status]?.headers?.['WWW-Authenticate'], `${path} ${status}`).toBeDefined();
      }
    }
  });

  it('lists every /orders operation with the answers the contract gives it', () => {
    const ids = operations.filter((o) => o.path.startsWith('/orders')).map((o) => o.operation.operationId);
    expect(ids.sort()).toEqual(Object.keys(EXPECTED_OPERATION).sort());
    const byId = Object.fromEntries(operations.map((o) => [o.operation.operationId, o.operation]));
    const statuses = (id: string) => Object.keys(byId[id]!.responses);
    for (const id of ['cancelOrder', 'shipOrder']) {
      expect(statuses(id)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '404', '409', '412']));
      expect(byId[id]!.responses['200']?.headers?.ETag, id).toBeDefined();
      expect(byId[id]!.requestBody?.required, `${id}: the body is optional`).toBe(false);
    }
    expect(statuses('getOrder')).toEqual(expect.arrayContaining(['200', '304', '404']));
    expect(byId.getOrder!.responses['200']?.headers?.ETag).toBeDefined();
    expect(byId.getOrder!.responses['304']?.headers?.ETag).toBeDefined();
    expect(byId.createOrder!.responses['201']?.headers?.ETag).toBeDefined();
    expect(statuses('listOrders')).toEqual(expect.arrayContaining(['200', '400', '401', '403']));
    expect(byId.listOrders!.responses['200']?.headers?.Link).toBeDefined();
  });
});
