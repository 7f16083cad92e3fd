/**
 * `orders serve --processes N` (N > 1), with node:cluster. Loaded only then: with one process
 * `serve` runs no cluster code at all.
 *
 * The primary forks N children and serves nothing itself: no database pool, no route. (On Linux
 * it accepts connections and hands each to the next child, node's default round-robin; set
 * NODE_CLUSTER_SCHED_POLICY=none to let the kernel spread them instead.) Every child runs the
 * single-process serve. Process 1 alone runs the in-process worker (when WORKER_ENABLED), and a
 * replacement of process 1 takes it over.
 *
 * The primary supervises:
 * - a child that exits while nothing asked it to is forked again after a backoff that doubles
 *   with the crashes of its slot in the last minute; too many crashes in a minute (N + 5) stop
 *   every process and exit 1; a child exiting 2 (bad configuration), or failing before any
 *   process ever listened (the port is taken), stops everything at once with 2 or 1;
 * - SIGTERM/SIGINT is forwarded (over IPC) to every child, which drains exactly as one process
 *   does; the primary exits 0 when all exited 0, else 1, and kills what is still running after
 *   SHUTDOWN_DELAY_MS + SHUTDOWN_TIMEOUT_MS + STOP_MARGIN_MS. A second signal stops every child
 *   at once;
 * - /metrics: the child that got the scrape asks the primary, which collects every child's
 *   registry as JSON and sums them with prom-client's AggregatorRegistry.aggregate (each metric's
 *   `aggregator`: counters and histograms add up, see metrics.ts for the gauges). Not
 *   prom-client's clusterMetrics(): it asks every connected child, also one still starting that
 *   cannot answer yet (each scrape during a start or a restart would hang 5 s, then fail), with a
 *   fixed 5 s timeout, and keeps waiting for a child that died. Here only children that joined
 *   are asked, one that exits is left out, and a silent one fails the scrape after 3 s (503).
 *
 * A child whose primary disappears (SIGKILL, OOM) sees its IPC channel close and drains.
 * Known limit (node's round-robin): a connection the primary hands to a child in the very
 * instant it dies stays open unanswered until the client gives up; the next ones go elsewhere.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import { type Config, resolveAuth } from '../config.js';
import { UsageError } from '../platform/errors.js';
import { createLogger, type Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';

/** The primary answers a scrape within this, or the scrape fails (503) rather than count partially. */
const METRICS_COLLECT_TIMEOUT_MS = 3_000;
/** How long the primary waits for its children beyond their own shutdown bound before killing them. */
const STOP_MARGIN_MS = 5_000;
/** After a second signal: time for the children to exit at once before they are killed. */
const STOP_NOW_GRACE_MS = 2_000;
const RESTART_BACKOFF_BASE_MS = 250;
const RESTART_BACKOFF_MAX_MS = 8_000;
const CRASH_WINDOW_MS = 60_000;
/** Process 1 runs the in-process worker; its replacements inherit the role. */
const WORKER_SLOT = 1;

/** Set by the primary in each child's environment (internal: not configuration). */
const SLOT_ENV = 'ORDERS_SERVE_PROCESS';

type ToChild =
  | { type: 'orders:shutdown'; reason: string }
  | { type: 'orders:stop-now' }
  | { type: 'orders:metrics-collect'; id: number }
  | { type: 'orders:metrics-scraped'; id: number; text?: string; error?: string };

type ToPrimary =
  | { type: 'orders:joined' }
  | { type: 'orders:metrics-scrape'; id: number }
  | { type: 'orders:metrics-collected'; id: number; metrics?: object[]; error?: string };

function isMessage<T extends { type: string }>(message: unknown): message is T {
  return (
    typeof message === 'object' &&
    message !== null &&
    typeof (message as { type?: unknown }).type === 'string' &&
    (message as { type: string }).type.startsWith('orders:')
  );
}

