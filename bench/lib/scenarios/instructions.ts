/**
 * --instructions: how many instructions a Node target executes per GET, counted by valgrind's
 * callgrind. Unlike CPU time, the count does not depend on what else the machine is doing (other
 * tenants, frequency, cache pressure): for the same build and the same requests it repeats within
 * about 1 %, where CPU per GET on a shared machine varies by ±5 % between runs. It counts user
 * space only (the syscalls' kernel time is not in it) and every thread of the process (V8's
 * compiler and GC threads too), which is why the warm-up is long and the first rounds are dropped.
 * And a count is not a duration: cache misses, allocation and GC timing cost time without
 * costing instructions (a lever counted −1.7 % has measured +8 % on the clock), so a lever it
 * shows should also not be contradicted by the clock (docs/performance.md).
 *
 * Each Node target is started once more under callgrind with its counting off, on the same
 * database, without its worker; it gets WARMUP_REQUESTS GETs, then ROUNDS rounds of
 * ROUND_REQUESTS with counting switched on for each (callgrind_control), and the median of the
 * rounds kept is its figure.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { median } from '../round.js';
import { type Target, WRAPPED_HOST } from '../servers.js';
import type { SkippedRun } from './drain.js';

const WARMUP_REQUESTS = 30_000;
const ROUNDS = 5;
/** The first rounds still count V8 compiling what the warm-up made hot. */
const DROPPED_ROUNDS = 2;
const ROUND_REQUESTS = 3_000;
const CONNECTIONS = 8;

export interface InstructionsRun {
  target: string;
  scenario: 'get-instructions';
  repeat: 1;
  /** Instructions per GET: the median of the rounds kept. */
  instructionsPerReq: number;
  /** Every round's instructions per GET, the dropped ones first. */
  rounds: number[];
  /** Answers other than 200 (the figure is of 200s only when 0). */
  errors: number;
}

/** Why --instructions cannot run here, or undefined when valgrind and callgrind_control are installed. */
export function instructionsUnavailable(): string | undefined {
  for (const tool of ['valgrind', 'callgrind_control']) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).error) {
      return `${tool} is not installed (Debian package valgrind)`;
    }
  }
  return undefined;
}

/** Counts each target's instructions per GET, one target after the other. */
export async function runInstructions(
  targets: (Target & { idsFile: string; tokensFile?: string })[],
  work: string,
): Promise<(InstructionsRun | SkippedRun)[]> {
  const unavailable = instructionsUnavailable();
  const runs: (InstructionsRun | SkippedRun)[] = [];
  for (const target of targets) {
    if (!target.startWrapped) continue;
    if (unavailable) {
      console.error(`bench: --instructions skipped for ${target.name}: ${unavailable}`);
      runs.push({ target: target.name, scenario: 'get-instructions', repeat: 1, skipped: unavailable });
      continue;
    }
    process.stderr.write(`bench: instructions: ${target.name} under callgrind ... `);
    const run = await countTarget(target, work);
    process.stderr.write(`${run.instructionsPerReq} per GET (rounds ${run.rounds.join(', ')})\n`);
    runs.push(run);
  }
  return runs;
}

async function countTarget(
  target: Target & { idsFile: string; tokensFile?: string },
  work: string,
): Promise<InstructionsRun> {
  const outFile = join(work, `callgrind-${target.name}`);
  const server = await (target.startWrapped as NonNullable<Target['startWrapped']>)([
    'valgrind',
    '--tool=callgrind',
    // V8 writes and rewrites machine code in anonymous memory.
    '--smc-check=all-non-file',
    '--instr-atstart=no',
    `--callgrind-out-file=${outFile}`,
  ]);
  const pid = String(server.proc.pid);
  const ids = readFileSync(target.idsFile, 'utf8').split('\n').filter(Boolean);
  const tokens = target.tokensFile ? readFileSync(target.tokensFile, 'utf8').split('\n').filter(Boolean) : [];
  const load = (count: number) => getMany(server.url, ids, tokens, count);
  try {
    let errors = await load(WARMUP_REQUESTS);
    const rounds: number[] = [];
    for (let round = 1; round <= ROUNDS; round++) {
      control(pid, '--zero');
      control(pid, '--instr=on');
      errors += await load(ROUND_REQUESTS);
      control(pid, '--instr=off');
      control(pid, '--dump');
      rounds.push(Math.round((await dumpedTotal(`${outFile}.${round}`)) / ROUND_REQUESTS));
    }
    return {
      target: target.name,
      scenario: 'get-instructions',
      repeat: 1,
      instructionsPerReq: Math.round(median(rounds.slice(DROPPED_ROUNDS)) ?? Number.NaN),
      rounds,
      errors,
    };
  } finally {
    await server.proc.stop(60_000);
  }
}

/** Sends one command to the callgrind in `pid` (valgrind matches it by $HOST, set alike on both). */
function control(pid: string, command: string): void {
  const result = spawnSync('callgrind_control', [command, pid], {
    env: { ...process.env, HOST: WRAPPED_HOST },
    encoding: 'utf8',
  });
  if (result.status !== 0 || /error|not detected/i.test(`${result.stdout}${result.stderr}`)) {
    throw new Error(
      `callgrind_control ${command} ${pid} failed: ${`${result.stdout}${result.stderr}`.trim()}`,
    );
  }
}

/** The instruction total of a dump, once callgrind has written it. */
async function dumpedTotal(file: string): Promise<number> {
  for (let waited = 0; waited < 60_000; waited += 100) {
    if (existsSync(file)) {
      const total = /^totals: (\d+)/m.exec(readFileSync(file, 'utf8'));
      if (total) return Number(total[1]);
    }
    await sleep(100);
  }
  throw new Error(`callgrind wrote no totals to ${file}`);
}

/** `count` GETs of the ids in turn over CONNECTIONS keep-alive connections; returns the non-200s. */
function getMany(url: string, ids: string[], tokens: string[], count: number): Promise<number> {
  const { hostname, port } = new URL(url);
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  let sent = 0;
  let answered = 0;
  let errors = 0;
  return new Promise<number>((resolve, reject) => {
    const lane = () => {
      if (sent >= count) return;
      const n = sent++;
      const headers: Record<string, string> = {};
      if (tokens.length > 0) headers.authorization = `Bearer ${tokens[n % tokens.length]}`;
      const request = get(
        { hostname, port, path: `/orders/${ids[n % ids.length]}`, agent, headers },
        (response) => {
          if (response.statusCode !== 200) errors++;
          response.resume();
          response.once('end', () => {
            answered++;
            if (answered === count) resolve(errors);
            else lane();
          });
        },
      );
      request.once('error', reject);
    };
    for (let i = 0; i < Math.min(CONNECTIONS, count); i++) lane();
  }).finally(() => agent.destroy());
}
