/**
 * The worker's options, resolved once by the command that starts it. The worker itself never
 * reads the configuration: what it needs from the environment arrives here, as plain options.
 */
import { hostname } from 'node:os';
import { DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX } from '../messaging/events.js';
import { uuidv7 } from '../platform/uuid.js';

export interface WorkerOptions {
  /** Written to `locked_by`; unique per worker (default host:pid:random). */
  workerId: string;
  /** Handlers running at once (WORKER_CONCURRENCY). */
  concurrency: number;
  /** Events claimed per statement (WORKER_BATCH_SIZE). */
  batchSize: number;
  /** Attempts before an event is dead-lettered (WORKER_MAX_ATTEMPTS). */
  maxAttempts: number;
  /** Retry delays of failed events (WORKER_BACKOFF_BASE_MS, WORKER_BACKOFF_MAX_MS). */
  backoff: { baseMs: number; maxMs: number };
  /** Share of simulated notification sends that fail (NOTIFY_FAILURE_RATE). */
  notifyFailureRate: number;
  /** Events are also published to NATS JetStream here (NATS_URL); undefined: not published. */
  natsUrl: string | undefined;
  /**
   * How long a claim is valid without renewal. The heartbeat renews held events' leases every
   * heartbeatMs, so this bounds how long a crashed worker's events wait, not how long a handler
   * may run.
   */
  leaseMs: number;
  /** Time between lease renewals: a quarter of the lease. */
  heartbeatMs: number;
  /** A handler running longer is aborted and its event retried (independent of the lease). */
  handlerTimeoutMs: number;
  /** The backstop poll interval while events keep coming. */
  pollIntervalMs: number;
  /** Idle polls slow down (×2 per empty poll) up to this. */
  maxIdlePollIntervalMs: number;
  /** Claim failures (database down) back off up to this. */
  maxErrorBackoffMs: number;
  /** Wake-ups arriving within this window after a claim round wait and share the next round. */
  wakeCoalesceMs: number;
  /**
   * The claim loop counts as stalled (the worker's /readyz answers 503) when it has wanted a
   * round this long without completing one: a claim hanging on a dead connection, or failing.
   */
  stallAfterMs: number;
  /** Processed events older than this are purged with their notifications. */
  retentionMs: number;
  /** Time between housekeeping runs; 0 disables housekeeping. */
  housekeepingIntervalMs: number;
  housekeepingBatchSize: number;
  /** Wake-ups held at most by the in-process queue; more are dropped (the poller finds them). */
  queueCapacity: number;
  /** JetStream stream and subject prefix (injectable so test runs do not collide). */
  natsStream: string;
  natsSubjectPrefix: string;
  /** Consuming Catalog's and Payments' events (with natsUrl). */
  inbound: InboundOptions;
}

export interface InboundOptions {
  /** Consume when natsUrl is set (default true; tests of publishing alone turn it off). */
  enabled: boolean;
  /** The durable consumer's ack wait: how long a crashed worker's messages wait (contract: 15 s). */
  ackWaitMs: number;
  /** Only tests set these: consumed subjects and created streams carry them, so runs never meet. */
  subjectPrefix: string;
  streamSuffix: string;
}

/**
 * The part of the configuration the worker depends on. A structural type rather than an import
 * of src/config.ts: only commands read the configuration, and the worker does not depend on it.
 */
export interface WorkerSettings {
  WORKER_CONCURRENCY: number;
  WORKER_BATCH_SIZE: number;
  WORKER_MAX_ATTEMPTS: number;
  WORKER_BACKOFF_BASE_MS: number;
  WORKER_BACKOFF_MAX_MS: number;
  NOTIFY_FAILURE_RATE: number;
  NATS_URL?: string | undefined;
}

const DAY_MS = 86_400_000;

