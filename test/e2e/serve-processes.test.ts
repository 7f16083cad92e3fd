/**
 * `orders serve --processes N` / SERVE_PROCESSES, the built binary on a real PostgreSQL: one
 * port answered by every process, /metrics summed across them whichever answers the scrape, the
 * worker in one process only (and taken over by its replacement), a drain of every process on
 * SIGTERM, children that do not outlive a killed primary, and the refusals (exit 2).
 */
import { once } from 'node:events';
import { request } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  adminQuery,
  createTestDatabase,
  NEEDS_SERVER,
  serverUrl,
  type TestDatabase,
  withDatabase,
} from '../helpers/db.js';
import { freePort, runOrders, type Spawned, spawnOrders } from '../helpers/process.js';

const server = serverUrl();
const dbName = `orders_e2e_procs_${process.pid}_${Date.now()}`;
const databaseUrl = server ? withDatabase(server, dbName) : '';

type LogLine = Record<string, unknown> & { msg?: string; pid?: number };

/** The JSON lines every process wrote to the shared stdout (a line that is not JSON is skipped). */
function logLines(serve: Spawned): LogLine[] {
  return serve
    .stdout()
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as LogLine];
      } catch {
        return [];
      }
    });
}

async function until<T>(
  what: string,
  read: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A request on a connection of its own: the cluster hands each connection to the next process,
 * and no pooled keep-alive connection outlives a killed process.
 */
function onNewConnection(
  port: number,
  path: string,
  options: { method?: string; json?: unknown } = {},
): Promise<{ status: number; body: string }> {
  const payload = options.json === undefined ? undefined : JSON.stringify(options.json);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: options.method ?? 'GET',
        agent: false,
        timeout: 10_000,
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          body += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${path}: no answer in 10 s`)));
    req.end(payload);
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The value of one sample line (`name{labels} value`) of a Prometheus text exposition. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Every primary started here: one a failed test left running is killed (its children follow it). */
const primaries: Spawned[] = [];
afterEach(() => {
  for (const serve of primaries.splice(0)) serve.child.kill('SIGKILL');
});

/** Starts `serve --processes N` and waits for the primary's "listening" line (every process listens). */
async function startCluster(processes: number, env: Record<string, string> = {}, args: string[] = []) {
  const port = await freePort();
  const serve = spawnOrders(['serve', '--processes', String(processes), ...args], {
    DATABASE_URL: databaseUrl,
    AUTH_MODE: 'none',
    PORT: String(port),
    HOST: '127.0.0.1',
    ...env,
  });
  primaries.push(serve);
  const listening = await until(
    `the primary's listening line\n${serve.stdout()}${serve.stderr()}`,
    () => logLines(serve).find((l) => l.primary === true && l.msg === 'orders serve listening'),
    60_000,
  );
  const children = () =>
    logLines(serve).filter((l) => l.msg === 'orders serve listening' && typeof l.serveProcess === 'number');
  // The primary hears of a listen before that child has logged its own line.
  await until("every child's listening line", () => children().length >= processes);
  return { serve, port, listening, children };
}

