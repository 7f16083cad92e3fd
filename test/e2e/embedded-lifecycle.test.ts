/**
 * `npm ci && npx orders serve` shows an order move on its own: on the embedded database the
 * service plays Catalog and Payments (SIMULATE_PARTNERS defaults to true there), so a new order
 * is confirmed about SIMULATE_DELAY_MS (500 ms) later, and its events show what it consumed.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fetchPostOrder, freePort, spawnOrders, waitForHttp } from '../helpers/process.js';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('orders serve on the embedded database, with the simulated partners', () => {
  it('confirms a new order on its own, about half a second later', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'orders-embedded-lifecycle-'));
    dirs.push(dataDir);
    const port = await freePort();
    const proc = spawnOrders(['serve'], { PORT: String(port), ORDERS_DATA_DIR: dataDir, HOST: '127.0.0.1' });
    const base = `http://127.0.0.1:${port}`;
    try {
      await waitForHttp(`${base}/readyz`, { status: 200, timeoutMs: 60_000 });
      const res = await fetchPostOrder(base, {
        customerId: 'dev',
        currency: 'EUR',
        items: [{ sku: 'A', quantity: 2, unitPrice: 42 }],
      });
      expect(res.status).toBe(201);
      const created = (await res.json()) as { id: string; status: string };
      expect(created.status).toBe('pending');
      const startedAt = Date.now();
      let order: Record<string, unknown> = created;
      while (order.status !== 'confirmed' && Date.now() - startedAt < 15_000) {
        await new Promise((r) => setTimeout(r, 50));
        order = (await (await fetch(`${base}/orders/${created.id}`)).json()) as Record<string, unknown>;
      }
      expect(order).toMatchObject({
        status: 'confirmed',
        stock: 'reserved',
        payment: 'captured',
        version: 3,
      });
      // Not before the simulated partners' delay.
      expect(Date.now() - startedAt).toBeGreaterThanOrEqual(400);
      const { events } = (await (await fetch(`${base}/orders/${created.id}/events`)).json()) as {
        events: { type: string; direction: string }[];
      };
      expect(events.map((e) => `${e.direction} ${e.type}`)).toEqual(
        expect.arrayContaining([
          'outbound OrderCreated',
          'inbound StockReserved',
          'inbound PaymentCaptured',
          'outbound OrderConfirmed',
        ]),
      );
      expect(proc.stdout()).toContain('SIMULATE_PARTNERS is on');
    } finally {
      proc.child.kill('SIGTERM');
    }
    expect(await proc.exited).toBe(0);
  });
});
