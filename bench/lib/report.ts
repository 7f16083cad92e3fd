/** The end of a run: medians per target and scenario, the two tables, and the --json file. */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { RunMeta } from './meta.js';
import type { BenchOptions } from './options.js';
import { median, round } from './round.js';
import type { DrainRun, SkippedRun } from './scenarios/drain.js';
import type { HttpRun } from './scenarios/http.js';
import type { InstructionsRun } from './scenarios/instructions.js';
import type { LifecycleRun } from './scenarios/lifecycle.js';
import type { SoakRun } from './scenarios/soak.js';

export type Run = HttpRun | DrainRun | LifecycleRun | SoakRun | SkippedRun | InstructionsRun;
type MeasuredRun = HttpRun | DrainRun | LifecycleRun | InstructionsRun;

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
  'confirmedPerSec',
  'postedPerSec',
  'catchUpSeconds',
  'postErrors',
  'serverProcesses',
  'natsCpuPct',
  'natsCpuMsPerReq',
  'seconds',
  'outboxWritten',
  'outboxDelivered',
  'instructionsPerReq',
] as const;
type MedianField = (typeof MEDIAN_FIELDS)[number];

/** One target and scenario: the median of each figure over its runs. */
type SummaryRow = {
  target: string;
  scenario: string;
  runs: number;
  skipped?: string;
  unconfirmed?: number;
  outboxPendingAtEnd?: number;
} & Partial<Record<MedianField, number>>;

