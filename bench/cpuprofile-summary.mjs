#!/usr/bin/env node
/**
 * Summarises V8 .cpuprofile files (from node --cpu-prof): self time by function and by where the
 * code lives (our dist/, a node_modules package, Node's internals, GC, idle).
 *
 *   node bench/cpuprofile-summary.mjs FILE_OR_DIR... [--top N] [--json]
 *   node bench/cpuprofile-summary.mjs FILE_OR_DIR... --callers writev [--depth 6]
 *       (the call paths that lead to FUNCTION's self time, heaviest first)
 *
 * Self time of a node = the sum of the sampling intervals (timeDeltas) whose sample landed in it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

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
  console.error(
    'usage: node bench/cpuprofile-summary.mjs FILE_OR_DIR... [--top N] [--json] [--callers FUNCTION [--depth D]]',
  );
  process.exit(2);
}
const top = Number(values.top);

const files = positionals.flatMap((p) =>
  statSync(p).isDirectory()
    ? readdirSync(p)
        .filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => join(p, f))
    : [p],
);

/** Where a function's code lives, for the coarse breakdown. */
function category(url, functionName) {
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

function shortUrl(url) {
  if (!url) return '';
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) return url.slice(nm + 'node_modules/'.length);
  const dist = url.indexOf('/dist/');
  if (dist >= 0) return url.slice(dist + 1);
  return url.replace(/^file:\/\//, '');
}

const frameName = (cf) =>
  `${cf.functionName || '(anonymous)'}${cf.url ? ` ${shortUrl(cf.url)}:${cf.lineNumber + 1}` : ''}`;
const callerPaths = new Map();
const byFunction = new Map();
const byCategory = new Map();
let total = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = profile.timeDeltas[i] ?? 0;
    self.set(profile.samples[i], (self.get(profile.samples[i]) ?? 0) + dt);
  }
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = nodes.get(id).callFrame;
    const key = `${functionName || '(anonymous)'}\u0000${shortUrl(url)}${url ? `:${lineNumber + 1}` : ''}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    if (values.callers !== undefined && functionName === values.callers) {
      const path = [];
      for (let p = parent.get(id); p !== undefined && path.length < Number(values.depth); p = parent.get(p)) {
        path.push(frameName(nodes.get(p).callFrame));
      }
      const key = path.join('\n      <- ');
      callerPaths.set(key, (callerPaths.get(key) ?? 0) + us);
    }
    const cat = category(url, functionName);
    byCategory.set(cat, (byCategory.get(cat) ?? 0) + us);
    total += us;
  }
}

const idle = byCategory.get('idle') ?? 0;
const busy = total - idle;
const rows = (map) =>
  [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([key, us]) => ({ key, ms: Math.round(us / 1000), pctOfBusy: busy ? (us / busy) * 100 : 0 }));

if (values.callers !== undefined) {
  let sum = 0;
  for (const us of callerPaths.values()) sum += us;
  console.log(`${values.callers}: ${(sum / 1000).toFixed(0)} ms self time; call paths, heaviest first:\n`);
  for (const [path, us] of [...callerPaths.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${((us / sum) * 100).toFixed(1).padStart(5)} %  ${values.callers}\n      <- ${path}\n`);
  }
} else if (values.json) {
  console.log(
    JSON.stringify(
      {
        files,
        totalMs: Math.round(total / 1000),
        idleMs: Math.round(idle / 1000),
        categories: rows(byCategory),
        functions: rows(byFunction).slice(0, top),
      },
      null,
      2,
    ),
  );
} else {
  const pct = (v) => `${v.toFixed(1).padStart(5)} %`;
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
