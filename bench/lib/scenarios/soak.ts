/**
 * --soak [MINUTES]: the mixed load (80 % get, 20 % post) for MINUTES, in back-to-back runs of
 * 30 s, with the server's memory read after each: RSS of its process tree from /proc, and from its
 * own /metrics the V8 heap in use (`nodejs_heap_size_used_bytes`, also scraped every 2 s for its
 * floor over the interval) and the RSS it reports (`process_resident_memory_bytes`; summed when
 * several processes report). The verdict compares the last third of the intervals to the first:
 * mean RSS, and the lowest heap floor (a leak raises the heap the collector gets back to).
 */
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { rssMiB } from '../cpu.js';
import { type LoadTarget, runAutocannon, runWrk } from '../load.js';
import type { BenchOptions } from '../options.js';
import { round } from '../round.js';
import type { Target } from '../servers.js';

/** Seconds between two samples (one load run each). */
export const SOAK_INTERVAL_S = 30;
/** Fewer loaded intervals than this (3 min) give no verdict: a third of them is too few to compare. */
export const SOAK_MIN_INTERVALS = 6;
/** Heap scrapes during an interval, for its floor. */
const SOAK_SCRAPE_MS = 2_000;
/** Growth of the last third over the first third above which the verdict says "grows". */
export const SOAK_GROWTH_LIMIT_PCT = 10;

export interface SoakSample {
  /** Seconds since the soak started (after its warm-up). */
  atS: number;
  rssMiB: number | null;
  /** process_resident_memory_bytes from /metrics, in MiB. */
  metricsRssMiB: number | null;
  /** nodejs_heap_size_used_bytes from /metrics, in MiB, at the sample. */
  heapUsedMiB: number | null;
  /**
   * The lowest heap used of the scrapes every 2 s during the interval that ended here: the floor
   * the garbage collector gets back to, which a leak raises (a single reading is mostly where the
   * young generation happened to be).
   */
  heapFloorMiB: number | null;
  /** Over the run that ended at this sample (null for the first). */
  reqPerSec: number | null;
  p99Ms: number | null;
  errors: number | null;
}

export interface SoakRun {
  target: string;
  scenario: 'soak';
  repeat: number;
  minutes: number;
  samples: SoakSample[];
  reqPerSec: number;
  errors: number;
  rssGrowthPct: number | null;
  heapGrowthPct: number | null;
  verdict: string;
}

/** The sum of a metric's samples (every label set: one per process when they report apart), or null. */
export function metricSum(text: string, name: string): number | null {
  let sum: number | null = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || (line[name.length] !== ' ' && line[name.length] !== '{')) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(value)) sum = (sum ?? 0) + value;
  }
  return sum;
}

async function scrape(url: string): Promise<{ heap: number | null; rss: number | null }> {
  try {
    const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5_000) });
    const text = await res.text();
    if (res.status !== 200) return { heap: null, rss: null };
    const mib = (bytes: number | null) => (bytes === null ? null : round(bytes / 1048576, 1));
    return {
      heap: mib(metricSum(text, 'nodejs_heap_size_used_bytes')),
      rss: mib(metricSum(text, 'process_resident_memory_bytes')),
    };
  } catch {
    return { heap: null, rss: null };
  }
}

/** Heap used every 2 s until `done` settles. */
async function scrapeUntil(url: string, done: Promise<unknown>): Promise<(number | null)[]> {
  let settled = false;
  void done.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  const heaps: (number | null)[] = [];
  while (!settled) {
    await Promise.race([sleep(SOAK_SCRAPE_MS), done.catch(() => undefined)]);
    if (!settled) heaps.push((await scrape(url)).heap);
  }
  return heaps;
}

function mean(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null);
  return v.length === 0 ? null : v.reduce((a, b) => a + b, 0) / v.length;
}

function lowest(values: (number | null)[]): number | null {
  const v = values.filter((x): x is number => x !== null);
  return v.length === 0 ? null : Math.min(...v);
}

/**
 * Growth in % of the last third of the values over the first third, each third taken by `of`
 * (the mean for RSS; the lowest for the heap floor, which only a leak raises for a whole third).
 */
