/**
 * `orders serve --processes N`: the child side (serve-cluster.ts is the primary). What a forked
 * serve process adds to the single-process serve: joinCluster() reads its slot (1..N, kept by a
 * replacement) and whether it has the in-process worker's role, then listens to the primary: a
 * shutdown request starts the usual drain, a stop-now (the primary's second signal) exits at
 * once, and the `orders:metrics-*` messages go to serve-cluster-metrics.ts.
 *
 * A child whose primary disappears (SIGKILL, OOM) sees its IPC channel close and drains.
 *
 * This file also holds what both sides share: the IPC messages, the slot's environment variable
 * and the worker's slot. The primary imports them from here; nothing here imports the primary.
 */
import cluster from 'node:cluster';
import type { Logger } from '../platform/logger.js';
import type { Metrics } from '../platform/metrics.js';
import { createChildMetrics, type MetricsToChild, type MetricsToPrimary } from './serve-cluster-metrics.js';

// ---------------------------------------------------------------------------------------------
// Shared with the primary

/** Process 1 runs the in-process worker; its replacements inherit the role. */
export const WORKER_SLOT = 1;

/** Set by the primary in each child's environment (internal: not configuration). */
export const SLOT_ENV = 'ORDERS_SERVE_PROCESS';

export type ToChild =
  | { type: 'orders:shutdown'; reason: string }
  | { type: 'orders:stop-now' }
  | MetricsToChild;

export type ToPrimary = { type: 'orders:joined' } | MetricsToPrimary;

export function isMessage<T extends { type: string }>(message: unknown): message is T {
  return (
    typeof message === 'object' &&
    message !== null &&
    typeof (message as { type?: unknown }).type === 'string' &&
    (message as { type: string }).type.startsWith('orders:')
  );
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
  let leaving = false;
  let requestStop!: (why: { reason: string; primaryGone: boolean }) => void;
  const stopRequested = new Promise<{ reason: string; primaryGone: boolean }>((resolve) => {
    requestStop = resolve;
  });

  const send = (message: ToPrimary) => {
    if (process.connected) process.send?.(message, undefined, {}, () => {});
  };
  const metrics = createChildMetrics(send);

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
      case 'orders:metrics-scraped':
        metrics.onMessage(message);
        return;
    }
  });

  // node's cluster child exits at once (code 0) when its channel closes unexpectedly. Marking
  // the disconnect as expected first lets this process drain instead: in-flight requests
  // finish and the worker releases its claimed events.
  process.prependListener('disconnect', () => {
    metrics.primaryGone();
    if (leaving) return;
    if (cluster.worker) cluster.worker.exitedAfterDisconnect = true;
    logger?.warn('the primary process is gone: draining and exiting');
    requestStop({ reason: 'primary process gone', primaryGone: true });
  });

  send({ type: 'orders:joined' });
  return {
    index,
    runsWorker: index === WORKER_SLOT,
    stopRequested,
    attach(deps) {
      logger = deps.logger;
      metrics.attach(deps.metrics);
    },
    leave() {
      leaving = true;
      // Expected: node must not exit(0) at once on it, which would hide this process's exit code.
      if (cluster.worker) cluster.worker.exitedAfterDisconnect = true;
      if (process.connected) process.disconnect();
    },
  };
}