/**
 * Short, because it is what a crashed worker's events wait: with the heartbeat every 2 s a live
 * worker keeps its events as long as its handlers run (River's and Oban's time-based rescuers
 * default to an hour, as they cannot tell a slow job from a dead worker).
 */
export const DEFAULT_LEASE_MS = 8_000;

export function defaultWorkerId(): string {
  return `${hostname()}:${process.pid}:${uuidv7().slice(-8)}`;
}

export type WorkerOverrides = Partial<Omit<WorkerOptions, 'inbound'>> & { inbound?: Partial<InboundOptions> };

/**
 * The options from the configuration, with `overrides` (tests, the in-process worker) on top.
 * Throws a RangeError when the timings cannot work together.
 */
export function workerOptionsFromConfig(
  settings: WorkerSettings,
  overrides: WorkerOverrides = {},
): WorkerOptions {
  const leaseMs = overrides.leaseMs ?? DEFAULT_LEASE_MS;
  const pollIntervalMs = overrides.pollIntervalMs ?? 1_000;
  const maxIdlePollIntervalMs = overrides.maxIdlePollIntervalMs ?? Math.max(2_000, pollIntervalMs);
  const options: WorkerOptions = {
    workerId: overrides.workerId ?? defaultWorkerId(),
    concurrency: overrides.concurrency ?? settings.WORKER_CONCURRENCY,
    batchSize: overrides.batchSize ?? settings.WORKER_BATCH_SIZE,
    maxAttempts: overrides.maxAttempts ?? settings.WORKER_MAX_ATTEMPTS,
    backoff: overrides.backoff ?? {
      baseMs: settings.WORKER_BACKOFF_BASE_MS,
      maxMs: settings.WORKER_BACKOFF_MAX_MS,
    },
    notifyFailureRate: overrides.notifyFailureRate ?? settings.NOTIFY_FAILURE_RATE,
    natsUrl: overrides.natsUrl ?? settings.NATS_URL,
    leaseMs,
    heartbeatMs: overrides.heartbeatMs ?? leaseMs / 4,
    handlerTimeoutMs: overrides.handlerTimeoutMs ?? 30_000,
    pollIntervalMs,
    maxIdlePollIntervalMs,
    maxErrorBackoffMs: overrides.maxErrorBackoffMs ?? 30_000,
    wakeCoalesceMs: overrides.wakeCoalesceMs ?? 5,
    stallAfterMs: overrides.stallAfterMs ?? Math.max(3 * maxIdlePollIntervalMs, 30_000),
    retentionMs: overrides.retentionMs ?? 7 * DAY_MS,
    housekeepingIntervalMs: overrides.housekeepingIntervalMs ?? 60_000,
    housekeepingBatchSize: overrides.housekeepingBatchSize ?? 1_000,
    queueCapacity: overrides.queueCapacity ?? 10_000,
    natsStream: overrides.natsStream ?? DEFAULT_STREAM,
    natsSubjectPrefix: overrides.natsSubjectPrefix ?? DEFAULT_SUBJECT_PREFIX,
    inbound: {
      enabled: true,
      ackWaitMs: 15_000,
      subjectPrefix: '',
      streamSuffix: '',
      ...overrides.inbound,
    },
  };
  if (!(options.handlerTimeoutMs > 0)) throw new RangeError('handlerTimeoutMs must be positive');
  if (!(options.heartbeatMs > 0 && options.heartbeatMs * 3 <= options.leaseMs)) {
    throw new RangeError(
      'heartbeatMs must be positive and at most a third of leaseMs (a lease survives a failed renewal)',
    );
  }
  if (!(options.inbound.ackWaitMs >= 1_000)) throw new RangeError('inbound.ackWaitMs must be at least 1 s');
  if (!(options.pollIntervalMs > 0) || options.maxIdlePollIntervalMs < options.pollIntervalMs) {
    throw new RangeError('pollIntervalMs must be positive and at most maxIdlePollIntervalMs');
  }
  return options;
}
