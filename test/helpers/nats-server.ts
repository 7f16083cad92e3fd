/**
 * A private nats-server for tests that need one configured their way (credentials, a server to
 * stop): on a free port, JetStream in a temporary directory, stopped and removed afterwards.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { freePort } from './process.js';

function findBinary(): string | undefined {
  const candidates = [
    process.env.NATS_SERVER_BIN,
    ...(process.env.PATH ?? '').split(delimiter).map((dir) => dir && join(dir, 'nats-server')),
    '/usr/sbin/nats-server',
    '/usr/local/bin/nats-server',
  ];
  for (const candidate of candidates) {
    if (!candidate) continue;
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

/** The nats-server binary, when this machine has one. */
export const NATS_SERVER_BIN = findBinary();
export const NEEDS_NATS_SERVER = 'needs the nats-server binary (on PATH, in /usr/sbin, or NATS_SERVER_BIN)';

export interface NatsServer {
  /** `127.0.0.1:PORT`, to put in a URL. */
  hostPort: string;
  /** Everything the server printed, for a failing test's message. */
  output(): string;
  stop(): Promise<void>;
}

/** Starts nats-server with JetStream and `args` (e.g. `--user u --pass p`); resolves once it is ready. */
export async function startNatsServer(args: string[] = []): Promise<NatsServer> {
  if (!NATS_SERVER_BIN) throw new Error(NEEDS_NATS_SERVER);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'orders-nats-'));
  const child: ChildProcess = spawn(
    NATS_SERVER_BIN,
    ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`nats-server did not start within 10 s:\n${output}`)),
      10_000,
    );
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (output.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`nats-server exited at start:\n${output}`));
    });
  });
  return {
    hostPort: `127.0.0.1:${port}`,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
