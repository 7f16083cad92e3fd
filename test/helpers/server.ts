/** A spawned `orders serve` on its own fresh database, for the reliability tests. */
import { adminQuery, serverUrl, withDatabase } from './db.js';
import { freePort, runOrders, type Spawned, spawnOrders, waitForHttp } from './process.js';

export interface RunningServer {
  base: string;
  port: number;
  databaseUrl: string;
  proc: Spawned;
  dropDatabase(): Promise<void>;
}

export async function createMigratedDatabase(
  prefix: string,
): Promise<{ url: string; drop(): Promise<void> }> {
  const server = serverUrl();
  if (!server) throw new Error('no database server');
  const name = `${prefix}_${process.pid}_${Date.now()}`;
  await adminQuery(server, `CREATE DATABASE ${name}`);
  const url = withDatabase(server, name);
  const migrated = await runOrders(['migrate', 'up'], { DATABASE_URL: url });
  if (migrated.code !== 0) throw new Error(`migrate failed: ${migrated.stderr}`);
  return {
    url,
    drop: () => adminQuery(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).then(() => undefined),
  };
}

export async function startServe(
  databaseUrl: string,
  env: Record<string, string> = {},
): Promise<Omit<RunningServer, 'dropDatabase'>> {
  const port = await freePort();
  const proc = spawnOrders(['serve'], {
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    // AUTH_MODE defaults to jwt once DATABASE_URL is set; tests that need tokens pass AUTH_*.
    AUTH_MODE: 'none',
    ...env,
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitForHttp(`${base}/readyz`, { status: 200, timeoutMs: 30_000 });
  } catch (error) {
    proc.child.kill('SIGKILL');
    throw new Error(
      `serve did not become ready: ${(error as Error).message}\n${proc.stderr()}\n${proc.stdout()}`,
    );
  }
  return { base, port, databaseUrl, proc };
}

let seq = 0;
export function orderRequest(prefix = 'load') {
  const n = seq++;
  return {
    method: 'POST',
    path: '/orders',
    headers: { 'content-type': 'application/json', 'idempotency-key': `${prefix}-${process.pid}-${n}` },
    body: JSON.stringify({
      customerId: `${prefix}-${n % 50}`,
      currency: 'EUR',
      items: [
        { sku: 'SKU-1', quantity: 1 + (n % 3), unitPrice: 1999 },
        { sku: 'SKU-2', quantity: 1, unitPrice: 500 },
      ],
    }),
  };
}
