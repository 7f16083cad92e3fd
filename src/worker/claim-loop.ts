/**
 * The claim loop: when to claim, knowing nothing of what is claimed.
 *
 * The claim loop's modes (every change goes through `enter`, against the TRANSITIONS table):
 * - starting: created; start() not called yet.
 * - waiting: the next round starts on a trigger (a wake-up, the poll timer, a freed slot), if
 *   the buffer is low and the worker holds fewer than maxHeld events.
 * - claiming: a round is in flight (after a few ms in which more wake-ups may join it).
 * - backing-off: the last claim failed (database down); no round before the backoff timer ends,
 *   however many triggers arrive.
 * - stopping: stop() was called; a round in flight completes (or is cancelled: cancel()), no
 *   other starts.
 * - stopped: the claim loop has ended.
 *
 * The loop is stalled when it has wanted a round (claiming or backing off) for stallAfterMs
 * without completing one; waiting for a trigger or for room is not a stall.
 */
import type { Logger } from '../platform/logger.js';
import { sleep } from '../platform/shutdown.js';
import { backoffDelay } from './backoff.js';
import type { WorkerOptions } from './options.js';

export type ClaimerMode = 'starting' | 'waiting' | 'claiming' | 'backing-off' | 'stopping' | 'stopped';

const TRANSITIONS: Readonly<Record<ClaimerMode, readonly ClaimerMode[]>> = {
  starting: ['waiting', 'stopping'],
  waiting: ['claiming', 'stopping'],
  claiming: ['waiting', 'backing-off', 'stopping'],
  'backing-off': ['waiting', 'stopping'],
  stopping: ['stopped'],
  stopped: [],
};

/** What a successful round tells the loop about the next one. */
export interface RoundResult {
  found: number;
  /** The round claimed as many as it asked for: more may be due at once. */
  full: boolean;
  /** Claim again without waiting for a trigger. */
  again: boolean;
  /** See ClaimResult.nextDueInMs: the poll timer never sleeps past it. */
  nextDueInMs: number | null;
}

interface ClaimLoopDeps {
  logger: Logger;
  random: () => number;
  /** A round buffered what it claimed. */
  onClaimed: () => void;
  options: Pick<
    WorkerOptions,
    'pollIntervalMs' | 'maxIdlePollIntervalMs' | 'maxErrorBackoffMs' | 'wakeCoalesceMs' | 'stallAfterMs'
  >;
  /** The buffer is low and the worker holds fewer events than it may. */
  hasRoom: () => boolean;
  /** One round; undefined when there was no room after all. Rejects when the claim failed. */
  round: (signal: AbortSignal) => Promise<RoundResult | undefined>;
}

/** When to claim: the modes, the triggers and the timers, knowing nothing of what is claimed. */
export function createClaimLoop(deps: ClaimLoopDeps) {
  const { logger, options } = deps;
  const stopController = new AbortController(); // cuts the coalescing wait short
  const cancelController = new AbortController(); // cancels the claim statement at the deadline
  const delays = createPollDelays(deps);
  let mode: ClaimerMode = 'starting';
  let claimRequested = true;
  let lastClaimStartedAt = 0;
  let lastClaimWasFull = false;
  /** When the first round since the last successful one began; undefined after a success. */
  let wantedSince: number | undefined;
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
    wantedSince ??= lastClaimStartedAt;
    try {
      const result = await deps.round(cancelController.signal);
      wantedSince = undefined;
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
    cancel() {
      cancelController.abort(new Error('the worker stopped before this claim ended'));
    },
    request,
    poke() {
      if (claimRequested && canClaim()) kick();
    },
    get mode() {
      return mode;
    },
    stalledForMs(): number {
      if (wantedSince === undefined || !(mode === 'claiming' || mode === 'backing-off')) return 0;
      const wanted = performance.now() - wantedSince;
      return wanted > options.stallAfterMs ? wanted : 0;
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
