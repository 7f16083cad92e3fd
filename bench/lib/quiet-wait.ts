/**
 * --quiet-wait: on a shared machine, wait before each measured run until the neighbours (every
 * process but our servers and the bench's PostgreSQL) calm down.
 */
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { machineCpu, postgresCpu, postgresCpuDelta, treeCpu } from './cpu.js';
import type { BenchOptions } from './options.js';
import { round } from './round.js';

/** CPU % of one core used over `ms` by everything except the given pids and the bench's PostgreSQL. */
async function neighbourCpu(pids: number[], ms = 1000): Promise<number> {
  const sample = () => ({
    at: process.hrtime.bigint(),
    machine: machineCpu(),
    pg: postgresCpu(),
    ours: pids.map(treeCpu),
  });
  const a = sample();
  await sleep(ms);
  const b = sample();
  const wall = Number(b.at - a.at) / 1e9;
  const busy = ((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total)) * cpus().length;
  let known = postgresCpuDelta(a.pg, b.pg);
  b.ours.forEach((v, i) => {
    const before = a.ours[i];
    known += v === null || before === null ? 0 : v - before;
  });
  return (busy - known / wall) * 100;
}

/** Waits (bounded by --quiet-wait) for the neighbours to calm down; returns their last CPU %. */
export async function waitForQuiet(
  options: Pick<BenchOptions, 'quietWait' | 'quietCpu'>,
  pids: number[],
): Promise<number | null> {
  if (options.quietWait === 0) return null;
  const deadline = Date.now() + options.quietWait * 1000;
  let other = await neighbourCpu(pids);
  while (other > options.quietCpu && Date.now() < deadline) other = await neighbourCpu(pids);
  if (other > options.quietCpu) process.stderr.write(`(busy neighbours: ${round(other)} % of a core) `);
  return round(other, 1);
}
