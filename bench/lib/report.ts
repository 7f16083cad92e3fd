/** The end of a run: medians per target and scenario, the two tables, and the --json file. */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { RunMeta } from './meta.js';
import type { BenchOptions } from './options.js';
import { round } from './round.js';
import type { DrainRun, SkippedRun } from './scenarios/drain.js';
import type { HttpRun } from './scenarios/http.js';

export type Run = HttpRun | DrainRun | SkippedRun;

const MEDIAN_FIELDS = [
  'reqPerSec',
  'p50Ms',
  'p95Ms',
  'p99Ms',
  'maxMs',
  'errors',
  'rssMiB',
  'serverCpuPct',
  'postgresCpuPct',
  'serverCpuMsPerReq',
  'serverKernelSharePct',
  'serverMainOnCpuPct',
  'serverMainRunqWaitPct',
  'postgresCpuMsPerReq',
  'generatorCpuPct',
  'otherCpuPct',
  'machineBusyPct',
  'machineSystemPct',
  'machineIowaitPct',
  'eventsPerSec',
  'seconds',
] as const;
type MedianField = (typeof MEDIAN_FIELDS)[number];

/** One target and scenario: the median of each figure over its runs. */
type SummaryRow = { target: string; scenario: string; runs: number; skipped?: string } & Partial<
  Record<MedianField, number>
>;

function median(values: unknown[]): number | null {
  const v = values
    .filter((x): x is number => typeof x === 'number' && Number.isFinite(x))
    .sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

function summarise(runs: Run[]): SummaryRow[] {
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const key = `${r.target}\u0000${r.scenario}`;
    const group = groups.get(key);
    if (group) group.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()].map((rs) => {
    const row: SummaryRow = { target: rs[0].target, scenario: rs[0].scenario, runs: rs.length };
    const measured = rs.filter((r): r is HttpRun | DrainRun => !('skipped' in r));
    if (measured.length === 0) return { ...row, skipped: (rs[0] as SkippedRun).skipped };
    for (const f of MEDIAN_FIELDS) {
      const m = median(measured.map((r) => (r as Partial<Record<MedianField, unknown>>)[f]));
      if (m !== null) row[f] = round(m, 2);
    }
    return row;
  });
}

type Column = [heading: string, cell: (row: SummaryRow) => string | number | undefined];

const RESULT_COLUMNS: Column[] = [
  ['target', (r) => r.target],
  ['scenario', (r) => r.scenario],
  ['req/s', (r) => r.reqPerSec],
  ['p50 ms', (r) => r.p50Ms],
  ['p95 ms', (r) => r.p95Ms],
  ['p99 ms', (r) => r.p99Ms],
  ['errors', (r) => r.errors],
  ['RSS MiB', (r) => r.rssMiB],
  ['events/s', (r) => (r.skipped ? `skipped: ${r.skipped}` : r.eventsPerSec)],
];

// Where the CPU went during the measured run (% of one core; ms per request or per event).
const CPU_COLUMNS: Column[] = [
  ['target', (r) => r.target],
  ['scenario', (r) => r.scenario],
  ['srv CPU %', (r) => r.serverCpuPct],
  ['srv ms/req', (r) => r.serverCpuMsPerReq],
  ['srv kernel %', (r) => r.serverKernelSharePct],
  ['loop on-CPU %', (r) => r.serverMainOnCpuPct],
  ['loop runq-wait %', (r) => r.serverMainRunqWaitPct],
  ['pg CPU %', (r) => r.postgresCpuPct],
  ['pg ms/req', (r) => r.postgresCpuMsPerReq],
  ['gen CPU %', (r) => r.generatorCpuPct],
  ['other CPU %', (r) => r.otherCpuPct],
];

function printTable(rows: SummaryRow[], cols: Column[]): void {
  const cells = rows.map((r) => cols.map(([, get]) => ((get(r) ?? '') === '' ? '' : String(get(r)))));
  const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (values: string[]) => `| ${values.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(cols.map(([h]) => h)));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of cells) console.log(line(c));
}

/** Prints the medians (and where the CPU went) on stdout; writes every run to --json. */
export function report(options: BenchOptions, meta: RunMeta, runs: Run[]): void {
  const summary = summarise(runs);
  console.log(
    `\norders bench: ${options.tool}, ${options.connections} connections, ${options.duration} s runs ` +
      `(+${options.warmup} s warm-up), ${options.repeat} repeat(s), medians; ` +
      `LOG_LEVEL=${options.logLevel}, DB_POOL_MAX=${meta.poolMax}` +
      (meta.httpWorker === undefined ? '' : `, worker ${meta.httpWorker ? 'on' : 'off'} during HTTP runs`) +
      `, commit ${meta.commit}\n`,
  );
  printTable(summary, RESULT_COLUMNS);
  console.log('\nwhere the CPU went (% of one core; srv/pg ms per request, or per event for drain):\n');
  printTable(
    summary.filter((r) => !r.skipped),
    CPU_COLUMNS,
  );
  if (options.json) {
    writeFileSync(resolve(options.json), `${JSON.stringify({ meta, summary, runs }, null, 2)}\n`);
    console.log(`\nwrote ${options.json}`);
  }
  if (options.cpuProf) {
    console.log(`\nCPU profile(s) in ${options.cpuProf}: npm run bench:cpuprofile -- ${options.cpuProf}`);
  }
}
