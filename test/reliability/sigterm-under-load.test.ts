/**
 * SIGTERM during a POST load of 32 connections: the process exits 0 within the shutdown bound,
 * and not one request gets a 5xx or a reset while in flight (refused connections after the
 * listener closed don't count). Run by hand: npx vitest run test/reliability/sigterm-under-load.test.ts
 */
import { afterAll, describe, expect, it } from 'vitest';
import { NEEDS_SERVER, serverUrl } from '../helpers/db.js';
import { fiveXx, runLoad, summary } from '../helpers/load.js';
import { createMigratedDatabase, orderRequest, startServe } from '../helpers/server.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

describe.skipIf(!serverUrl())(
  `graceful shutdown under load (${serverUrl() ? 'real server' : NEEDS_SERVER})`,
  () => {
    it('exits 0 with no 5xx and no broken in-flight request', async () => {
      const database = await createMigratedDatabase('orders_rel_sigterm');
      cleanups.push(database.drop);
      const delayMs = 1_000;
      const timeoutMs = 10_000;
      const server = await startServe(database.url, {
        SHUTDOWN_DELAY_MS: String(delayMs),
        SHUTDOWN_TIMEOUT_MS: String(timeoutMs),
        WORKER_ENABLED: 'false',
      });

      let signalledAt = 0;
      const exited = server.proc.exited.then((code) => ({ code, afterSignalMs: Date.now() - signalledAt }));
      const load = runLoad({
        baseUrl: server.base,
        connections: 32,
        durationMs: 15_000,
        next: () => orderRequest('sigterm'),
        until: exited,
      });
      await new Promise((r) => setTimeout(r, 1_500));
      signalledAt = Date.now();
      server.proc.child.kill('SIGTERM');
      const [result, exit] = await Promise.all([load, exited]);
      console.log(summary('sigterm', result), `; exit ${exit.code} after ${exit.afterSignalMs} ms`);

      expect(exit.code).toBe(0);
      expect(exit.afterSignalMs).toBeLessThan(delayMs + timeoutMs + 2_000);
      expect(result.statuses[201] ?? 0).toBeGreaterThan(100);
      expect(fiveXx(result)).toBe(0);
      expect(result.broken).toEqual({});
    });
  },
);
