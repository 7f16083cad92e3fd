/**
 * buildApp(deps) → a FastifyInstance that never listens by itself. The process (commands/serve)
 * owns listening and shutdown; tests build the same app and use app.inject.
 *
 * Registration order is behaviour: hooks of one kind run in the order they were added, and the
 * OpenAPI document only sees routes registered after it. Each plugin in plugins/ names the ones
 * it must follow. Their per-request hooks are callback-style: no promise per hook per request
 * (measured: +16% on GET).
 */
import Fastify, { type FastifyInstance, type FastifyServerOptions, LogController } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { OrdersService } from '../orders/service.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { disabledTelemetry, type Telemetry } from '../platform/telemetry.js';
import { accessLog, requestId } from './plugins/access-log.js';
import { jsonBody } from './plugins/json-body.js';
import { loadShedding } from './plugins/load-shedding.js';
import { openApi } from './plugins/openapi.js';
import { clientErrorHandler, frameworkErrors, problemErrors } from './plugins/problem-errors.js';
import { requestDeadline } from './plugins/request-deadline.js';
import { tracing } from './plugins/tracing.js';
import { zodSchemas } from './plugins/zod-schemas.js';
import { docsRoutes } from './routes/docs.js';
import { healthRoutes } from './routes/health.js';
import { orderRoutes } from './routes/orders.js';

const BODY_LIMIT = 1024 * 1024;

/** Shared with the process: shutdown flips these, the app reads them. */
export interface Lifecycle {
  /** True from the first shutdown signal on: /readyz answers 503. */
  shuttingDown: boolean;
  /** True once the listener closed: responses carry `Connection: close`. */
  draining: boolean;
}

export interface AppDeps {
  logger: Logger;
  orders: OrdersService;
  metrics: Metrics;
  lifecycle: Lifecycle;
  /** Resolves true when the database answers and the schema is current. */
  readiness: (signal: AbortSignal) => Promise<boolean>;
  requestTimeoutMs: number;
  idempotencyTtlHours: number;
  /** Tracing; off when absent. */
  telemetry?: Telemetry | undefined;
  /** Load shedding thresholds; off in tests unless given. */
  underPressure?: { maxEventLoopDelayMs: number } | undefined;
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const options: FastifyServerOptions = {
    loggerInstance: deps.logger,
    // The access log writes one line per request (with route, status and duration).
    logController: new LogController({ disableRequestLogging: true, requestIdLogLabel: 'requestId' }),
    genReqId: requestId,
    bodyLimit: BODY_LIMIT,
    frameworkErrors,
    clientErrorHandler,
    // Shutdown is the process's: it keeps serving while it drains (commands/serve).
    return503OnClosing: false,
    forceCloseConnections: false,
  };
  const app = Fastify(options).withTypeProvider<ZodTypeProvider>();

  await app.register(zodSchemas);
  await app.register(jsonBody);
  await app.register(requestDeadline, { timeoutMs: deps.requestTimeoutMs });
  await app.register(tracing, { telemetry: deps.telemetry ?? disabledTelemetry() });
  await app.register(accessLog, { metrics: deps.metrics, lifecycle: deps.lifecycle });
  await app.register(problemErrors);
  if (deps.underPressure) await app.register(loadShedding, deps.underPressure);
  await app.register(openApi, { idempotencyTtlHours: deps.idempotencyTtlHours });

  await app.register(healthRoutes, deps);
  await app.register(orderRoutes, deps);
  await app.register(docsRoutes);

  return app;
}
