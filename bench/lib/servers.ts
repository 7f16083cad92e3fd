/** The servers under load: ours (`orders serve`, also as variants) and a peer implementation. */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchOptions, HttpScenario } from './options.js';
import { BENCH_DIR } from './paths.js';
import { type BenchProcess, freePort, startProcess, waitHttpOk } from './processes.js';

/** A server the scenarios load; `proc` is absent for one the bench did not start (--target, --compare). */
export interface Target {
  name: string;
  url: string;
  proc?: BenchProcess;
  /** Ours (Node): its main thread is the event loop the loop columns describe. */
  node?: boolean;
  /** The HTTP scenarios it serves (all when absent): the bare baseline serves only `get`. */
  scenarios?: readonly HttpScenario[];
  /** Read the orders seeded through this other target (same database) instead of seeding. */
  seedFrom?: string;
  /** Bearer tokens, one per line, sent in turn on every request (AUTH_MODE=jwt). */
  tokensFile?: string;
  /** One of them, for seeding. */
  token?: string;
  /** Ours with its in-process worker: its database, where the HTTP runs count its outbox. */
  workerDbUrl?: string;
  /**
   * Starts another instance of this Node target, the same in every setting but without its worker
   * or a CPU profile, with its command run by `wrap` (--instructions: valgrind).
   */
  startWrapped?: (wrap: string[]) => Promise<Target & { proc: BenchProcess }>;
}

/**
 * The environment variable valgrind names its control pipes after (with $USER): callgrind_control
 * finds a process only when both have the same, so a wrapped server gets this one.
 */
export const WRAPPED_HOST = '127.0.0.1';

/** How long a server under valgrind may take to listen (it starts ~10× slower). */
const WRAPPED_START_MS = 180_000;

/** `command args` run by `wrap` when given (its first word the command, the rest before ours). */
function wrapped(wrap: string[] | undefined, command: string, args: string[]): [string, string[]] {
  return wrap && wrap.length > 0
    ? [wrap[0] as string, [...wrap.slice(1), command, ...args]]
    : [command, args];
}

/** Ours (or a variant of ours), started by the bench. */
export interface OurServer extends Target {
  proc: BenchProcess;
  node: true;
}

/** Thrown when ours does not start because this build has no in-process worker. */
export class WorkerUnavailableError extends Error {}

interface OursSettings {
  worker: boolean;
  cpuProf?: string | undefined;
  name?: string;
  extraEnv?: Record<string, string>;
  /** Another build than --app (a variant's @app). */
  app?: string | undefined;
  /** Run by this command (valgrind): see Target.startWrapped. */
  wrap?: string[] | undefined;
}

export async function startOurs(
  options: BenchOptions,
  dbUrl: string,
  settings: OursSettings,
): Promise<OurServer> {
  const { worker, cpuProf, name = 'ours', extraEnv = {}, app, wrap } = settings;
  const port = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: dbUrl,
    LOG_LEVEL: options.logLevel,
    SHUTDOWN_TIMEOUT_MS: '10000',
    NODE_ENV: 'production',
    // AUTH_MODE defaults to jwt with DATABASE_URL; a variant may set jwt through extraEnv.
    AUTH_MODE: 'none',
  };
  delete env.NODE_OPTIONS;
  if (options.poolMax !== undefined) env.DB_POOL_MAX = options.poolMax;
  Object.assign(env, extraEnv);
  if (wrap) env.HOST = WRAPPED_HOST;
  const profileDir = cpuProf ? join(cpuProf, name) : undefined;
  const args = [
    ...options.nodeFlags,
    ...cpuProfArgs(profileDir),
    'bin/orders.js',
    'serve',
    '--port',
    String(port),
    '--host',
    '127.0.0.1',
  ];
  if (!worker) args.push('--no-worker');
  const proc = startProcess(...wrapped(wrap, process.execPath, args), {
    env,
    stdoutFile: wrap ? undefined : options.logFile,
    label: `orders serve ${name} (port ${port})`,
    cwd: app ?? options.app,
  });
  const url = `http://127.0.0.1:${port}`;
  if (!(await waitHttpOk(`${url}/readyz`, proc, wrap ? WRAPPED_START_MS : undefined))) {
    await proc.stop();
    if (profileDir && existsSync(profileDir)) {
      // A start that failed still writes a profile at exit: keep only the server that ran.
      for (const f of readdirSync(profileDir)) if (f.includes(`.${proc.pid}.`)) rmSync(join(profileDir, f));
    }
    const message = proc.stderr().trim() || '(no output)';
    const reason = `orders serve did not become ready: ${message}`;
    throw /worker is not implemented/i.test(message) ? new WorkerUnavailableError(reason) : new Error(reason);
  }
  return {
    name,
    url,
    proc,
    node: true,
    ...(worker ? { workerDbUrl: dbUrl } : {}),
    // valgrind follows no forks: `serve --processes N` is not counted.
    ...(Number(extraEnv.SERVE_PROCESSES ?? 1) > 1
      ? {}
      : {
          startWrapped: (wrapWith: string[]) =>
            startOurs(options, dbUrl, { ...settings, worker: false, cpuProf: undefined, wrap: wrapWith }),
        }),
  };
}