describe.skipIf(!server)(
  `orders serve --processes N on PostgreSQL (${server ? 'real server' : NEEDS_SERVER})`,
  () => {
    beforeAll(async () => {
      await adminQuery(server!, `CREATE DATABASE ${dbName}`);
      const migrated = await runOrders(['migrate', 'up'], { DATABASE_URL: databaseUrl });
      expect(migrated.code, migrated.stderr).toBe(0);
    });
    const dropAfterwards: TestDatabase[] = [];
    afterAll(async () => {
      await adminQuery(server!, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      for (const db of dropAfterwards) await db.drop();
    });

    it('answers on one port from both processes; /metrics sums them whichever answers; children stop when the primary is killed', async () => {
      const { serve, port, listening, children } = await startCluster(2, {}, ['--no-worker']);
      try {
        expect(listening).toMatchObject({ processes: 2, port, workerProcess: null });
        const pids = children().map((l) => l.pid as number);
        expect(new Set(pids).size).toBe(2);
        expect(pids).not.toContain(serve.child.pid);
        expect(children().every((l) => l.worker === false)).toBe(true);

        const requests = 30;
        for (let i = 0; i < requests; i++) expect((await onNewConnection(port, '/healthz')).status).toBe(200);
        const answeredBy = () =>
          logLines(serve)
            .filter((l) => l.msg === 'request completed' && l.route === '/healthz')
            .map((l) => l.pid);
        await until('every access log line', () => answeredBy().length === requests);
        expect(new Set(answeredBy())).toEqual(new Set(pids));

        const series = 'http_request_duration_seconds_count{method="GET",route="/healthz",status_code="200"}';
        for (let i = 0; i < 6; i++) {
          const scrape = await onNewConnection(port, '/metrics');
          expect(scrape.status).toBe(200);
          expect(sample(scrape.body, series)).toBe(requests);
          // Both pools add up; the start time of "the process" means nothing across processes.
          expect(sample(scrape.body, 'db_pool_connections_max')).toBe(2 * 10);
          expect(scrape.body).not.toContain('process_start_time_seconds ');
        }
        const scrapedBy = logLines(serve)
          .filter((l) => l.msg === 'request completed' && l.route === '/metrics')
          .map((l) => l.pid);
        expect(new Set(scrapedBy)).toEqual(new Set(pids));

        serve.child.kill('SIGKILL');
        await serve.exited;
        await until(
          'the children to exit after their primary',
          () => pids.every((pid) => !isAlive(pid)),
          15_000,
        );
        const gone = logLines(serve).filter(
          (l) => l.msg === 'the primary process is gone: draining and exiting',
        );
        expect(gone.map((l) => l.pid).sort()).toEqual([...pids].sort());
        expect(logLines(serve).filter((l) => l.msg === 'shutdown complete')).toHaveLength(2);
      } finally {
        serve.child.kill('SIGKILL');
      }
    });

    it('runs the worker in one process; a killed process is replaced and takes over the worker; SIGTERM drains all, exit 0', async () => {
      // A database of its own: a retried attempt's events must not count here.
      const own = await createTestDatabase();
      dropAfterwards.push(own);
      const { serve, port, listening, children } = await startCluster(2, {
        DATABASE_URL: own.url,
        SHUTDOWN_DELAY_MS: '2000',
      });
      try {
        const first = children();
        const runner = first.find((l) => l.worker === true);
        expect(first.filter((l) => l.worker === true)).toHaveLength(1);
        expect(listening).toMatchObject({ workerProcess: 1, workerPid: runner?.pid });
        const workerStarts = () =>
          logLines(serve)
            .filter((l) => l.msg === 'worker started')
            .map((l) => l.pid);
        await until('the worker to start', () => workerStarts().length > 0);
        expect(workerStarts()).toEqual([runner?.pid]);

        const processedOnce = async () => {
          const created = await until('an order created', async () => {
            const res = await onNewConnection(port, '/orders', {
              method: 'POST',
              json: {
                customerId: 'procs',
                currency: 'EUR',
                items: [{ sku: 'A', quantity: 1, unitPrice: 100 }],
              },
            });
            if (res.status === 503) return undefined; // shed: nothing was stored
            expect(res.status, res.body).toBe(201);
            return res;
          });
          const order = JSON.parse(created.body) as { id: string };
          return until(`OrderCreated of ${order.id} processed`, async () => {
            const res = await onNewConnection(port, `/orders/${order.id}/events`);
            // A process that has just started may shed load for a moment (its event loop was busy
            // starting): 503 with Retry-After. Anything else is a failure.
            if (res.status === 503) return undefined;
            expect(res.status, res.body).toBe(200);
            const body = JSON.parse(res.body) as {
              events: { type: string; status: string; attempts: number }[];
            };
            const event = body.events.find((e) => e.type === 'OrderCreated');
            return event?.status === 'processed' ? event : undefined;
          });
        };
        expect(await processedOnce()).toMatchObject({ attempts: 1 });
        const metrics = await onNewConnection(port, '/metrics');
        expect(
          sample(metrics.body, 'orders_events_handled_total{type="OrderCreated",outcome="processed"}'),
        ).toBe(1);

        // Kill the worker's process: once the primary knows (a connection handed over in the very
        // instant of the death is lost: node's round-robin), the port keeps answering from the
        // other process, and a replacement takes the worker over.
        process.kill(runner!.pid as number, 'SIGKILL');
        const noticed = await until('the primary to notice the death', () =>
          logLines(serve).find((l) => l.msg?.startsWith('serve process 1 exited unexpectedly')),
        );
        expect(noticed).toMatchObject({ signal: 'SIGKILL', worker: true, childPid: runner!.pid });
        for (let i = 0; i < 10; i++) expect((await onNewConnection(port, '/healthz')).status).toBe(200);
        const replacement = await until('a replacement process', () =>
          children().find((l) => l.serveProcess === 1 && l.pid !== runner!.pid),
        );
        expect(replacement.worker).toBe(true);
        expect(await processedOnce()).toMatchObject({ attempts: 1 });
        await until('the replacement to start the worker', () => workerStarts().length > 1);
        expect(workerStarts()).toEqual([runner!.pid, replacement.pid]);

        const pids = [...children().map((l) => l.pid as number)].filter(isAlive);
        expect(pids).toHaveLength(2);
        const started = Date.now();
        serve.child.kill('SIGTERM');
        // Each process answers its own /readyz: 503 during SHUTDOWN_DELAY_MS (once the primary's
        // message arrived) while the rest is served. New connections alternate between them.
        await until('/readyz 503', async () => (await onNewConnection(port, '/readyz')).status === 503);
        const readiness = [await onNewConnection(port, '/readyz'), await onNewConnection(port, '/readyz')];
        expect(readiness.map((r) => r.status)).toEqual([503, 503]);
        expect((await onNewConnection(port, '/healthz')).status).toBe(200);
        expect(await serve.exited).toBe(0);
        // SHUTDOWN_DELAY_MS 2 s + a drain with nothing in flight, far below delay + timeout.
        expect(Date.now() - started).toBeLessThan(10_000);
        expect(pids.filter(isAlive)).toEqual([]);
        const completed = logLines(serve)
          .filter((l) => l.msg === 'shutdown complete')
          .map((l) => l.pid);
        expect(completed).toEqual(expect.arrayContaining(pids));
        expect(logLines(serve).at(-1)).toMatchObject({ primary: true, exitCode: 0 });
      } finally {
        serve.child.kill('SIGKILL');
      }
    });

    it('stops at once with exit 1 when the processes cannot start (the port is taken)', async () => {
      const taken = createServer();
      taken.listen(0, '127.0.0.1');
      await once(taken, 'listening');
      const { port } = taken.address() as AddressInfo;
      try {
        const started = Date.now();
        const run = await runOrders(['serve', '--processes', '2', '--no-worker'], {
          DATABASE_URL: databaseUrl,
          AUTH_MODE: 'none',
          PORT: String(port),
          HOST: '127.0.0.1',
        });
        expect(run.code).toBe(1);
        expect(run.stderr).toContain('EADDRINUSE');
        expect(run.stdout).toContain('failed to start: stopping every process');
        // Not after a crash loop's backoffs: the first failure decides.
        expect(run.stdout).not.toContain('starting a replacement');
        expect(Date.now() - started).toBeLessThan(30_000);
      } finally {
        taken.close();
      }
    });

    it('with one process runs no cluster: no primary, no process fields in the logs', async () => {
      const port = await freePort();
      const serve = spawnOrders(['serve', '--no-worker'], {
        DATABASE_URL: databaseUrl,
        AUTH_MODE: 'none',
        PORT: String(port),
        HOST: '127.0.0.1',
        SERVE_PROCESSES: '1',
      });
      try {
        await until(
          'listening',
          () => logLines(serve).find((l) => l.msg === 'orders serve listening'),
          60_000,
        );
        expect((await onNewConnection(port, '/metrics')).status).toBe(200);
        expect(logLines(serve).some((l) => 'primary' in l || 'serveProcess' in l)).toBe(false);
        serve.child.kill('SIGTERM');
        expect(await serve.exited).toBe(0);
      } finally {
        serve.child.kill('SIGKILL');
      }
    });
  },
);

describe('orders serve --processes refusals (exit 2)', () => {
  it('refuses a bad --processes or SERVE_PROCESSES, naming it and what it expects', async () => {
    for (const value of ['0', '65', '1.5']) {
      const flag = await runOrders(['serve', '--processes', value]);
      expect(flag.code, value).toBe(2);
      expect(flag.stderr).toContain('--processes expects a whole number from 1 to 64');
      const env = await runOrders(['serve'], { SERVE_PROCESSES: value });
      expect(env.code, value).toBe(2);
      expect(env.stderr).toMatch(/SERVE_PROCESSES: .*whole number from 1 to 64/);
    }
  });

  it('refuses several processes on the embedded database (one session in one process)', async () => {
    const env = await runOrders(['serve'], {
      SERVE_PROCESSES: '2',
      ORDERS_DATA_DIR: '/nonexistent/never-created',
    });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('SERVE_PROCESSES=2: several serve processes need a PostgreSQL server');
    expect(env.stderr).toContain('SERVE_PROCESSES=1');
    const flag = await runOrders(['serve', '--processes', '3'], {
      ORDERS_DATA_DIR: '/nonexistent/never-created',
    });
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain('--processes 3: several serve processes need a PostgreSQL server');
  });
});
