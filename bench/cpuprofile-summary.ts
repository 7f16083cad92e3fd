/**
 * Summarises V8 .cpuprofile files (from node --cpu-prof): self time by function and by where the
 * code lives (our dist/, a node_modules package, Node's internals, GC, idle).
 *
 *   npm run bench:cpuprofile -- FILE_OR_DIR... [--top N] [--json]
 *   npm run bench:cpuprofile -- FILE_OR_DIR... --callers writev [--depth 6]
 *       (the call paths that lead to FUNCTION's self time, heaviest first)
 *
 * Self time of a node = the sum of the sampling intervals (timeDeltas) whose sample landed in it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

/** The parts of a .cpuprofile this summary reads. */
interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface CpuProfile {
  nodes: { id: number; callFrame: CallFrame; children?: number[] }[];
  samples: number[];
  timeDeltas: number[];
}

/** Microseconds of self time per key. */
type Tally = Map<string, number>;

interface Tallies {
  byFunction: Tally;
  byCategory: Tally;
  /** With --callers: the call paths above that function, joined by newlines. */
  callerPaths: Tally;
  total: number;
}

const USAGE =
  'usage: npm run bench:cpuprofile -- FILE_OR_DIR... [--top N] [--json] [--callers FUNCTION [--depth D]]';

/** Where a function's code lives, for the coarse breakdown. */
function category(url: string, functionName: string): string {
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle';
    if (functionName === '(program)') return '(program): native, not attributed';
    return `native: ${functionName || '(anonymous)'}`;
  }
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `npm: ${pkg[1]}`;
  if (url.startsWith('node:')) return `node: ${url.slice(5).split('/')[0]}`;
  const dist = /\/dist\/(.+)$/.exec(url);
  if (dist) return `app: ${dist[1].split('/').slice(0, -1).join('/') || '.'}`;
  return url;
}

function shortUrl(url: string): string {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '');
}

const frameName = (cf: CallFrame) =>
  `${cf.functionName || '(anonymous)'}${cf.url ? ` ${shortUrl(cf.url)}:${cf.lineNumber + 1}` : ''}`;

function add<K>(tally: Map<K, number>, key: K, us: number): void {
  tally.set(key, (tally.get(key) ?? 0) + us);
}

function listProfiles(paths: string[]): string[] {
  return paths.flatMap((p) =>
    statSync(p).isDirectory()
      ? readdirSync(p)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => join(p, f))
      : [p],
  );
}

function tally(files: string[], callers: string | undefined, depth: number): Tallies {
  const t: Tallies = { byFunction: new Map(), byCategory: new Map(), callerPaths: new Map(), total: 0 };
  for (const file of files) {
    const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
    const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
    const parent = new Map<number, number>();
    for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
    const self = new Map<number, number>();
    for (let i = 0; i < profile.samples.length; i++)
      add(self, profile.samples[i], profile.timeDeltas[i] ?? 0);
    for (const [id, us] of self) {
      const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
      add(
        t.byFunction,
        `${functionName || '(anonymous)'}\u0000${shortUrl(url)}${url ? `:${lineNumber + 1}` : ''}`,
        us,
      );
      if (callers !== undefined && functionName === callers) {
        const path: string[] = [];
        for (let p = parent.get(id); p !== undefined && path.length < depth; p = parent.get(p)) {
          path.push(frameName(nodes.get(p)!.callFrame));
        }
        add(t.callerPaths, path.join('\n      <- '), us);
      }
      add(t.byCategory, category(url, functionName), us);
      t.total += us;
    }
  }
  return t;
}

function printCallers(callers: string, callerPaths: Tally, top: number): void {
  let sum = 0;
  for (const us of callerPaths.values()) sum += us;
  console.log(`${callers}: ${(sum / 1000).toFixed(0)} ms self time; call paths, heaviest first:\n`);
  for (const [path, us] of [...callerPaths.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((us / sum) * 100).toFixed(1).padStart(5)} %  ${callers}\n      <- ${path}\n`);
  }
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      top: { type: 'string', default: '30' },
      json: { type: 'boolean', default: false },
      callers: { type: 'string' },
      depth: { type: 'string', default: '6' },
    },
  });
  if (positionals.length === 0) {
    console.error(USAGE);
    process.exit(2);
  }
  const top = Number(values.top);
  const files = listProfiles(positionals);
  const { byFunction, byCategory, callerPaths, total } = tally(files, values.callers, Number(values.depth));
  const idle = byCategory.get('idle') ?? 0;
  const busy = total - idle;
  const rows = (map: Tally) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([key, us]) => ({ key, ms: Math.round(us / 1000), pctOfBusy: busy ? (us / busy) * 100 : 0 }));

  if (values.callers !== undefined) {
    printCallers(values.callers, callerPaths, top);
  } else if (values.json) {
    const summary = {
      files,
      totalMs: Math.round(total / 1000),
      idleMs: Math.round(idle / 1000),
      categories: rows(byCategory),
      functions: rows(byFunction).slice(0, top),
    };
    console.log(JSON.stringify(summary, null, 2));
  } else {
    const pct = (v: number) => `${v.toFixed(1).padStart(5)} %`;
    console.log(
      `${files.length} profile(s): ${(total / 1e6).toFixed(1)} s sampled, ${(idle / 1e6).toFixed(1)} s idle, ` +
        `${(busy / 1e6).toFixed(1)} s busy (percentages below are of busy time)\n`,
    );
    console.log('self time by where the code lives:');
    for (const r of rows(byCategory)
      .filter((r) => r.key !== 'idle')
      .slice(0, top)) {
      console.log(`  ${pct(r.pctOfBusy)}  ${String(r.ms).padStart(7)} ms  ${r.key}`);
    }
    console.log(`\ntop ${top} functions by self time:`);
    for (const r of rows(byFunction)
      .filter((r) => !r.key.startsWith('(idle)'))
      .slice(0, top)) {
      const [fn, where] = r.key.split('\u0000');
      console.log(`  ${pct(r.pctOfBusy)}  ${String(r.ms).padStart(7)} ms  ${fn}  ${where}`);
    }
  }
}

main();
