/**
 * The claimer decides when to claim outbox events and holds what it claimed until the executor
 * has a free slot (the part graphile-worker's LocalQueue plays). Claims are leases taken with
 * `FOR UPDATE SKIP LOCKED` by status (see messaging/outbox), in batches of `batchSize`, so any
 * number of workers and replicas share the table safely.
 *
 * Two triggers start a claim round: a wake-up (the server pushed a committed event id into the
 * in-process queue) and a backstop poller (every pollIntervalMs, slowing down while idle, and
 * never sleeping past the next known due time). Triggers coalesce: however many wake-ups arrive
 * during a round, they cause one more round, which claims their ids together.
 *
 * The claim loop's modes (every change goes through `enter`, against the TRANSITIONS table):
 * - starting: created; start() not called yet.
 * - waiting: the next round starts on a trigger (a wake-up, the poll timer, a freed slot), if
 *   the buffer is low and the worker holds fewer than maxHeld events.
 * - claiming: a round is in flight (after a few ms in which more wake-ups may join it).
 * - backing-off: the last claim failed (database down); no round before the backoff timer ends,
 *   however many triggers arrive.
 * - stopping: stop() was called; a round in flight completes, no other starts.
 * - stopped: the claim loop has ended.
 */
import { claimEvents, type Failure, type OutboxEvent } from '../messaging/outbox.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { sleep } from '../platform/shutdown.js';
import { backoffDelay } from './backoff.js';
import type { WorkerOptions } from './options.js';
import { createWokenIds } from './woken-ids.js';

export type ClaimerMode = 'starting' | 'waiting' | 'claiming' | 'backing-off' | 'stopping' | 'stopped';

const TRANSITIONS: Readonly<Record<ClaimerMode, readonly ClaimerMode[]>> = {
  starting: ['waiting', 'stopping'],
  waiting: ['claiming', 'stopping'],
  claiming: ['waiting', 'backing-off', 'stopping'],
  'backing-off': ['waiting', 'stopping'],
  stopping: ['stopped'],
  stopped: [],
};

/** A claimed event and when (local monotonic clock, before the claim was sent) its lease began. */
export interface ClaimedEvent {
  event: OutboxEvent;
  claimedAt: number;
}

export interface ClaimerDeps {
  db: Db;
  logger: Logger;
  random: () => number;
  options: WorkerOptions;
  /** Events held outside the buffer: running, or waiting for their outcome to be written. */
  heldElsewhere: () => number;
  /** Claimed events whose attempts are exhausted: dead-lettered without running. */
  deadLetter: (failures: Failure[]) => void;
  /** A round buffered what it claimed: start what there is room for. */
  onClaimed: () => void;
}

export interface Claimer {
  /** Starts the claim loop (a first round at once) and takes wake-ups. */
  start(): void;
  /** No more rounds; resolves when a round in flight has completed. The buffer stays for takeAll(). */
  stop(): Promise<void>;
  /** Claim this committed event soon. Never throws. */
  wake(eventId: string): void;
  /** The oldest buffered event, if any. */
  take(): ClaimedEvent | undefined;
  /** Empties the buffer. */
  takeAll(): ClaimedEvent[];
  /** Room may have freed (a handler ended, outcomes were written): claim if a round waits for it. */
  poke(): void;
  readonly buffered: number;
  readonly mode: ClaimerMode;
  /** Wake-ups the full queue refused (the poller found those events instead). */
  readonly droppedWakes: number;
}

