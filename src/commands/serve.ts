/**
 * `orders serve`: the HTTP API, plus the event worker unless --no-worker.
 *
 * Shutdown (first SIGTERM/SIGINT): /readyz turns 503 and responses say `Connection: close`
 * while requests are still served for SHUTDOWN_DELAY_MS (load balancers notice); then the
 * listener closes, in-flight requests and the worker's current events finish (bounded by
 * SHUTDOWN_TIMEOUT_MS), the pool closes, exit 0. A second signal exits at once.
 *
 * `--processes N` / SERVE_PROCESSES > 1: serve-cluster.ts runs N of these processes on one
 * port under a primary (serve-cluster-child.ts is their side); with 1 (the default) nothing of
 * it is loaded.
 */
import { startTokenVerifier } from '../auth/index.js';
import { type Config, loadConfig, resolveAuth, resolveSimulation } from '../config.js';
import type { PartnerSimulator } from '../messaging/partner-simulator.js';
import { createOrdersService } from '../orders/service.js';
import { createDb } from '../platform/db.js';
import { sleep, within } from '../platform/shutdown.js';
import { buildApp, type Lifecycle } from '../server/app.js';
import { IDLE_CONNECTION_GRACE_MS, trackConnections } from '../server/connections.js';
import { createAuthentication } from '../server/plugins/authentication.js';
import { workerOptionsFromConfig } from '../worker/options.js';
import { createProcessRuntime, openServices, runToCompletion } from './runtime.js';
import type { ClusterChild } from './serve-cluster-child.js';

/** Connections of the in-process worker's own pool, on top of DB_POOL_MAX. */
const WORKER_POOL_MAX = 3;

export interface ServeFlags {
  port?: number;
  host?: string;
  worker?: boolean;
  processes?: number;
}

export async function run(flags: ServeFlags): Promise<number> {
  const config = loadConfig(undefined, {
    PORT: flags.port === undefined ? undefined : String(flags.port),
    HOST: flags.host,
    WORKER_ENABLED: flags.worker === false ? 'false' : undefined,
    SERVE_PROCESSES: flags.processes === undefined ? undefined : String(flags.processes),
  });
  if (config.SERVE_PROCESSES === 1) return serveProcess(config);
  // Several processes: this is either their primary (serve-cluster.ts) or one of them
  // (serve-cluster-child.ts).
  const cluster = await import('./serve-cluster.js');
  if (!cluster.isPrimary()) {
    const { joinCluster } = await import('./serve-cluster-child.js');
    return serveProcess(config, joinCluster());
  }
  return cluster.runPrimary(config, {
    processesFrom: flags.processes === undefined ? 'SERVE_PROCESSES' : '--processes',
  });
}

/** One serve process: the whole service, or (`cluster` given) one of `--processes N`. */
async function serveProcess(config: Config, cluster?: ClusterChild): Promise<number> {
  try {
    return await serveUntilDrained(
      cluster && !cluster.runsWorker ? { ...config, WORKER_ENABLED: false } : config,
      cluster,
    );
  } finally {
    cluster?.leave();
  }
}

