/** get, post, mixed: one measured run of load against one server, with its CPU accounting. */
import { loadavg } from 'node:os';
import { type CpuShares, cpuDelta, rssMiB, sampleCpu } from '../cpu.js';
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
  const before = sampleCpu(target.proc?.pid, target.node === true);
  const r = await run(options, target, scenario, options.duration, runId);
  const after = sampleCpu(target.proc?.pid, target.node === true);
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
  };
}