export function createClaimer(deps: ClaimerDeps): Claimer {
  const { db, options } = deps;
  // Claim again when fewer than this many events wait locally, so handlers never starve.
  const lowWater = Math.max(1, Math.min(options.concurrency, options.batchSize));
  // Events held at once (buffered, running, or waiting for their outcome to be written). Room
  // for two batches lets the next claim overlap the previous batch's outcome write, so a busy
  // pool costs one wait per batch instead of two.
  const maxHeld = 2 * options.batchSize + options.concurrency;
  const buffer: ClaimedEvent[] = [];
  const woken = createWokenIds(options.queueCapacity);
  const held = () => buffer.length + deps.heldElsewhere();
  let takingWakeUps: Promise<void> = Promise.resolve();

  const loop = createClaimLoop({
    logger: deps.logger,
    random: deps.random,
    options,
    onClaimed: deps.onClaimed,
    hasRoom: () => buffer.length < lowWater && held() < maxHeld,
    round: claimRound,
  });

  async function claimRound(): Promise<RoundResult | undefined> {
    const limit = Math.min(options.batchSize - buffer.length, maxHeld - held());
    if (limit <= 0) return undefined;
    const wokenIds = woken.take(limit);
    const claimedAt = performance.now();
    const claim = { workerId: options.workerId, limit, leaseMs: options.leaseMs, wokenIds };
    const { events, nextDueInMs } = await claimEvents(db, claim).catch((error: unknown) => {
      woken.putBack(wokenIds);
      throw error;
    });
    const exhausted: Failure[] = [];
    for (const event of events) {
      if (event.attempts > options.maxAttempts) exhausted.push(exhaustedFailure(event, options.maxAttempts));
      else buffer.push({ event, claimedAt });
    }
    if (exhausted.length > 0) deps.deadLetter(exhausted);
    // More may be due, or woken ids are still waiting for their round.
    const full = events.length >= limit;
    return { found: events.length, full, again: full || woken.size > 0, nextDueInMs };
  }

  return {
    start() {
      if (loop.start()) takingWakeUps = woken.run(loop.request);
    },
    async stop() {
      woken.close();
      await Promise.all([loop.stop(), takingWakeUps]);
    },
    wake: (eventId) => woken.push(eventId),
    take: () => buffer.shift(),
    takeAll: () => buffer.splice(0),
    poke: () => loop.poke(),
    get buffered() {
      return buffer.length;
    },
    get mode() {
      return loop.mode;
    },
    get droppedWakes() {
      return woken.dropped;
    },
  };
}

/**
 * The dead letter of an event claimed with its attempts exhausted: its previous attempts never
 * ended (their worker crashed or hung past its lease).
 */
function exhaustedFailure(event: OutboxEvent, maxAttempts: number): Failure {
  return {
    id: event.id,
    attempts: event.attempts,
    dead: true,
    delayMs: 0,
    error:
      `attempt ${event.attempts} exceeds WORKER_MAX_ATTEMPTS (${maxAttempts}): the previous attempt's ` +
      'lease expired before it finished (its worker crashed or hung)',
  };
}

/** What a successful round tells the loop about the next one. */
interface RoundResult {
  found: number;
  /** The round claimed as many as it asked for: more may be due at once. */
  full: boolean;
  /** Claim again without waiting for a trigger. */
  again: boolean;
  /** See ClaimResult.nextDueInMs: the poll timer never sleeps past it. */
  nextDueInMs: number | null;
}

interface ClaimLoopDeps extends Pick<ClaimerDeps, 'logger' | 'random' | 'onClaimed'> {
  options: Pick<
    WorkerOptions,
    'pollIntervalMs' | 'maxIdlePollIntervalMs' | 'maxErrorBackoffMs' | 'wakeCoalesceMs'
  >;
  /** The buffer is low and the worker holds fewer events than it may. */
  hasRoom: () => boolean;
  /** One round; undefined when there was no room after all. Rejects when the claim failed. */
  round: () => Promise<RoundResult | undefined>;
}

