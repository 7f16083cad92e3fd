/** The child processes the bench starts (servers, migrations), and waiting for them to listen. */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { registerCleanup } from './cleanup.js';
import { REPO_ROOT } from './paths.js';

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

export interface BenchProcess {
  pid: number | undefined;
  exited: Promise<ProcessExit>;
  /** The last 64 KiB of its stderr, for messages. */
  stderr(): string;
  running(): boolean;
  /** SIGTERM, then SIGKILL after timeoutMs. */
  stop(timeoutMs?: number): Promise<ProcessExit>;
}

export interface StartProcessOptions {
  env: NodeJS.ProcessEnv;
  label: string;
  /** Where its stdout goes (appended); /dev/null when absent. */
  stdoutFile?: string | undefined;
  cwd?: string;
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** A child process with its exit as a promise and its stderr kept; stopped by the cleanups. */
export function startProcess(
  command: string,
  args: string[],
  { env, stdoutFile, label, cwd = REPO_ROOT }: StartProcessOptions,
): BenchProcess {
  const out = stdoutFile ? openSync(stdoutFile, 'a') : openSync('/dev/null', 'w');
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', out, 'pipe'], detached: false });
  closeSync(out);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-65_536);
  });
  const exited = new Promise<ProcessExit>((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
    child.once('error', (error) => resolveExit({ code: -1, signal: null, error }));
  });
  const proc: BenchProcess = {
    pid: child.pid,
    exited,
    stderr: () => stderr,
    running: () => child.exitCode === null && child.signalCode === null,
    async stop(timeoutMs = 15_000) {
      if (!proc.running()) return exited;
      child.kill('SIGTERM');
      // ref: false: a child that exits in time leaves no timer holding the bench open.
      const done = await Promise.race([exited, sleep(timeoutMs, undefined, { ref: false })]);
      if (done) return done;
      console.error(`bench: ${label} ignored SIGTERM for ${timeoutMs} ms: killing it`);
      child.kill('SIGKILL');
      return exited;
    },
  };
  registerCleanup(() => proc.stop());
  return proc;
}

/** Polls url until it answers 200 (true), or the process exits or timeoutMs passes (false). */
export async function waitHttpOk(url: string, proc: BenchProcess, timeoutMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!proc.running()) return false;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return true;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  return false;
}