/** `node --cpu-prof` into DIR (--cpu-prof DIR gives every Node target a folder of its own). */
function cpuProfArgs(dir: string | undefined): string[] {
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/** Starts ours for the HTTP scenarios, with the worker when it can (returns whether it did). */
export async function startOursForHttp(
  options: BenchOptions,
  dbUrl: string,
): Promise<{ target: OurServer; worker: boolean }> {
  if (options.worker !== 'off') {
    try {
      return {
        target: await startOurs(options, dbUrl, { worker: true, cpuProf: options.cpuProf }),
        worker: true,
      };
    } catch (error) {
      if (options.worker === 'on' || !(error instanceof WorkerUnavailableError)) throw error;
      console.error('bench: the in-process worker is unavailable; HTTP scenarios run with --no-worker');
    }
  }
  return {
    target: await startOurs(options, dbUrl, { worker: false, cpuProf: options.cpuProf }),
    worker: false,
  };
}

/** A comparison server's environment: the bench database, its port on loopback, our pool size. */
function comparisonEnv(options: BenchOptions, dbUrl: string, port: number): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: dbUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
  };
  if (options.poolMax !== undefined) env.DB_POOL_MAX = options.poolMax;
  return env;
}

/** Starts --peer-cmd with the bench database, a free port and the servers' settings. */
export async function startPeer(options: BenchOptions, dbUrl: string, peerCmd: string): Promise<Target> {
  const port = await freePort();
  const env = { ...comparisonEnv(options, dbUrl, port), LOG_LEVEL: options.logLevel };
  // exec: the shell becomes the server, so its pid (RSS, CPU) is the server's.
  const proc = startProcess('sh', ['-c', `exec ${peerCmd}`], {
    env,
    label: `${options.peerName} (port ${port})`,
  });
  const url = `http://127.0.0.1:${port}`;
  if (!(await waitHttpOk(`${url}/readyz`, proc))) {
    await proc.stop();
    throw new Error(`${options.peerName} did not become ready: ${proc.stderr().trim() || '(no output)'}`);
  }
  return { name: options.peerName, url, proc };
}

/**
 * The bare fastify + pg GET (bench/baseline/bare-get.ts, compiled next to this file) on our
 * database: the floor our GET is measured against. It reads the orders seeded through `seedFrom`.
 */
export async function startBaseline(
  options: BenchOptions,
  dbUrl: string,
  seedFrom: string,
  wrap?: string[],
): Promise<Target & { proc: BenchProcess }> {
  const port = await freePort();
  const env = comparisonEnv(options, dbUrl, port);
  delete env.NODE_OPTIONS;
  if (wrap) env.HOST = WRAPPED_HOST;
  const script = join(BENCH_DIR, 'dist', 'bench', 'baseline', 'bare-get.js');
  const args = [
    ...options.nodeFlags,
    ...cpuProfArgs(!wrap && options.cpuProf ? join(options.cpuProf, 'bare') : undefined),
    script,
  ];
  const proc = startProcess(...wrapped(wrap, process.execPath, args), { env, label: `bare (port ${port})` });
  const url = `http://127.0.0.1:${port}`;
  if (!(await waitHttpOk(`${url}/readyz`, proc, wrap ? WRAPPED_START_MS : undefined))) {
    await proc.stop();
    throw new Error(`bare did not become ready: ${proc.stderr().trim() || '(no output)'}`);
  }
  return {
    name: 'bare',
    url,
    proc,
    node: true,
    scenarios: ['get'],
    seedFrom,
    startWrapped: (wrapWith) => startBaseline(options, dbUrl, seedFrom, wrapWith),
  };
}
