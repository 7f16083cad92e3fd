/** What a run measured and how: the header of the report and the `meta` of --json. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import type { BenchOptions, Variant } from './options.js';

export interface RunMeta {
  startedAt: string;
  app: string;
  commit: string | null;
  node: string;
  cpus: number;
  cpuModel: string | undefined;
  tool: string;
  duration: number;
  warmup: number;
  connections: number;
  threads: number;
  repeat: number;
  seed: number;
  poolMax: string;
  logLevel: string;
  /** Node flags of ours and the bare baseline (the image's, unless --stock-node). */
  nodeFlags: string[];
  scenarios: string[];
  variants: Variant[];
  /** The bench database, when the bench created one (not with --target). */
  database?: string;
  /** Whether our server ran its in-process worker during the HTTP scenarios. */
  httpWorker?: boolean;
}

export function describeRun(options: BenchOptions): RunMeta {
  return {
    startedAt: new Date().toISOString(),
    app: options.app,
    commit: gitCommit(options.app),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    tool: options.tool,
    duration: options.duration,
    warmup: options.warmup,
    connections: options.connections,
    threads: options.threads,
    repeat: options.repeat,
    seed: options.seed,
    poolMax: options.poolMax ?? 'default (10)',
    logLevel: options.logLevel,
    nodeFlags: options.nodeFlags,
    scenarios: options.scenarios,
    variants: options.variants,
  };
}

/** The app's commit: a snapshot made with bench/snapshot.sh records it in COMMIT; else git's HEAD (+dirty). */
function gitCommit(dir: string): string | null {
  try {
    return readFileSync(join(dir, 'COMMIT'), 'utf8').trim();
  } catch {
    // not a snapshot
  }
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'migrations'], {
      cwd: dir,
      encoding: 'utf8',
    }).trim();
    return dirty ? `${head}+uncommitted` : head;
  } catch {
    return null;
  }
}
