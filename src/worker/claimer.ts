/**
 * The claimer claims outbox events and holds what it claimed until the executor has a free slot
 * (the part graphile-worker's LocalQueue plays). Claims are leases taken with
 * `FOR UPDATE SKIP LOCKED` by status (see messaging/outbox), in batches of `batchSize`, so any
 * number of workers and replicas share the table safely.
 *
 * Two triggers start a claim round: a wake-up (the server pushed a committed event id into the
 * in-process queue) and a backstop poller (every pollIntervalMs, slowing down while idle, and
 * never sleeping past the next known due time). Triggers coalesce: however many wake-ups arrive
 * during a round, they cause one more round, which claims their ids together.
 *
 * When to run a round is the claim loop's business (claim-loop.ts); what a round claims, and
 * what the worker holds, is this module's.
 *
 * Pre-claims (`preClaim()`) skip the round for the API's new orders: while the worker has room,
 * the API writes the OrderCreated event already claimed by this worker and hands it over after
 * the commit (`adopt`). A pre-claim counts as held from the moment it is taken, so the API never
 * hands over more than the worker may hold; without room the event is written pending and woken.
 */
import { claimEvents, type Failure, type OutboxEvent, type PreClaim } from '../messaging/outbox.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';
import { type ClaimerMode, createClaimLoop, type RoundResult } from './claim-loop.js';
import type { LeaseKeeper } from './leases.js';
import type { WorkerOptions } from './options.js';
import { createWokenIds } from './woken-ids.js';

export type { ClaimerMode } from './claim-loop.js';

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
  /** Buffered events' leases are renewed from the moment they are claimed. */
  leases: Pick<LeaseKeeper, 'hold'>;
  /** A round buffered what it claimed: start what there is room for. */
  onClaimed: () => void;
}

export interface Claimer {
  /** Starts the claim loop (a first round at once) and takes wake-ups. */
  start(): void;
  /** No more rounds; resolves when a round in flight has completed. The buffer stays for takeAll(). */
  stop(): Promise<void>;
  /**
   * Cancels the claim statement in flight (the shutdown deadline passed). Whatever it still
   * returns (it committed before the cancel arrived) lands in the buffer, for takeAll().
   */
  cancel(): void;
  /** Claim this committed event soon. Never throws. */
  wake(eventId: string): void;
  /**
   * A claim for an event about to be written, while the worker runs and has room; undefined
   * otherwise (write it pending and wake()).
   */
  preClaim(): PreClaim | undefined;
  /** Resolves once every pre-claim taken has been adopted or cancelled. */
  preClaimsSettled(): Promise<void>;
  /** The oldest buffered event, if any. */
  take(): ClaimedEvent | undefined;
  /** Empties the buffer. */
  takeAll(): ClaimedEvent[];
  /** Drops these events from the buffer (their leases were lost). */
  discard(eventIds: ReadonlySet<string>): void;
  /** Room may have freed (a handler ended, outcomes were written): claim if a round waits for it. */
  poke(): void;
  readonly buffered: number;
  readonly mode: ClaimerMode;
  /** How long the loop has wanted a round without completing one; 0 when it is not stalled. */
  stalledForMs(): number;
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
  // Pre-claims taken and not yet adopted or cancelled: room promised to writes in flight.
  let preClaimed = 0;
  let onPreClaimsSettled: (() => void) | undefined; // the waiting preClaimsSettled()
  let takingPreClaims = false;
  const held = () => buffer.length + preClaimed + deps.heldElsewhere();
  let takingWakeUps: Promise<void> = Promise.resolve();

  const loop = createClaimLoop({
    logger: deps.logger,
    random: deps.random,
    options,
    onClaimed: deps.onClaimed,
    hasRoom: () => buffer.length < lowWater && held() < maxHeld,
    round: claimRound,
  });

  async function claimRound(signal: AbortSignal): Promise<RoundResult | undefined> {
    const limit = Math.min(options.batchSize - buffer.length, maxHeld - held());
    if (limit <= 0) return undefined;
    const wokenIds = woken.take(limit);
    const claimedAt = performance.now();
    const claim = { workerId: options.workerId, limit, leaseMs: options.leaseMs, wokenIds };
    const { events, nextDueInMs } = await claimEvents(db, claim, { signal }).catch((error: unknown) => {
      woken.putBack(wokenIds);
      throw error;
    });
    const exhausted: Failure[] = [];
    for (const event of events) {
      if (event.attempts > options.maxAttempts) {
        exhausted.push(exhaustedFailure(event, options.maxAttempts));
      } else {
        buffer.push({ event, claimedAt });
        deps.leases.hold(event, claimedAt);
      }
    }
    if (exhausted.length > 0) deps.deadLetter(exhausted);
    // More may be due, or woken ids are still waiting for their round.
    const full = events.length >= limit;
    return { found: events.length, full, again: full || woken.size > 0, nextDueInMs };
  }

  function preClaim(): PreClaim | undefined {
    if (!takingPreClaims || held() >= maxHeld) return undefined;
    preClaimed++;
    const claimedAt = performance.now(); // before the write is sent: its lease began later
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      preClaimed--;
      if (preClaimed === 0) onPreClaimsSettled?.();
      return true;
    };
    return {
      workerId: options.workerId,
      leaseMs: options.leaseMs,
      adopt(event) {
        if (!settle()) return;
        buffer.push({ event, claimedAt });
        deps.leases.hold(event, claimedAt);
        deps.onClaimed();
      },
      cancel() {
        if (settle()) loop.poke();
      },
    };
  }

  function preClaimsSettled(): Promise<void> {
    if (preClaimed === 0) return Promise.resolve();
    return new Promise((resolve) => {
      onPreClaimsSettled = resolve;
    });
  }

  return {
    start() {
      if (loop.start()) {
        takingWakeUps = woken.run(loop.request);
        takingPreClaims = true;
      }
    },
    async stop() {
      takingPreClaims = false;
      woken.close();
      await Promise.all([loop.stop(), takingWakeUps]);
    },
    preClaim,
    preClaimsSettled,
    cancel: () => loop.cancel(),
    wake: (eventId) => woken.push(eventId),
    take: () => buffer.shift(),
    takeAll: () => buffer.splice(0),
    discard(eventIds) {
      const kept = buffer.filter((claimed) => !eventIds.has(claimed.event.id));
      buffer.splice(0, buffer.length, ...kept);
    },
    poke: () => loop.poke(),
    stalledForMs: () => loop.stalledForMs(),
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
