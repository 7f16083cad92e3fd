/**
 * The probes and metrics of `orders worker` on WORKER_PORT: /healthz, /readyz (503 problem+json
 * when the database fails, while the claim loop is stalled, and from the moment shutdown begins)
 * and /metrics.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { httpStatus, JSON_CONTENT_TYPE, PROBLEM_CONTENT_TYPE, problemBody } from '../platform/problem.js';
import { notReady } from '../platform/readiness.js';

export interface ProbeServerDeps {
  logger: Logger;
  metrics: Metrics;
  isShuttingDown: () => boolean;
  /** True when the database answers and the schema is current. */
  readiness: (signal: AbortSignal) => Promise<boolean>;
  /** Why the worker cannot deliver although the database answers (see Worker.stalled). */
  stalled?: () => string | undefined;
}

/** The worker's probes and metrics on a bare node:http server (no framework needed for three routes). */
export function createProbeServer(deps: ProbeServerDeps): Server {
  const server = createServer((request, response) => {
    handle(deps, request, response).catch((error: unknown) => {
      deps.logger.error({ err: error }, 'probe request failed');
      if (!response.headersSent)
        sendProblem(response, new AppError('internal', 'An unexpected error occurred.'), '');
      else response.destroy();
    });
  });
  // Probes are tiny; a stuck client must not hold a socket for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  return server;
}

async function handle(deps: ProbeServerDeps, request: IncomingMessage, response: ServerResponse) {
  const path = (request.url ?? '/').split('?')[0] ?? '/';
  if (deps.isShuttingDown()) response.setHeader('connection', 'close');
  if (!['/healthz', '/readyz', '/metrics'].includes(path)) {
    return sendProblem(
      response,
      new AppError('not_found', `No route ${path}. Try /healthz, /readyz or /metrics.`),
      path,
    );
  }
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.setHeader('allow', 'GET, HEAD');
    response.writeHead(405, { 'content-type': JSON_CONTENT_TYPE });
    response.end(JSON.stringify({ status: 405, detail: `Use GET ${path}.` }));
    return;
  }
  if (path === '/healthz') return send(response, 200, JSON_CONTENT_TYPE, '{"status":"ok"}');
  if (path === '/metrics') {
    const body = await deps.metrics.registry.metrics();
    return send(response, 200, deps.metrics.registry.contentType, body);
  }
  const problem = await notReady(deps.readiness, {
    shuttingDown: deps.isShuttingDown(),
    logger: deps.logger,
    process: 'worker',
    stalled: deps.stalled?.(),
  });
  if (problem) return sendProblem(response, problem, path);
  return send(response, 200, JSON_CONTENT_TYPE, '{"status":"ready"}');
}

function send(response: ServerResponse, status: number, contentType: string, body: string) {
  response.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
  response.end(response.req.method === 'HEAD' ? undefined : body);
}

function sendProblem(response: ServerResponse, error: AppError, instance: string) {
  if (error.retryAfterSeconds !== undefined)
    response.setHeader('retry-after', String(error.retryAfterSeconds));
  send(response, httpStatus(error.code), PROBLEM_CONTENT_TYPE, JSON.stringify(problemBody(error, instance)));
}

/** Listens on host:port; a port taken or forbidden is reported with the variable that sets it. */
export function listenProbeServer(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        error.code === 'EADDRINUSE' || error.code === 'EACCES'
          ? new Error(`cannot listen on ${host}:${port}: ${error.message}. Set WORKER_PORT to a free port.`, {
              cause: error,
            })
          : error,
      );
    });
    server.listen(port, host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
}

/** Closes the server, ending idle keep-alive connections now and any others after a second. */
export function closeProbeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Keep-alive connections (a Prometheus scraper) would hold close() open.
    server.closeIdleConnections();
    setTimeout(() => server.closeAllConnections(), 1_000).unref();
  });
}