export function isPrimary(): boolean {
  return cluster.isPrimary;
}

// ---------------------------------------------------------------------------------------------
// The child side

/** What a child of `serve --processes N` knows and does beyond a single-process serve. */
export interface ClusterChild {
  /** 1..N; stays the same for a replacement. */
  index: number;
  /** This process has the worker role (WORKER_ENABLED=false still turns the worker off). */
  runsWorker: boolean;
  /** Resolves when the primary asks for a drain, or disappears (then without the delay). */
  stopRequested: Promise<{ reason: string; primaryGone: boolean }>;
  /** Once the process has its logger and metrics: scrapes answer for every process. */
  attach(deps: { logger: Logger; metrics: Metrics }): void;
  /** After the drain: closes the IPC channel so the process can exit. */
  leave(): void;
}

/**
 * Called first thing in a child: listens to the primary before anything slow happens (a
 * shutdown asked during start-up is not lost), and says so, then the primary counts it in.
 */
export function joinCluster(env: NodeJS.ProcessEnv = process.env): ClusterChild {
  const index = Number(env[SLOT_ENV]);
  if (!Number.isInteger(index) || index < 1) {
    throw new Error(`${SLOT_ENV} is not set: a serve process must be forked by \`orders serve\``);
  }
  let logger: Logger | undefined;
  let metrics: Metrics | undefined;
  let leaving = false;
  let requestStop!: (why: { reason: string; primaryGone: boolean }) => void;
  const stopRequested = new Promise<{ reason: string; primaryGone: boolean }>((resolve) => {
    requestStop = resolve;
  });
  const scrapes = new Map<number, { resolve: (text: string) => void; reject: (error: Error) => void }>();
  let nextScrape = 0;

  const send = (message: ToPrimary) => {
    if (process.connected) process.send?.(message, undefined, {}, () => {});
  };

  process.on('message', (message: unknown) => {
    if (!isMessage<ToChild>(message)) return;
    switch (message.type) {
      case 'orders:shutdown':
        requestStop({ reason: `the primary asked (${message.reason})`, primaryGone: false });
        return;
      case 'orders:stop-now':
        logger?.warn('the primary received a second signal: exiting immediately');
        logger?.flush();
        process.exit(1);
        return;
      case 'orders:metrics-collect':
        (metrics ? metrics.registry.getMetricsAsJSON() : Promise.resolve([])).then(
          (json) => send({ type: 'orders:metrics-collected', id: message.id, metrics: json }),
          (error: Error) => send({ type: 'orders:metrics-collected', id: message.id, error: error.message }),
        );
        return;
      case 'orders:metrics-scraped': {
        const scrape = scrapes.get(message.id);
        scrapes.delete(message.id);
        if (message.text !== undefined) scrape?.resolve(message.text);
        else scrape?.reject(new Error(message.error ?? 'no metrics'));
        return;
      }
    }
  });

  // node's cluster child exits at once (code 0) when its channel closes unexpectedly. Marking
  // the disconnect as expected first lets this process drain instead: in-flight requests
  // finish and the worker releases its claimed events.
  process.prependListener('disconnect', () => {
    for (const scrape of scrapes.values()) scrape.reject(new Error('the primary process is gone'));
    scrapes.clear();
    if (leaving) return;
    if (cluster.worker) cluster.worker.exitedAfterDisconnect = true;
    logger?.warn('the primary process is gone: draining and exiting');
    requestStop({ reason: 'primary process gone', primaryGone: true });
  });

  /** A scrape: the primary collects every process's registry and answers the aggregate. */
  const scrapeAll = () =>
    new Promise<string>((resolve, reject) => {
      if (!process.connected) return reject(new Error('the primary process is gone'));
      const id = nextScrape++;
      const timer = setTimeout(() => {
        scrapes.delete(id);
        reject(new Error('the primary process did not answer the metrics request in time'));
      }, METRICS_COLLECT_TIMEOUT_MS + 1_000);
      scrapes.set(id, {
        resolve: (text) => {
          clearTimeout(timer);
          resolve(text);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      send({ type: 'orders:metrics-scrape', id });
    });

  send({ type: 'orders:joined' });
  return {
    index,
    runsWorker: index === WORKER_SLOT,
    stopRequested,
    attach(deps) {
      logger = deps.logger;
      metrics = deps.metrics;
      deps.metrics.aggregateAcrossProcesses(scrapeAll);
    },
    leave() {
      leaving = true;
      // Expected: node must not exit(0) at once on it, which would hide this process's exit code.
      if (cluster.worker) cluster.worker.exitedAfterDisconnect = true;
      if (process.connected) process.disconnect();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The primary

interface Slot {
  index: number;
  worker: Worker | undefined;
  /** It has sent `joined`: it hears shutdowns and answers metrics requests. */
  joined: boolean;
  /** Exit times of its unexpected exits, for the backoff and the crash budget. */
  crashes: number[];
  restartTimer: NodeJS.Timeout | undefined;
}

interface Collection {
  pending: Set<number>;
  results: object[];
  /** Why it cannot be summed, when a child answered with an error. */
  failed?: string;
  resolve: () => void;
}

/**
 * Refuses what cannot work before forking anything: the embedded database is one session in
 * one process, and a bad authentication setting would only make every child exit 2.
 */
export function checkClusterConfig(config: Config, processesFrom: '--processes' | 'SERVE_PROCESSES'): void {
  if (!config.DATABASE_URL) {
    const given =
      processesFrom === '--processes'
        ? `--processes ${config.SERVE_PROCESSES}`
        : `SERVE_PROCESSES=${config.SERVE_PROCESSES}`;
    throw new UsageError(
      `${given}: several serve processes need a PostgreSQL server (set DATABASE_URL). ` +
        'The embedded development database (DATABASE_URL unset) is a single session inside one process; ' +
        `run it with one process (${processesFrom === '--processes' ? '--processes 1' : 'SERVE_PROCESSES=1'}).`,
    );
  }
  resolveAuth(config);
}

export async function runPrimary(
  config: Config,
  options: { processesFrom: '--processes' | 'SERVE_PROCESSES' },
): Promise<number> {
  checkClusterConfig(config, options.processesFrom);
  const logger = createLogger(config.LOG_LEVEL).child({ pid: process.pid, primary: true });
  const count = config.SERVE_PROCESSES;
  const workerSlot = config.WORKER_ENABLED ? WORKER_SLOT : undefined;
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({
    index: i + 1,
    worker: undefined,
    joined: false,
    crashes: [],
    restartTimer: undefined,
  }));
  const collections = new Map<number, Collection>();
  let nextCollection = 0;
  let stopping = false;
  let stopReason = '';
  let exitCode = 0;
  let signals = 0;
  let forceTimer: NodeJS.Timeout | undefined;
  let announced = false;
  /** Children (cluster worker ids) that have listened: none yet means still starting up. */
  const listening = new Set<number>();
  let finish!: (code: number) => void;
  const finished = new Promise<number>((resolve) => {
    finish = resolve;
  });

  const send = (worker: Worker, message: ToChild) => {
    if (worker.isConnected()) worker.send(message, undefined, () => {});
  };
  const slotOf = (worker: Worker) => slots.find((s) => s.worker === worker);
  const live = () => slots.filter((s) => s.worker !== undefined);

  /** Every joined child's registry, aggregated; a child that exits meanwhile is left out. */
  async function collectMetrics(): Promise<string> {
    const asked = live().filter((s) => s.joined);
    const id = nextCollection++;
    const collection: Collection = {
      pending: new Set(asked.map((s) => s.worker!.id)),
      results: [],
      resolve: () => {},
    };
    const done = new Promise<void>((resolve) => {
      collection.resolve = resolve;
    });
    collections.set(id, collection);
    for (const slot of asked) send(slot.worker!, { type: 'orders:metrics-collect', id });
    if (collection.pending.size === 0) collection.resolve();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), METRICS_COLLECT_TIMEOUT_MS);
    });
    try {
      if (await Promise.race([done.then(() => false), timedOut])) {
        const silent = asked.filter((s) => collection.pending.has(s.worker?.id ?? -1)).map((s) => s.index);
        throw new Error(
          `serve process(es) ${silent.join(', ')} did not answer within ${METRICS_COLLECT_TIMEOUT_MS} ms`,
        );
      }
      if (collection.failed) throw new Error(collection.failed);
      return await AggregatorRegistry.aggregate(collection.results).metrics();
    } finally {
      clearTimeout(timer);
      collections.delete(id);
    }
  }

  function settleCollections(worker: Worker) {
    for (const collection of collections.values()) {
      if (collection.pending.delete(worker.id) && collection.pending.size === 0) collection.resolve();
    }
  }

  function onMessage(worker: Worker, message: unknown) {
    if (!isMessage<ToPrimary>(message)) return;
    const slot = slotOf(worker);
    switch (message.type) {
      case 'orders:joined':
        if (slot) slot.joined = true;
        // A child forked just before the signal could not hear it then.
        if (stopping) send(worker, { type: 'orders:shutdown', reason: stopReason });
        return;
      case 'orders:metrics-scrape':
        collectMetrics().then(
          (text) => send(worker, { type: 'orders:metrics-scraped', id: message.id, text }),
          (error: Error) => {
            logger.warn({ err: error }, 'cannot aggregate the serve processes’ metrics');
            send(worker, { type: 'orders:metrics-scraped', id: message.id, error: error.message });
          },
        );
        return;
      case 'orders:metrics-collected': {
        const collection = collections.get(message.id);
        if (!collection?.pending.delete(worker.id)) return;
        if (message.metrics) collection.results.push(message.metrics);
        // Without one process's numbers the sum would be wrong: the scrape fails instead.
        else collection.failed = `serve process ${slot?.index} could not read its metrics: ${message.error}`;
        if (collection.pending.size === 0) collection.resolve();
        return;
      }
    }
  }

  function fork(slot: Slot) {
    slot.restartTimer = undefined;
    slot.joined = false;
    const worker = cluster.fork({ [SLOT_ENV]: String(slot.index) });
    slot.worker = worker;
    worker.on('message', (message: unknown) => onMessage(worker, message));
    worker.on('exit', (code, signal) => onExit(slot, worker, code, signal));
  }

  function onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null) {
    if (slot.worker === worker) slot.worker = undefined;
    settleCollections(worker);
    const exit = { serveProcess: slot.index, childPid: worker.process.pid, code, signal };
    if (stopping) {
      if (code !== 0) exitCode = Math.max(exitCode, 1);
      logger.info(exit, `serve process ${slot.index} exited`);
      if (live().length === 0) finish(exitCode);
      return;
    }
    if (code === 2) {
      logger.error(
        exit,
        `serve process ${slot.index} refused its configuration (exit 2): stopping every process`,
      );
      stopAll('a serve process exited 2', 2);
      return;
    }
    // Before any process has ever listened, a failure is the start-up's (the port is taken, a
    // key cannot be read): every replacement would fail the same way.
    if (listening.size === 0) {
      logger.error(exit, `serve process ${slot.index} failed to start: stopping every process`);
      stopAll('a serve process failed to start', 1);
      return;
    }
    const now = Date.now();
    slot.crashes = slot.crashes.filter((t) => now - t < CRASH_WINDOW_MS);
    slot.crashes.push(now);
    const recent = slots.reduce(
      (sum, s) => sum + s.crashes.filter((t) => now - t < CRASH_WINDOW_MS).length,
      0,
    );
    if (recent > count + 5) {
      logger.error(
        { ...exit, crashesLastMinute: recent },
        'serve processes keep crashing: stopping every process and exiting 1',
      );
      stopAll('repeated crashes', 1);
      return;
    }
    const delayMs = Math.min(
      RESTART_BACKOFF_BASE_MS * 2 ** (slot.crashes.length - 1),
      RESTART_BACKOFF_MAX_MS,
    );
    logger.error(
      { ...exit, restartInMs: delayMs, worker: slot.index === workerSlot },
      `serve process ${slot.index} exited unexpectedly: starting a replacement` +
        (slot.index === workerSlot ? ' (it takes over the in-process worker)' : ''),
    );
    slot.restartTimer = setTimeout(() => fork(slot), delayMs);
  }

  function stopAll(reason: string, code: number) {
    exitCode = Math.max(exitCode, code);
    if (stopping) return;
    stopping = true;
    stopReason = reason;
    for (const slot of slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
    }
    const boundMs = config.SHUTDOWN_DELAY_MS + config.SHUTDOWN_TIMEOUT_MS + STOP_MARGIN_MS;
    logger.info({ reason, processes: live().length, boundMs }, 'stopping every serve process');
    for (const slot of live()) {
      // One not yet joined hears it when it joins (see onMessage).
      if (slot.joined) send(slot.worker!, { type: 'orders:shutdown', reason });
    }
    forceTimer = setTimeout(() => killRemaining('shutdown bound passed'), boundMs);
    if (live().length === 0) finish(exitCode);
  }

  function killRemaining(why: string) {
    const remaining = live();
    if (remaining.length === 0) return;
    exitCode = Math.max(exitCode, 1);
    logger.error(
      { processes: remaining.map((s) => s.index) },
      `${why}: killing the serve processes still running`,
    );
    for (const slot of remaining) slot.worker!.process.kill('SIGKILL');
  }

  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, 'shutdown signal received: every serve process drains');
      stopAll(signal, 0);
      return;
    }
    logger.warn({ signal }, 'second signal: stopping every serve process immediately');
    exitCode = Math.max(exitCode, 1);
    for (const slot of live()) {
      if (slot.joined) send(slot.worker!, { type: 'orders:stop-now' });
      else slot.worker!.process.kill('SIGKILL');
    }
    clearTimeout(forceTimer);
    forceTimer = setTimeout(() => killRemaining('second signal'), STOP_NOW_GRACE_MS);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  // Announced once, when every first-generation child listens (a replacement logs its own line).
  cluster.on('listening', (worker, address) => {
    listening.add(worker.id);
    if (announced || stopping || live().some((s) => !listening.has(s.worker!.id))) return;
    announced = true;
    const runner = workerSlot === undefined ? undefined : slots[workerSlot - 1]!.worker;
    logger.info(
      {
        processes: count,
        port: address.port,
        host: config.HOST,
        workerProcess: workerSlot ?? null,
        workerPid: runner?.process.pid ?? null,
      },
      'orders serve listening',
    );
  });

  logger.info(
    { processes: count, port: config.PORT, host: config.HOST, workerProcess: workerSlot ?? null },
    workerSlot === undefined
      ? `starting ${count} serve processes; none runs the in-process worker (WORKER_ENABLED=false)`
      : `starting ${count} serve processes; process ${workerSlot} runs the in-process worker`,
  );
  if (count > availableParallelism()) {
    logger.warn(
      { processes: count, cpus: availableParallelism() },
      'more serve processes than CPUs: they only compete for the same cores',
    );
  }
  for (const slot of slots) fork(slot);

  const code = await finished;
  clearTimeout(forceTimer);
  process.off('SIGTERM', onSignal);
  process.off('SIGINT', onSignal);
  cluster.removeAllListeners('listening');
  logger.info({ exitCode: code }, 'every serve process has exited');
  logger.flush();
  return code;
}
