/**
 * `orders serve --processes N` (N > 1), with node:cluster: the primary. Loaded only then: with
 * one process `serve` runs no cluster code at all. The children's side, and the IPC messages both
 * sides share, are in serve-cluster-child.ts.
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
 * - /metrics: a scrape of any child answers every child's registry, summed by the primary
 *   (serve-cluster-metrics.ts).
 *
 * Known limit (node's round-robin): a connection the primary hands to a child in the very
 * instant it dies stays open unanswered until the client gives up; the next ones go elsewhere.
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { type Config, resolveAuth } from '../config.js';
import { UsageError } from '../platform/errors.js';
import { createLogger } from '../platform/logger.js';
import { isMessage, SLOT_ENV, type ToChild, type ToPrimary, WORKER_SLOT } from './serve-cluster-child.js';
import { createPrimaryMetrics } from './serve-cluster-metrics.js';

/** How long the primary waits for its children beyond their own shutdown bound before killing them. */
const STOP_MARGIN_MS = 5_000;
/** After a second signal: time for the children to exit at once before they are killed. */
const STOP_NOW_GRACE_MS = 2_000;
const RESTART_BACKOFF_BASE_MS = 250;
const RESTART_BACKOFF_MAX_MS = 8_000;
const CRASH_WINDOW_MS = 60_000;

export function isPrimary(): boolean {
  return cluster.isPrimary;
}

interface Slot {
  index: number;
  worker: Worker | undefined;
  /** It has sent `joined`: it hears shutdowns and answers metrics requests. */
  joined: boolean;
  /** Exit times of its unexpected exits, for the backoff and the crash budget. */
  crashes: number[];
  restartTimer: NodeJS.Timeout | undefined;
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
  const metrics = createPrimaryMetrics({ logger, live, send });

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
      case 'orders:metrics-collected':
        metrics.onMessage(worker, slot, message);
        return;
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
    metrics.settleCollections(worker);
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
