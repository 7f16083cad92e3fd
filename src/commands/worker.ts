/**
 * `orders worker`: the event worker alone (any number of replicas may run at once), with its own
 * `/healthz`, `/readyz` and `/metrics` on WORKER_PORT. `/readyz` also answers 503 while the claim
 * loop is stalled (a claim hanging on a dead connection, or failing), so a stuck pod shows.
 *
 * Shutdown (first SIGTERM/SIGINT): /readyz turns 503, the worker stops claiming, finishes its
 * running events or releases them (bounded by SHUTDOWN_TIMEOUT_MS), the pool closes, exit 0.
 * A second signal exits at once. There is no SHUTDOWN_DELAY_MS wait: no load balancer sends the
 * worker traffic that would need to drain.
 */
import { loadConfig, resolveSimulation } from '../config.js';
import { createInProcessSimulator } from '../messaging/partner-simulator.js';
import { createWorker } from '../worker/index.js';
import { workerOptionsFromConfig } from '../worker/options.js';
import { closeProbeServer, createProbeServer, listenProbeServer } from '../worker/probe-server.js';
import { createProcessRuntime, openServices, runToCompletion } from './runtime.js';

export async function run(): Promise<number> {
  const config = loadConfig();
  const runtime = createProcessRuntime(config);
  const { logger, resources, shutdownSignal } = runtime;

  return runToCompletion(runtime, async () => {
    const { db, telemetry, metrics, readiness } = await openServices(config, runtime, {
      allowEmbedded: false,
      command: 'worker',
      applicationName: 'orders-worker',
    });

    // SIMULATE_PARTNERS (off by default here: DATABASE_URL is set): answers each new order.
    const simulation = resolveSimulation(config);
    const partners = simulation.enabled
      ? createInProcessSimulator(simulation, {
          natsUrl: config.NATS_URL,
          logger,
          receive: (message, options) => worker.receive(message, options),
        })
      : undefined;
    if (partners) resources.push('partner simulation', () => partners.stop());
    const worker = createWorker({
      db,
      logger,
      metrics,
      telemetry,
      options: workerOptionsFromConfig(config),
      partners,
    });
    const status = { shuttingDown: false };
    const server = createProbeServer({
      logger,
      metrics,
      isShuttingDown: () => status.shuttingDown,
      readiness,
      stalled: () => worker.stalled(),
    });
    await listenProbeServer(server, config.WORKER_PORT, config.HOST);
    resources.push('probe server', () => closeProbeServer(server));

    await worker.start();
    logger.info(
      { port: config.WORKER_PORT, host: config.HOST, workerId: worker.id },
      'orders worker running',
    );

    const signal = await shutdownSignal;
    status.shuttingDown = true;
    logger.info(
      { signal, timeoutMs: config.SHUTDOWN_TIMEOUT_MS },
      'readiness is now 503; draining the worker',
    );
    await worker.stop({ timeoutMs: config.SHUTDOWN_TIMEOUT_MS });
  });
}