/** When to claim: the modes, the triggers and the timers, knowing nothing of what is claimed. */
function createClaimLoop(deps: ClaimLoopDeps) {
  const { logger, options } = deps;
  const stopController = new AbortController(); // cuts the coalescing wait short
  const delays = createPollDelays(deps);
  let mode: ClaimerMode = 'starting';
  let claimRequested = true;
  let lastClaimStartedAt = 0;
  let lastClaimWasFull = false;
  let trigger: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  let done: Promise<void> = Promise.resolve();

  /** Moves to `next` if the table allows it; false when it does not (stop() came first). */
  function enter(next: ClaimerMode): boolean {
    if (!TRANSITIONS[mode].includes(next)) return false;
    mode = next;
    return true;
  }

  const isStopping = () => mode === 'stopping' || mode === 'stopped';
  const canClaim = () => mode === 'waiting' && deps.hasRoom();

  function kick() {
    const waiter = trigger;
    trigger = undefined;
    waiter?.();
  }

  function request() {
    claimRequested = true;
    kick();
  }

  function setTimer(delayMs: number, fire: () => void) {
    clearTimeout(timer);
    timer = setTimeout(fire, Math.max(1, Math.round(delayMs)));
    timer.unref();
  }

  async function loop() {
    while (!isStopping()) {
      if (claimRequested && canClaim()) {
        enter('claiming');
        // Wake-ups arriving a few ms apart share a round instead of each paying for one.
        const sinceLast = performance.now() - lastClaimStartedAt;
        if (!lastClaimWasFull && sinceLast < options.wakeCoalesceMs) {
          await sleep(options.wakeCoalesceMs - sinceLast, stopController.signal);
          if (isStopping()) break;
        }
        claimRequested = false;
        await runRound();
        continue;
      }
      // Nothing to do until a wake-up, the poll timer, a freed slot or stop() triggers us.
      await new Promise<void>((resolve) => {
        trigger = resolve;
      });
    }
  }

  async function runRound() {
    lastClaimStartedAt = performance.now();
    try {
      const result = await deps.round();
      if (result === undefined) {
        enter('waiting');
        return;
      }
      lastClaimWasFull = result.full;
      if (result.again) claimRequested = true;
      const delay = delays.afterRound(result.found, result.nextDueInMs);
      if (enter('waiting')) setTimer(delay, request);
      deps.onClaimed();
    } catch (error) {
      const delay = delays.afterFailure(error);
      // The timer alone ends the backoff: a deadline read from the wall clock could still lie
      // ahead when it fires, and then nothing would ever request the next round.
      if (enter('backing-off')) {
        setTimer(delay, () => {
          if (enter('waiting')) request();
        });
      }
    }
  }

  return {
    /** False when stop() came first. */
    start(): boolean {
      if (!enter('waiting')) return false;
      claimRequested = true;
      done = loop().catch((error: unknown) => {
        logger.error({ err: error }, 'the claim loop failed; the worker no longer claims events');
      });
      return true;
    },
    async stop(): Promise<void> {
      if (enter('stopping')) {
        clearTimeout(timer);
        stopController.abort();
        kick();
      }
      await done;
      enter('stopped');
    },
    request,
    poke() {
      if (claimRequested && canClaim()) kick();
    },
    get mode() {
      return mode;
    },
  };
}

/** How long the poll timer sleeps: longer while rounds find nothing or fail. */
function createPollDelays({ logger, random, options }: Pick<ClaimLoopDeps, 'logger' | 'random' | 'options'>) {
  let idlePolls = 0;
  let claimFailures = 0;
  return {
    /** After a successful round; never sleeps past the next event known to become due. */
    afterRound(found: number, nextDueInMs: number | null): number {
      if (claimFailures > 0) logger.info({ after: claimFailures }, 'claiming events works again');
      claimFailures = 0;
      idlePolls = found > 0 ? 0 : idlePolls + 1;
      const idleDelay = Math.min(
        options.maxIdlePollIntervalMs,
        options.pollIntervalMs * 2 ** Math.max(0, Math.min(idlePolls - 1, 20)),
      );
      return nextDueInMs === null ? idleDelay : Math.min(idleDelay, nextDueInMs + 5);
    },
    /** After a failed round (database down): the backoff before the next. */
    afterFailure(error: unknown): number {
      claimFailures++;
      const delay = backoffDelay(claimFailures, {
        baseMs: options.pollIntervalMs,
        maxMs: options.maxErrorBackoffMs,
        random,
      });
      if (claimFailures === 1 || claimFailures % 10 === 0) {
        logger.warn(
          { err: error, failures: claimFailures, retryInMs: delay },
          'claiming events failed; retrying',
        );
      }
      return delay;
    },
  };
}
