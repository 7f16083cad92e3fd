/**
 * The load generators: wrk with bench/{get,post,mixed}.lua, or autocannon when wrk is missing.
 * Both answer the same figures for one run.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Request } from 'autocannon';
import { procCpu } from './cpu.js';
import type { BenchOptions, HttpScenario } from './options.js';
import { benchOrder } from './orders.js';
import { BENCH_DIR } from './paths.js';

/** A server with the ids of its seeded orders, one per line. */
export interface LoadTarget {
  name: string;
  url: string;
  idsFile: string;
  /** Bearer tokens, one per line, sent in turn (BENCH_TOKENS_FILE for the wrk scripts). */
  tokensFile?: string | undefined;
}

/** One run of load: latencies in ms, CPU time of the load generator in s. */
export interface LoadResult {
  requests: number;
  seconds: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  non2xx: number;
  socketErrors: number;
  generatorCpu: number;
}

/** What bench/wrk-lib.lua prints after `WRK_RESULT `. */
interface WrkResult {
  requests: number;
  durationUs: number;
  statusErrors: number;
  connectErrors: number;
  readErrors: number;
  writeErrors: number;
  timeouts: number;
  p50Us: number;
  p95Us: number;
  p99Us: number;
  maxUs: number;
}

export type LoadRunner = (
  options: BenchOptions,
  target: LoadTarget,
  scenario: HttpScenario,
  seconds: number,
  runId: string,
) => Promise<LoadResult>;

export const runWrk: LoadRunner = (options, target, scenario, seconds, runId) => {
  const script = join(BENCH_DIR, `${scenario}.lua`);
  const scriptArgs =
    scenario === 'get' ? [target.idsFile] : scenario === 'post' ? [runId] : [target.idsFile, runId];
  const args = [
    `-t${Math.min(options.threads, options.connections)}`,
    `-c${options.connections}`,
    `-d${seconds}s`,
    '--timeout',
    '10s',
    '-s',
    script,
    target.url,
    '--',
    ...scriptArgs,
  ];
  return new Promise((resolveRun, reject) => {
    const env = target.tokensFile ? { ...process.env, BENCH_TOKENS_FILE: target.tokensFile } : process.env;
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    // wrk's own CPU time: sampled while it runs (the last sample is at most 100 ms before its end).
    let generatorCpu = 0;
    const sampler = setInterval(() => {
      generatorCpu = procCpu(child.pid) ?? generatorCpu;
    }, 100);
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c;
    });
    child.stderr.on('data', (c: Buffer) => {
      err += c;
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.once('exit', (code) => {
      clearTimeout(killer);
      clearInterval(sampler);
      const line = out.split('\n').find((l) => l.startsWith('WRK_RESULT '));
      if (code !== 0 || !line) {
        reject(new Error(`wrk exited ${code}: ${err.trim() || out.trim()}`));
        return;
      }
      const r = JSON.parse(line.slice('WRK_RESULT '.length)) as WrkResult;
      resolveRun({
        requests: r.requests,
        seconds: r.durationUs / 1e6,
        p50: r.p50Us / 1000,
        p95: r.p95Us / 1000,
        p99: r.p99Us / 1000,
        max: r.maxUs / 1000,
        non2xx: r.statusErrors,
        socketErrors: r.connectErrors + r.readErrors + r.writeErrors + r.timeouts,
        generatorCpu,
      });
    });
  });
};

export const runAutocannon: LoadRunner = async (options, target, scenario, seconds, runId) => {
  const { default: autocannon } = await import('autocannon');
  const ids = scenario === 'post' ? [] : readFileSync(target.idsFile, 'utf8').split('\n').filter(Boolean);
  let counter = 0;
  const tokens = target.tokensFile ? readFileSync(target.tokensFile, 'utf8').split('\n').filter(Boolean) : [];
  const auth = (): Record<string, string> =>
    tokens.length ? { authorization: `Bearer ${tokens[counter % tokens.length]}` } : {};
  const get = (req: Request): Request => ({
    ...req,
    method: 'GET',
    path: `/orders/${ids[(Math.random() * ids.length) | 0]}`,
    headers: auth(),
  });
  const post = (req: Request): Request => {
    counter++;
    return {
      ...req,
      method: 'POST',
      path: '/orders',
      headers: { 'content-type': 'application/json', 'idempotency-key': `${runId}-${counter}`, ...auth() },
      body: JSON.stringify(benchOrder(counter)),
    };
  };
  // Every fifth request is a POST (post() advances the counter itself).
  const mixed = (req: Request): Request => {
    if (counter % 5 === 4) return post(req);
    counter++;
    return get(req);
  };
  const setupRequest = scenario === 'get' ? get : scenario === 'post' ? post : mixed;
  const latencies: number[] = [];
  const instance = autocannon({
    url: target.url,
    connections: options.connections,
    duration: seconds,
    timeout: 10,
    requests: [{ setupRequest }],
  });
  instance.on('response', (_client, _status, _bytes, responseTime: number) => latencies.push(responseTime));
  const cpuBefore = process.cpuUsage();
  const result = await instance;
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : 0;
  return {
    requests: result.requests.total,
    seconds: result.duration,
    p50: pct(0.5),
    p95: pct(0.95),
    p99: pct(0.99),
    max: latencies.at(-1) ?? 0,
    non2xx: result.non2xx,
    socketErrors: result.errors + result.timeouts,
    generatorCpu: (cpu.user + cpu.system) / 1e6,
  };
};