function summarise(runs: Run[]): SummaryRow[] {
  const groups = new Map<string, Run[]>();
  // A soak is a time series, not a figure to take the median of: it has its own table.
  for (const r of runs.filter((r) => r.scenario !== 'soak')) {
    const key = `${r.target}\u0000${r.scenario}`;
    const group = groups.get(key);
    if (group) group.push(r);
    else groups.set(key, [r]);
  }
  return [...groups.values()].map((rs) => {
    const row: SummaryRow = { target: rs[0].target, scenario: rs[0].scenario, runs: rs.length };
    const measured = rs.filter((r): r is MeasuredRun => !('skipped' in r) && r.scenario !== 'soak');
    if (measured.length === 0) return { ...row, skipped: (rs[0] as SkippedRun).skipped };
    for (const f of MEDIAN_FIELDS) {
      const m = median(measured.map((r) => (r as Partial<Record<MedianField, unknown>>)[f]));
      // CPU per request keeps its microseconds (the GET path is compared to a few µs).
      if (m !== null) row[f] = round(m, f.endsWith('MsPerReq') ? 3 : 2);
    }
    // Orders left unconfirmed: the worst run, not the median (any is a finding).
    const unconfirmed = measured.flatMap((r) => ('unconfirmed' in r ? [r.unconfirmed] : []));
    if (unconfirmed.length > 0) row.unconfirmed = Math.max(...unconfirmed);
    // Events the in-process worker had not delivered when the load stopped: the worst run too.
    const pending = measured.flatMap((r) => ('outboxPendingAtEnd' in r ? [r.outboxPendingAtEnd ?? 0] : []));
    if (pending.length > 0) row.outboxPendingAtEnd = Math.max(...pending);
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
  [
    'outbox delivered/written (most pending at end)',
    (r) =>
      r.outboxWritten === undefined
        ? undefined
        : `${r.outboxDelivered}/${r.outboxWritten} (${r.outboxPendingAtEnd})`,
  ],
];

// Where the CPU went during the measured run (% of one core; ms per request or per event).
const CPU_COLUMNS: Column[] = [
  ['target', (r) => r.target],
  ['scenario', (r) => r.scenario],
  ['procs', (r) => r.serverProcesses],
  ['srv CPU %', (r) => r.serverCpuPct],
  [
    'srv µs/req',
    (r) => (r.serverCpuMsPerReq === undefined ? undefined : round(r.serverCpuMsPerReq * 1000, 0)),
  ],
  ['srv kernel %', (r) => r.serverKernelSharePct],
  ['loop on-CPU %', (r) => r.serverMainOnCpuPct],
  ['loop runq-wait %', (r) => r.serverMainRunqWaitPct],
  ['pg CPU %', (r) => r.postgresCpuPct],
  [
    'pg µs/req',
    (r) => (r.postgresCpuMsPerReq === undefined ? undefined : round(r.postgresCpuMsPerReq * 1000, 0)),
  ],
  ['gen CPU %', (r) => r.generatorCpuPct],
  ['other CPU %', (r) => r.otherCpuPct],
];

const micros = (ms: number | undefined) => (ms === undefined ? undefined : round(ms * 1000, 0));

// lifecycle: POSTs under load, the bench answering as Catalog and Payments over NATS.
const LIFECYCLE_COLUMNS: Column[] = [
  ['target', (r) => r.target],
  ['confirmed/s', (r) => (r.skipped ? `skipped: ${r.skipped}` : r.confirmedPerSec)],
  ['POST/s', (r) => r.postedPerSec],
  ['paid→confirmed p50 ms', (r) => r.p50Ms],
  ['p95 ms', (r) => r.p95Ms],
  ['p99 ms', (r) => r.p99Ms],
  ['unconfirmed (worst)', (r) => r.unconfirmed],
  ['catch-up s', (r) => r.catchUpSeconds],
  ['srv µs/order', (r) => micros(r.serverCpuMsPerReq)],
  ['pg µs/order', (r) => micros(r.postgresCpuMsPerReq)],
  ['nats µs/order', (r) => micros(r.natsCpuMsPerReq)],
  ['RSS MiB', (r) => r.rssMiB],
];

/** Each soak: its samples as a table, and the verdict. */
function printSoaks(soaks: SoakRun[]): void {
  for (const soak of soaks) {
    console.log(
      `\nsoak: ${soak.target}, ${soak.minutes} min of mixed load, ${soak.reqPerSec} req/s, ${soak.errors} errors\n`,
    );
    const heads = [
      't s',
      'RSS MiB (/proc)',
      'RSS MiB (/metrics)',
      'heap used MiB',
      'heap floor MiB',
      'req/s',
      'p99 ms',
      'errors',
    ];
    const rows = soak.samples.map((s) =>
      [s.atS, s.rssMiB, s.metricsRssMiB, s.heapUsedMiB, s.heapFloorMiB, s.reqPerSec, s.p99Ms, s.errors].map(
        (v) => (v === null ? '' : String(v)),
      ),
    );
    const widths = heads.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
    const line = (values: string[]) => `| ${values.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
    console.log(line(heads));
    console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
    for (const r of rows) console.log(line(r));
    console.log(`\nsoak verdict (${soak.target}): ${soak.verdict}`);
  }
}

/** --instructions: each Node target's instructions per GET, and ÷ bare when bare was counted. */
function printInstructions(rows: SummaryRow[], runs: Run[]): void {
  console.log(
    '\ninstructions per GET (callgrind: user space, whole process; the median of rounds 3–5 of ' +
      '3,000 GETs after 30,000 of warm-up):\n',
  );
  const bare = rows.find((r) => r.target === 'bare')?.instructionsPerReq;
  const roundsOf = (target: string) =>
    runs.find(
      (r): r is InstructionsRun => r.scenario === 'get-instructions' && r.target === target && 'rounds' in r,
    )?.rounds;
  printTable(rows, [
    ['target', (r) => r.target],
    ['instructions/GET', (r) => (r.skipped ? `skipped: ${r.skipped}` : r.instructionsPerReq)],
    ['÷ bare', (r) => (bare && r.instructionsPerReq ? round(r.instructionsPerReq / bare, 3) : undefined)],
    ['every round', (r) => roundsOf(r.target)?.join(', ')],
    ['non-200', (r) => r.errors],
  ]);
}

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
      `LOG_LEVEL=${options.logLevel}, DB_POOL_MAX=${meta.poolMax}, ` +
      `node ${meta.nodeFlags.length > 0 ? meta.nodeFlags.join(' ') : '(stock flags)'}` +
      (meta.httpWorker === undefined ? '' : `, worker ${meta.httpWorker ? 'on' : 'off'} during HTTP runs`) +
      `, commit ${meta.commit}\n`,
  );
  const lifecycle = summary.filter((r) => r.scenario === 'lifecycle');
  const instructions = summary.filter((r) => r.scenario === 'get-instructions');
  const others = summary.filter((r) => r.scenario !== 'lifecycle' && r.scenario !== 'get-instructions');
  if (others.length > 0) printTable(others, RESULT_COLUMNS);
  if (lifecycle.length > 0) {
    const load = runs.find((r): r is LifecycleRun => r.scenario === 'lifecycle' && 'load' in r)?.load;
    console.log(
      `\nlifecycle (${load ? `${load}; ` : ''}` +
        'StockReserved + PaymentCaptured published by the bench for every OrderCreated; latency from ' +
        'PaymentCaptured acknowledged to OrderConfirmed received; CPU per confirmed order):\n',
    );
    printTable(lifecycle, LIFECYCLE_COLUMNS);
    for (const r of lifecycle.filter((row) => (row.unconfirmed ?? 0) > 0)) {
      console.log(
        `\nlifecycle: ${r.target}: ${r.unconfirmed} orders were still not confirmed ` +
          `${options.lifecycleGrace} s after the load ended (--lifecycle-grace)`,
      );
    }
  }
  const measured = summary.filter((r) => !r.skipped && r.scenario !== 'get-instructions');
  if (measured.length > 0) {
    console.log(
      "\nwhere the CPU went (% of one core, summed over each server's process tree; srv/pg µs of CPU per " +
        'request, per event for drain, per confirmed order for lifecycle):\n',
    );
    printTable(measured, CPU_COLUMNS);
  }
  if (instructions.length > 0) printInstructions(instructions, runs);
  printSoaks(runs.filter((r): r is SoakRun => r.scenario === 'soak' && !('skipped' in r)));
  if (options.json) {
    writeFileSync(resolve(options.json), `${JSON.stringify({ meta, summary, runs }, null, 2)}\n`);
    console.log(`\nwrote ${options.json}`);
  }
  if (options.cpuProf) {
    const dir = options.cpuProf;
    console.log(
      `\nCPU profiles in ${dir}/<target>: npm run bench:cpuprofile -- ${dir}/ours (or bare, jwt, …)`,
    );
  }
}
