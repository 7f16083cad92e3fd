/** `npm ci && npx orders serve` on a bare machine: the embedded database, kept across restarts. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fetchPostOrder, freePort, runOrders, spawnOrders, waitForHttp } from '../helpers/process.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function startServe(dataDir: string) {
  const port = await freePort();
  // The partner simulation would move the order between the two starts; this test compares it whole
  // (test/e2e/embedded-lifecycle.test.ts covers the simulation).
  const proc = spawnOrders(['serve'], {
    PORT: String(port),
    ORDERS_DATA_DIR: dataDir,
    HOST: '127.0.0.1',
    SIMULATE_PARTNERS: 'false',
  });
  await waitForHttp(`http://127.0.0.1:${port}/readyz`, { status: 200, timeoutMs: 60_000 });
  return { proc, base: `http://127.0.0.1:${port}` };
}

describe('orders serve without DATABASE_URL', () => {
  it('runs on the embedded database, warns, and keeps orders across a restart', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'orders-embedded-'));
    dirs.push(dataDir);

    const first = await startServe(dataDir);
    expect((await fetch(`${first.base}/healthz`)).status).toBe(200);
    const res = await fetchPostOrder(first.base, {
      customerId: 'dev',
      currency: 'EUR',
      items: [{ sku: 'A', quantity: 1, unitPrice: 42 }],
    });
    expect(res.status).toBe(201);
    const order = (await res.json()) as { id: string };
    first.proc.child.kill('SIGTERM');
    expect(await first.proc.exited).toBe(0);
    expect(first.proc.stdout()).toMatch(/embedded PGlite database.*development/);

    // A kill -9 leaves the lock file behind: the next start takes it over.
    await writeFile(join(dataDir, 'orders.lock'), '999999999\n');
    const second = await startServe(dataDir);
    // A second process on the same directory is refused while the first runs.
    const rival = await runOrders(['serve'], { PORT: String(await freePort()), ORDERS_DATA_DIR: dataDir });
    expect(rival.code).toBe(1);
    expect(rival.stderr).toContain('in use by another orders process');
    const again = await fetch(`${second.base}/orders/${order.id}`);
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual(order);
    second.proc.child.kill('SIGTERM');
    expect(await second.proc.exited).toBe(0);
  });
});
