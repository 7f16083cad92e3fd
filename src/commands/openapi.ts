/** `orders openapi [--format json|yaml]`: the same document the server serves at /openapi.json. */
import { stringify } from 'yaml';
import { loadConfig } from '../config.js';
import type { OrdersService } from '../orders/service.js';
import { createLogger } from '../platform/logger.js';
import { createMetrics } from '../platform/metrics.js';
import { buildApp } from '../server/app.js';

export async function run(options: { format: 'json' | 'yaml' }): Promise<number> {
  const document = await buildOpenApiDocument(loadConfig().IDEMPOTENCY_TTL_HOURS);
  process.stdout.write(
    options.format === 'yaml' ? stringify(document) : `${JSON.stringify(document, null, 2)}\n`,
  );
  return 0;
}

/** Builds the app without any database (nothing is queried to describe the API). */
export async function buildOpenApiDocument(idempotencyTtlHours: number): Promise<unknown> {
  const unused = () => Promise.reject(new Error('no database while rendering the OpenAPI document'));
  const app = await buildApp({
    logger: createLogger('silent'),
    orders: {
      create: unused,
      get: unused,
      getRepresentation: unused,
      listEvents: unused,
      command: unused,
      list: unused,
    } as OrdersService,
    metrics: createMetrics({ defaultMetrics: false }),
    lifecycle: { shuttingDown: false, draining: false },
    readiness: async () => false,
    requestTimeoutMs: 1000,
    idempotencyTtlHours,
  });
  await app.ready();
  const document = app.swagger();
  await app.close();
  return document;
}
