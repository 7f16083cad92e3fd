/**
 * The built binary's `orders partners simulate` and `orders asyncapi`: the simulator needs
 * NATS_URL (exit 2 naming it), answers an OrderCreated published on NATS with Catalog's and
 * Payments' CloudEvents, and stops cleanly (exit 0) on SIGTERM; `asyncapi` prints the document
 * in JSON or YAML.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { CLOUDEVENTS_CONTENT_TYPE, type CloudEvent } from '../../src/messaging/events.js';
import {
  NATS_SERVER_BIN,
  type NatsServer,
  NEEDS_NATS_SERVER,
  startNatsServer,
} from '../helpers/nats-server.js';
import { runOrders, spawnOrders } from '../helpers/process.js';

describe('orders asyncapi', () => {
  it('prints the AsyncAPI 3.0 document as JSON (default) and as YAML', async () => {
    const json = await runOrders(['asyncapi']);
    expect(json.code, json.stderr).toBe(0);
    const document = JSON.parse(json.stdout);
    expect(document.asyncapi).toBe('3.0.0');
    expect(Object.keys(document.operations)).toContain('receivePaymentCaptured');
    const yaml = await runOrders(['asyncapi', '--format', 'yaml']);
    expect(yaml.code, yaml.stderr).toBe(0);
    expect(parseYaml(yaml.stdout)).toEqual(document);
    expect((await runOrders(['asyncapi', '--format', 'xml'])).code).toBe(2);
  });
});

describe('orders partners simulate', () => {
  it('exits 2 naming NATS_URL when it is not set', async () => {
    const r = await runOrders(['partners', 'simulate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('NATS_URL');
  });

  describe.skipIf(!NATS_SERVER_BIN)(`against NATS (${NEEDS_NATS_SERVER})`, () => {
    let server: NatsServer;
    beforeAll(async () => {
      server = await startNatsServer();
    });
    afterAll(async () => {
      await server?.stop();
    });

    it('answers an OrderCreated with StockReserved and PaymentCaptured, and stops on SIGTERM with exit 0', async () => {
      const url = `nats://${server.hostPort}`;
      const simulator = spawnOrders(['partners', 'simulate'], { NATS_URL: url, SIMULATE_DELAY_MS: '50' });
      const [{ connect, headers }, { jetstream, jetstreamManager }] = await Promise.all([
        import('@nats-io/transport-node'),
        import('@nats-io/jetstream'),
      ]);
      const nc = await connect({ servers: url });
      try {
        // Generous bounds: on a loaded 2-core machine JetStream's first stream creation alone can
        // time out once (the simulator then retries the order).
        const started = Date.now() + 60_000;
        while (!simulator.stdout().includes('answering new orders')) {
          if (Date.now() > started) throw new Error(`the simulator did not start:\n${simulator.stderr()}`);
          await new Promise((r) => setTimeout(r, 50));
        }
        const orderId = '0192f1c6-aaaa-7000-8000-00000000e2e1';
        const created: CloudEvent = {
          specversion: '1.0',
          id: '0192f1c6-0000-7000-8000-00000000e2e1',
          source: 'orders',
          type: 'OrderCreated',
          subject: orderId,
          time: new Date().toISOString(),
          datacontenttype: 'application/json',
          data: { id: orderId, customerId: 'c-1', total: 1234, currency: 'USD', status: 'pending' },
        };
        const h = headers();
        h.set('Content-Type', CLOUDEVENTS_CONTENT_TYPE);
        await jetstream(nc).publish('orders.events.OrderCreated', JSON.stringify(created), { headers: h });

        const jsm = await jetstreamManager(nc);
        const deadline = Date.now() + 45_000;
        const answer = async (stream: string, subject: string) => {
          for (;;) {
            const message = await jsm.streams.getMessage(stream, { last_by_subj: subject }).catch(() => null);
            if (message) return message;
            if (Date.now() > deadline) throw new Error(`no answer on ${subject}:\n${simulator.stdout()}`);
            await new Promise((r) => setTimeout(r, 50));
          }
        };
        const stock = await answer('CATALOG_EVENTS', 'catalog.events.StockReserved');
        const payment = await answer('PAYMENTS_EVENTS', 'payments.events.PaymentCaptured');
        expect(stock.json<CloudEvent>()).toMatchObject({ type: 'StockReserved', data: { orderId } });
        expect(payment.json<CloudEvent>()).toMatchObject({
          type: 'PaymentCaptured',
          data: { orderId, amount: 1234, currency: 'USD' },
        });
        expect(payment.header.get('Content-Type')).toBe(CLOUDEVENTS_CONTENT_TYPE);
        expect(payment.header.get('Nats-Msg-Id')).toBe(payment.json<CloudEvent>().id);
      } finally {
        await nc.close();
        simulator.child.kill('SIGTERM');
      }
      expect(await simulator.exited).toBe(0);
      expect(simulator.stdout()).toContain('partner simulator stopped');
    });
  });
});