async function serveUntilDrained(config: Config, cluster: ClusterChild | undefined): Promise<number> {
  const auth = resolveAuth(config);
  const runtime = createProcessRuntime(
    config,
    cluster ? { logBindings: { serveProcess: cluster.index, pid: process.pid } } : {},
  );
  const { logger, resources } = runtime;
  const lifecycle: Lifecycle = { shuttingDown: false, draining: false };
  // In a cluster the primary forwards signals over IPC; a child also drains when it is gone.
  const stopRequested = cluster
    ? Promise.race([
        runtime.shutdownSignal.then((signal) => ({ reason: signal, primaryGone: false })),
        cluster.stopRequested,
      ])
    : runtime.shutdownSignal.then((signal) => ({ reason: signal, primaryGone: false }));

  return runToCompletion(runtime, async () => {
    const { db, url, embedded, telemetry, metrics, readiness } = await openServices(config, runtime, {
      allowEmbedded: true,
      command: 'serve',
      applicationName: 'orders-serve',
    });
    cluster?.attach({ logger, metrics });

    // The worker's few statements must not queue behind HTTP requests for the shared pool
    // (measured: p50 delivery 1.3 s and growing at 2,000 orders/s, 26 ms with its own three
    // connections). PGlite is one session: there the worker shares its single connection.
    let workerDb = db;
    if (config.WORKER_ENABLED && !embedded) {
      workerDb = createDb({
        connectionString: url,
        max: WORKER_POOL_MAX,
        logger,
        applicationName: 'orders-serve-worker',
        telemetry,
      });
      resources.push('worker database pool', () => workerDb.close());
    }
    // SIMULATE_PARTNERS: the worker's OrderCreated handling schedules Catalog's and Payments' answers.
    const simulation = resolveSimulation(config);
    const partners: PartnerSimulator | undefined =
      config.WORKER_ENABLED && simulation.enabled
        ? (await import('../messaging/partner-simulator.js')).createInProcessSimulator(simulation, {
            natsUrl: config.NATS_URL,
            logger,
            receive: (message, options) => worker!.receive(message, options),
          })
        : undefined;
    if (partners) resources.push('partner simulation', () => partners.stop());
    const worker = config.WORKER_ENABLED
      ? (await import('../worker/index.js')).createWorker({
          db: workerDb,
          logger,
          metrics,
          options: workerOptionsFromConfig(config),
          telemetry,
          partners,
        })
      : undefined;
    const orders = createOrdersService({
      db,
      idempotencyTtlHours: config.IDEMPOTENCY_TTL_HOURS,
      onEventCommitted: worker ? (id) => worker.wake(id) : undefined,
      preClaim: worker ? () => worker.preClaim() : undefined,
    });

    if (auth.mode === 'none') {
      logger.warn(
        'AUTH_MODE=none: /orders answers without authentication. Only for development, or behind a ' +
          'gateway that authenticates; set AUTH_MODE=jwt with AUTH_ISSUER and AUTH_AUDIENCE otherwise.',
      );
    }
    const verifier = auth.mode === 'jwt' ? await startTokenVerifier(auth, logger) : undefined;

    const app = await buildApp({
      auth: createAuthentication({ verifier, metrics }),
      telemetry,
      logger,
      orders,
      metrics,
      lifecycle,
      requestTimeoutMs: config.REQUEST_TIMEOUT_MS,
      idempotencyTtlHours: config.IDEMPOTENCY_TTL_HOURS,
      underPressure: { maxEventLoopDelayMs: 1_000 },
      readiness,
    });
    const connections = trackConnections(app.server);
    await app.listen({ port: config.PORT, host: config.HOST });
    logger.info(
      { port: config.PORT, host: config.HOST, embedded, worker: Boolean(worker) },
      'orders serve listening',
    );
    if (worker) await worker.start();

    const stop = await stopRequested;
    lifecycle.shuttingDown = true;
    // Without its primary a child gets no new connections: the delay would only wait.
    const delayMs = stop.primaryGone ? 0 : config.SHUTDOWN_DELAY_MS;
    logger.info({ signal: stop.reason, delayMs }, 'readiness is now 503; still serving during the delay');
    await sleep(delayMs);
    // Only now ask clients to close: during the delay they keep their keep-alive connections
    // (opening new ones would only race the listener's close).
    lifecycle.draining = true;
    const stopSweep = connections.drainGently(IDLE_CONNECTION_GRACE_MS);
    const drained = await within(
      config.SHUTDOWN_TIMEOUT_MS,
      Promise.all([app.close(), worker?.stop({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS })]),
    );
    stopSweep();
    if (!drained) {
      logger.warn(
        { timeoutMs: config.SHUTDOWN_TIMEOUT_MS, openConnections: connections.open },
        'shutdown timeout passed: closing remaining connections',
      );
      connections.closeAll();
    }
  });
}
