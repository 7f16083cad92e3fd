/** The orders the bench creates: one request body (wrk-lib.lua's order_body), and seeding through the API. */
import type { OrderInput } from '../../src/orders/schemas.js';

/** Two items; the customer varies with `n` so that rows are not all identical. */
export function benchOrder(n: number): OrderInput & { customerId: string } {
  return {
    customerId: `c-${n % 1000}`,
    currency: 'EUR',
    items: [
      { sku: 'SKU-1', quantity: 2, unitPrice: 1999 },
      { sku: 'SKU-2', quantity: 1, unitPrice: 500 },
    ],
  };
}

/** Creates `count` orders through the API (16 at a time) and returns their ids. */
export async function seedOrders(
  target: { name: string; url: string; token?: string | undefined },
  count: number,
  stamp: string,
): Promise<string[]> {
  const ids: string[] = [];
  let next = 0;
  const failures: string[] = [];
  async function lane(): Promise<void> {
    while (next < count && failures.length < 10) {
      const n = next++;
      try {
        const res = await fetch(`${target.url}/orders`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'idempotency-key': `seed-${stamp}-${target.name}-${n}`,
            ...(target.token ? { authorization: `Bearer ${target.token}` } : {}),
          },
          body: JSON.stringify(benchOrder(n)),
          signal: AbortSignal.timeout(10_000),
        });
        const body = (await res.json()) as { id?: unknown };
        if (res.status === 201 && typeof body.id === 'string') ids.push(body.id);
        else failures.push(`HTTP ${res.status}`);
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
  }
  await Promise.all(Array.from({ length: 16 }, lane));
  if (failures.length > 0)
    throw new Error(`seeding ${target.name} failed: ${failures.slice(0, 3).join('; ')}`);
  return ids;
}
