/** get, post, mixed: one measured run of load against one server, with its CPU accounting. */
import { loadavg } from 'node:os';
import { type CpuShares, cpuDelta, rssMiB, sampleCpu } from '../cpu.js';
import { withClient } from '../database.js';
import { type LoadTarget, runAutocannon, runWrk } from '../load.js';
import type { BenchOptions, HttpScenario } from '../options.js';
import { waitForQuiet } from '../quiet-wait.js';
import { round } from '../round.js';
import type { Target } from '../servers.js';

export interface HttpRun extends CpuShares {
  target: string;
  scenario: HttpScenario;
  repeat: number;
  reqPerSec: number;
  requests: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: number;
  non2xx: number;
  socketErrors: number;
  rssMiB: number | null;
  loadavg1Before: number;
  neighbourCpuPctBefore: number | null;
  /**
   * With ours' in-process worker (post, mixed), what became of the outbox during the measured
   * run: events written, events delivered, and those not yet delivered when the load stopped
   * (near 0: the worker kept up).
   */
  outboxWritten?: number;
  outboxDelivered?: number;
  outboxPendingAtEnd?: number;
}

const OUTBOX_COUNTS_SQL = `SELECT count(*) FILTER (WHERE status <> 'processed')::int AS pending,
       count(*) FILTER (WHERE status = 'processed')::int AS processed FROM outbox_events`;

function outboxCounts(dbUrl: string): Promise<{ pending: number; processed: number }> {
  return withClient(dbUrl, async (client) => (await client.query(OUTBOX_COUNTS_SQL)).rows[0]);
}

/** Waits for quiet neighbours (--quiet-wait), warms up (--warmup), then measures one run. */
export async function runHttpScenario(
  options: BenchOptions,
  target: Target & LoadTarget,
  scenario: HttpScenario,
  repeat: number,
  allPids: number[] = [],
): Promise<HttpRun> {
  const run = options.tool === 'wrk' ? runWrk : runAutocannon;
  const runId = `${Date.now().toString(36)}-${target.name}-${scenario}-${repeat}`;
  const neighboursBefore = await waitForQuiet(options, allPids);
  if (options.warmup > 0) await run(options, target, scenario, options.warmup, `${runId}-warm`);
  const load1 = loadavg()[0];
  const countOutbox = scenario !== 'get' && target.workerDbUrl !== undefined;
  const outboxBefore = countOutbox ? await outboxCounts(target.workerDbUrl!) : undefined;
  const before = sampleCpu(target.proc?.pid, target.node === true);
  const r = await run(options, target, scenario, options.duration, runId);
  const after = sampleCpu(target.proc?.pid, target.node === true);
  const outboxAfter = countOutbox ? await outboxCounts(target.workerDbUrl!) : undefined;
  const outbox =
    outboxBefore && outboxAfter
      ? {
          outboxWritten:
            outboxAfter.pending + outboxAfter.processed - outboxBefore.pending - outboxBefore.processed,
          outboxDelivered: outboxAfter.processed - outboxBefore.processed,
          outboxPendingAtEnd: outboxAfter.pending,
        }
      : undefined;
  return {
    target: target.name,
    scenario,
    repeat,
    reqPerSec: round(r.requests / r.seconds, 1),
    requests: r.requests,
    p50Ms: round(r.p50, 2),
    p95Ms: round(r.p95, 2),
    p99Ms: round(r.p99, 2),
    maxMs: round(r.max, 2),
    errors: r.non2xx + r.socketErrors,
    non2xx: r.non2xx,
    socketErrors: r.socketErrors,
    rssMiB: rssMiB(target.proc?.pid),
    loadavg1Before: round(load1, 2),
    neighbourCpuPctBefore: neighboursBefore,
    ...cpuDelta(before, after, r.requests, r.generatorCpu),
    ...outbox,
  };
}
