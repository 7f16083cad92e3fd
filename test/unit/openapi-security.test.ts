/**
 * The OpenAPI document's security, as Redocly's `security-defined` and Spectral's `oas3` rules
 * read it (both run clean by hand: see DESIGN.md), checked here on every build: every operation
 * says how it is authenticated, the /orders operations list their scopes and describe 401 and 403.
 */
import { describe, expect, it } from 'vitest';
import { OPERATION_SCOPES } from '../../src/auth/policy.js';
import { buildOpenApiDocument } from '../../src/commands/openapi.js';

type Operation = {
  operationId?: string;
  security?: Record<string, string[]>[];
  responses: Record<string, { headers?: Record<string, unknown> }>;
};
type Document = {
  servers?: { url: string }[];
  components: { securitySchemes?: Record<string, { type: string; scheme?: string; bearerFormat?: string }> };
  paths: Record<string, Record<string, Operation>>;
};

const doc = (await buildOpenApiDocument(24)) as Document;
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
    for (const { path, operation } of operations) {
      if (!path.startsWith('/orders')) {
        expect(operation.security).toEqual([]);
        continue;
      }
      const scopes = operation.security!.flatMap((requirement) => requirement.bearerAuth ?? []);
      const expected = path === '/orders' ? OPERATION_SCOPES.create : OPERATION_SCOPES.read;
      expect(scopes).toEqual([...expected]);
      for (const status of ['401', '403']) {
        expect(operation.responses[status]?.headers?.['WWW-Authenticate'], `${path} ${status}`).toBeDefined();
      }
    }
  });
});
