/**
 * The lease keeper: renews the leases of the events this worker holds (buffered or running) with
 * a heartbeat, so a lease can be short. A crashed worker stops renewing, and its events are
 * claimable again within one lease (seconds) instead of after the longest a handler may run.
 *
 * Every heartbeat (a quarter of the lease) one statement renews every held lease, fenced like
 * every write after a claim by (id, locked_by, attempts). A lease that statement did not renew
 * was lost: it lapsed and someone re-claimed the event. A lease that could lapse before the next
 * heartbeat, because renewals keep failing (the database is unreachable from here, the event loop
 * stalled), is given up while it is still ours. Either way `onLost` stops its handler, so this
 * worker never runs an event past the moment another worker may have claimed it.
 *
 * The local end of a lease is measured from when the claim or renewal was sent, before the
 * database computed `now() + lease`: it can only err early, never late.
 */
import { type OutboxEvent, renewLeases } from '../messaging/outbox.js';
import type { Db } from '../platform/db.js';
import type { Logger } from '../platform/logger.js';

export interface LeaseKeeperDeps {
  db: Db;
  workerId: string;
  logger: Logger;
  leaseMs: number;
  heartbeatMs: number;
  /** These leases are no longer ours: stop their handlers, drop them from the buffer. */
  onLost: (ids: ReadonlySet<string>) => void;
}

export interface LeaseKeeper {
  /** Renew this event's lease from now on; `claimedAt` is when its claim was sent. */
  hold(event: OutboxEvent, claimedAt: number): void;
  /** Its outcome is known (or it was given back): stop renewing. */
  drop(eventId: string): void;
  /** True while the lease is ours and not about to lapse. */
  holds(eventId: string): boolean;
  readonly size: number;
  start(): void;
  /** Ends the heartbeat; resolves when a renewal in flight has ended. */
  stop(): Promise<void>;
}

interface Lease {
  id: string;
  attempts: number;
  /** Local monotonic clock. */
  endsAt: number;
}

export function createLeaseKeeper(deps: LeaseKeeperDeps): LeaseKeeper {
  const { db, workerId, logger, leaseMs, heartbeatMs } = deps;
  const held = new Map<string, Lease>();
  // Give a lease up when it could lapse before the next heartbeat renews it (with slack for a
  // late timer): about three heartbeats of failed renewals, still a heartbeat before it lapses.
  const giveUpWithin = heartbeatMs * 1.5;
  let timer: NodeJS.Timeout | undefined;
  let beating: Promise<void> = Promise.resolve();
  let stopped = false;
  let failures = 0;

  function lose(ids: Set<string>, why: string) {
    if (ids.size === 0) return;
    for (const id of ids) held.delete(id);
    logger.warn(
      { events: ids.size, eventIds: [...ids].slice(0, 10), why },
      'leases lost: their handlers are stopped and the events left to their next claim',
    );
    deps.onLost(ids);
  }

  async function beat() {
    const leases = [...held.values()];
    if (leases.length > 0) {
      const sentAt = performance.now();
      try {
        const renewed = new Set(
          await renewLeases(db, workerId, leases, leaseMs, { signal: AbortSignal.timeout(heartbeatMs) }),
        );
        if (failures > 0) logger.info({ after: failures }, 'renewing leases works again');
        failures = 0;
        const lost = new Set<string>();
        for (const lease of leases) {
          if (held.get(lease.id) !== lease) continue; // dropped meanwhile: its outcome is known
          if (renewed.has(lease.id)) lease.endsAt = sentAt + leaseMs;
          else lost.add(lease.id);
        }
        lose(lost, 'another worker claimed them after their lease lapsed');
      } catch (error) {
        failures++;
        if (failures === 1 || failures % 10 === 0) {
          logger.warn({ err: error, failures, events: leases.length }, 'renewing leases failed; retrying');
        }
      }
    }
    const now = performance.now();
    const lapsing = new Set<string>();
    for (const lease of held.values()) if (lease.endsAt - now <= giveUpWithin) lapsing.add(lease.id);
    lose(lapsing, 'they could not be renewed before lapsing');
  }

  function schedule() {
    if (stopped) return;
    timer = setTimeout(() => {
      beating = beat().finally(schedule);
    }, heartbeatMs);
    timer.unref();
  }

  return {
    hold(event, claimedAt) {
      held.set(event.id, { id: event.id, attempts: event.attempts, endsAt: claimedAt + leaseMs });
    },
    drop(eventId) {
      held.delete(eventId);
    },
    holds(eventId) {
      const lease = held.get(eventId);
      return lease !== undefined && lease.endsAt - performance.now() > giveUpWithin;
    },
    get size() {
      return held.size;
    },
    start() {
      if (timer === undefined && !stopped) schedule();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await beating;
    },
  };
}
