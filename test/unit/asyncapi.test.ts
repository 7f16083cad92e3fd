/**
 * The AsyncAPI document: valid AsyncAPI 3.0 by the reference parser (@asyncapi/parser: schema
 * validation and its ruleset; no diagnostic of severity error), naming every published and consumed
 * event on its subject, with a send or receive operation each and the contract's payload schemas.
 */
import { DiagnosticSeverity, Parser } from '@asyncapi/parser';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { buildOpenApiDocument } from '../../src/commands/openapi.js';
import { buildAsyncApiDocument } from '../../src/messaging/asyncapi.js';
import { CONSUMED_EVENTS, PUBLISHED_EVENTS } from '../../src/messaging/events.js';
import type { OrdersService } from '../../src/orders/service.js';
import { createLogger } from '../../src/platform/logger.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { buildApp } from '../../src/server/app.js';

const published = Object.keys(PUBLISHED_EVENTS);
const consumed = Object.keys(CONSUMED_EVENTS) as (keyof typeof CONSUMED_EVENTS)[];

describe('AsyncAPI document', () => {
  const document = buildAsyncApiDocument();
  let parsed: Awaited<ReturnType<Parser['parse']>>;

  beforeAll(async () => {
    parsed = await new Parser().parse(JSON.stringify(document));
  });

  it('parses with no errors', () => {
    const errors = parsed.diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
    expect(errors.map((d) => `${d.path.join('.')}: ${d.message}`)).toEqual([]);
    expect(parsed.document).toBeDefined();
    expect(parsed.document!.version()).toBe('3.0.0');
    // Not even a warning (the one hint is that AsyncAPI 3.1 exists).
    expect(parsed.diagnostics.filter((d) => d.severity === DiagnosticSeverity.Warning)).toEqual([]);
  });

  it('the parser check catches a broken document (so the test above can fail)', async () => {
    const broken = structuredClone(document);
    (broken.operations.sendOrderCreated as { channel: unknown }).channel = { $ref: '#/channels/Nope' };
    const result = await new Parser().parse(JSON.stringify(broken));
    expect(result.diagnostics.some((d) => d.severity === DiagnosticSeverity.Error)).toBe(true);
  });

  it('names every published event with a send operation on orders.events.<type>', () => {
    const doc = parsed.document!;
    for (const type of published) {
      const channel = doc.channels().get(type);
      expect(channel?.address()).toBe(`orders.events.${type}`);
      const operation = doc.operations().get(`send${type}`);
      expect(operation?.action()).toBe('send');
      expect(
        operation
          ?.messages()
          .all()
          .map((m) => m.name()),
      ).toEqual([type]);
    }
    expect(doc.operations().filterBySend()).toHaveLength(published.length);
  });

  it('names every consumed event with a receive operation on its subject', () => {
    const doc = parsed.document!;
    for (const type of consumed) {
      expect(doc.channels().get(type)?.address()).toBe(CONSUMED_EVENTS[type].subject);
      expect(doc.operations().get(`receive${type}`)?.action()).toBe('receive');
    }
    expect(doc.operations().filterByReceive()).toHaveLength(consumed.length);
  });

  it('describes each message as a CloudEvent whose data is the contract schema', () => {
    const doc = parsed.document!;
    const created = doc.messages().get('OrderCreated')!;
    expect(created.contentType()).toBe('application/cloudevents+json');
    const payload = created.payload()!;
    expect(payload.properties()!.type!.const()).toBe('OrderCreated');
    expect(payload.properties()!.specversion!.const()).toBe('1.0');
    const order = payload.properties()!.data!;
    expect(order.required()).toEqual(
      expect.arrayContaining(['id', 'status', 'total', 'version', 'stock', 'payment']),
    );
    expect(order.properties()!.status!.enum()).toEqual(['pending', 'confirmed', 'cancelled', 'shipped']);
    const captured = doc.messages().get('PaymentCaptured')!.payload()!.properties()!.data!;
    expect(captured.required()).toEqual(['orderId', 'paymentId', 'amount', 'currency']);
    expect(captured.properties()!.amount!.type()).toBe('integer');
    // The order schema is defined once and referenced by every published event.
    expect(Object.keys(document.components.schemas)).toContain('Order');
  });

  it('survives YAML (what `orders asyncapi --format yaml` prints) unchanged', async () => {
    const { stringify } = await import('yaml');
    expect(parseYaml(stringify(document))).toEqual(document);
  });

  it('is served at GET /asyncapi.json without a token, and listed in the OpenAPI document as open', async () => {
    const app = await buildApp({
      logger: createLogger('silent'),
      orders: {} as OrdersService,
      metrics: createMetrics({ defaultMetrics: false }),
      lifecycle: { shuttingDown: false, draining: false },
      readiness: async () => true,
      requestTimeoutMs: 1000,
      idempotencyTtlHours: 24,
    });
    try {
      const response = await app.inject({ method: 'GET', url: '/asyncapi.json' });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toMatch(/^application\/json/);
      expect(response.json()).toEqual(document);
    } finally {
      await app.close();
    }
    const openapi = (await buildOpenApiDocument(24)) as {
      paths: Record<string, { get?: { operationId?: string; security?: unknown[] } }>;
    };
    expect(openapi.paths['/asyncapi.json']?.get).toMatchObject({ operationId: 'getAsyncApi', security: [] });
  });
});