export function thirdsGrowthPct(
  values: (number | null)[],
  of: (values: (number | null)[]) => number | null = mean,
): number | null {
  if (values.length < 2) return null;
  const third = Math.max(1, Math.floor(values.length / 3));
  const first = of(values.slice(0, third));
  const last = of(values.slice(-third));
  return first === null || last === null || first === 0 ? null : round(((last - first) / first) * 100, 1);
}

/** Runs the soak against one of our servers; prints each sample to stderr as it comes. */
export async function runSoak(options: BenchOptions, target: Target & LoadTarget): Promise<SoakRun> {
  const run = options.tool === 'wrk' ? runWrk : runAutocannon;
  const runId = `${Date.now().toString(36)}-${target.name}-soak`;
  if (options.warmup > 0) await run(options, target, 'mixed', options.warmup, `${runId}-warm`);
  const started = performance.now();
  const sample = async (
    load?: { requests: number; seconds: number; p99: number; errors: number },
    heapDuring: (number | null)[] = [],
  ) => {
    const metrics = await scrape(target.url);
    const heaps = [...heapDuring, metrics.heap].filter((h): h is number => h !== null);
    const s: SoakSample = {
      atS: round((performance.now() - started) / 1000, 0),
      rssMiB: rssMiB(target.proc?.pid),
      metricsRssMiB: metrics.rss,
      heapUsedMiB: metrics.heap,
      heapFloorMiB: heaps.length > 0 ? Math.min(...heaps) : null,
      reqPerSec: load ? round(load.requests / load.seconds, 1) : null,
      p99Ms: load ? round(load.p99, 2) : null,
      errors: load ? load.errors : null,
    };
    process.stderr.write(
      `bench: soak ${target.name} ${s.atS} s: RSS ${s.rssMiB} MiB, heap used ${s.heapUsedMiB} MiB ` +
        `(floor ${s.heapFloorMiB})` +
        (s.reqPerSec === null ? '' : `, ${s.reqPerSec} req/s, ${s.errors} errors`) +
        '\n',
    );
    return s;
  };
  const samples = [await sample()];
  let requests = 0;
  let seconds = 0;
  let errors = 0;
  for (let left = options.soak * 60; left > 0; left -= SOAK_INTERVAL_S) {
    const loading = run(
      options,
      target,
      'mixed',
      Math.min(SOAK_INTERVAL_S, left),
      `${runId}-${samples.length}`,
    );
    const heapDuring = await scrapeUntil(target.url, loading);
    const r = await loading;
    if (target.proc && !target.proc.running()) throw new Error(`${target.name} exited during the soak`);
    requests += r.requests;
    seconds += r.seconds;
    errors += r.non2xx + r.socketErrors;
    samples.push(await sample({ ...r, errors: r.non2xx + r.socketErrors }, heapDuring));
  }
  // The verdict compares samples taken after a loaded interval each: the first (after the short
  // warm-up, before the heap has grown to its working size) is listed, not compared.
  const loaded = samples.slice(1);
  const rssGrowthPct = thirdsGrowthPct(loaded.map((s) => s.rssMiB));
  const heapGrowthPct = thirdsGrowthPct(
    loaded.map((s) => s.heapFloorMiB),
    lowest,
  );
  const grows = [rssGrowthPct, heapGrowthPct].some((g) => g !== null && g > SOAK_GROWTH_LIMIT_PCT);
  const pct = (g: number | null) => (g === null ? 'n/a' : `${g > 0 ? '+' : ''}${g} %`);
  const judgement =
    loaded.length < SOAK_MIN_INTERVALS
      ? `too short to judge (a verdict needs ${SOAK_MIN_INTERVALS} intervals, ${(SOAK_MIN_INTERVALS * SOAK_INTERVAL_S) / 60} min)`
      : grows
        ? `GROWS (more than ${SOAK_GROWTH_LIMIT_PCT} %)`
        : `no growth (within ${SOAK_GROWTH_LIMIT_PCT} %)`;
  const verdict =
    `RSS ${pct(rssGrowthPct)} (mean), heap used ${pct(heapGrowthPct)} (lowest) of the last third of ` +
    `the loaded intervals against the first third: ${judgement}`;
  return {
    target: target.name,
    scenario: 'soak',
    repeat: 1,
    minutes: options.soak,
    samples,
    reqPerSec: seconds ? round(requests / seconds, 1) : 0,
    errors,
    rssGrowthPct,
    heapGrowthPct,
    verdict,
  };
}
