/** A worker tuned for tests (fast polls, no housekeeping, no NATS) and a wait for its outcome. */
import { loadConfig } from '../../src/config.js';
import type { Db } from '../../src/platform/db.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import type { Telemetry } from '../../src/platform/telemetry.js';
import { createWorker, type Worker, workerOptionsFromConfig } from '../../src/worker/index.js';
import { testLogger } from './db.js';

export function createFastTestWorker(db: Db, telemetry: Telemetry): Worker {
  return createWorker({
    db,
    logger: testLogger,
    metrics: createMetrics({ defaultMetrics: false }),
    telemetry,
    publisher: null,
    options: workerOptionsFromConfig(loadConfig({}), {
      pollIntervalMs: 20,
      maxIdlePollIntervalMs: 20,
      housekeepingIntervalMs: 0,
    }),
  });
}

/** Polls the event's status until it is `status` (or the time runs out; the caller asserts). */
export async function waitForEventStatus(
  db: Db,
  id: string,
  status: string,
  timeoutMs = 2_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await db.query<{ status: string }>('SELECT status FROM outbox_events WHERE id = $1', [id]);
    if (r.rows[0]?.status === status) return;
    await sleep(10);
  }
}
