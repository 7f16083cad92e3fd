/**
 * The partner simulation's decisions (seeded randomness: reproducible), the answers it builds
 * (CloudEvents the consumed-event path accepts as they are) and its scheduling (the delay, one
 * answer per order, retries, stop cancels and says which orders stay pending).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadConfig, resolveSimulation } from '../../src/config.js';
import { CLOUDEVENTS_CONTENT_TYPE } from '../../src/messaging/events.js';
import { parseInbound } from '../../src/messaging/inbox-message.js';
import {
  answerId,
  createPartnerSimulator,
  decideAnswers,
  inboundMessageOf,
  type PartnerAnswer,
  SIMULATOR_SOURCES,
  streamDefaultFor,
} from '../../src/messaging/partner-simulator.js';
import { TransientError } from '../../src/platform/failures.js';
import { createLogger } from '../../src/platform/logger.js';
import { mulberry32 } from '../helpers/random.js';

const order = { id: '0192f1c6-aaaa-7000-8000-000000000001', total: 3998, currency: 'EUR' };
const never = { stockRejectRate: 0, paymentFailRate: 0 };
const always = { stockRejectRate: 1, paymentFailRate: 1 };
const now = new Date('2026-11-25T10:00:00.500Z');

/** A logger whose warn/error lines the test can read. */
function recordingLogger() {
  const lines: { level: string; fields: unknown; msg: unknown }[] = [];
  const logger = createLogger('silent');
  for (const level of ['warn', 'error'] as const) {
    vi.spyOn(logger, level).mockImplementation(((fields: unknown, msg?: unknown) => {
      lines.push({ level, fields, msg: msg ?? fields });
    }) as never);
  }
  return { logger, lines };
}

describe('decideAnswers', () => {
  it('answers StockReserved and PaymentCaptured for the total at rate 0', () => {
    const [stock, payment] = decideAnswers(order, never, () => 0, { now });
    expect(stock.type).toBe('StockReserved');
    expect(payment.type).toBe('PaymentCaptured');
    expect(JSON.parse(stock.body)).toEqual({
      specversion: '1.0',
      id: stock.id,
      source: SIMULATOR_SOURCES.catalog,
      type: 'StockReserved',
      subject: order.id,
      time: now.toISOString(),
      datacontenttype: 'application/json',
      data: { orderId: order.id },
    });
    expect(JSON.parse(payment.body)).toMatchObject({
      source: SIMULATOR_SOURCES.payments,
      type: 'PaymentCaptured',
      data: { orderId: order.id, amount: 3998, currency: 'EUR', paymentId: expect.any(String) },
    });
    expect(stock.subject).toBe('catalog.events.StockReserved');
    expect(payment.subject).toBe('payments.events.PaymentCaptured');
    expect(stock.headers).toEqual({ 'Content-Type': CLOUDEVENTS_CONTENT_TYPE });
  });

  it('says no at rate 1 (random() < rate), with reasons', () => {
    const [stock, payment] = decideAnswers(order, always, () => 0.999999, { now });
    expect(stock.type).toBe('StockRejected');
    expect(payment.type).toBe('PaymentFailed');
    expect(JSON.parse(stock.body).data).toEqual({ orderId: order.id, reason: expect.any(String) });
    expect(JSON.parse(payment.body).data).toEqual({
      orderId: order.id,
      paymentId: expect.any(String),
      reason: expect.any(String),
    });
  });

  it('draws stock first, then payment, and rejects at about the configured rates (seeded)', () => {
    expect(
      decideAnswers(
        order,
        { stockRejectRate: 0.5, paymentFailRate: 0.5 },
        (() => {
          const values = [0.4, 0.6];
          return () => values.shift()!;
        })(),
      ).map((a) => a.type),
    ).toEqual(['StockRejected', 'PaymentCaptured']);

    const random = mulberry32(42);
    const counts = { StockRejected: 0, PaymentFailed: 0 } as Record<string, number>;
    for (let i = 0; i < 10_000; i++) {
      for (const a of decideAnswers(order, { stockRejectRate: 0.2, paymentFailRate: 0.05 }, random)) {
        counts[a.type] = (counts[a.type] ?? 0) + 1;
      }
    }
    expect(counts.StockRejected! / 10_000).toBeCloseTo(0.2, 1);
    expect(counts.PaymentFailed! / 10_000).toBeCloseTo(0.05, 1);
    // The same seed gives the same decisions.
    const a = mulberry32(7);
    const b = mulberry32(7);
    const rates = { stockRejectRate: 0.5, paymentFailRate: 0.5 };
    for (let i = 0; i < 100; i++) {
      expect(decideAnswers(order, rates, a, { now }).map((x) => x.body)).toEqual(
        decideAnswers(order, rates, b, { now }).map((x) => x.body),
      );
    }
  });

  it('derives ids from the order and the partner: a second answer to an order has the same ids', () => {
    const first = decideAnswers(order, never, Math.random, { now });
    const second = decideAnswers(order, always, Math.random, { now });
    expect(first.map((a) => a.id)).toEqual(second.map((a) => a.id));
    expect(first[0].id).not.toBe(first[1].id);
    expect(first[0].id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(answerId(order.id, 'catalog')).not.toBe(
      answerId('0192f1c6-aaaa-7000-8000-000000000002', 'catalog'),
    );
  });

  it('carries the trace context of the order on', () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const [stock] = decideAnswers(order, never, Math.random, { trace: { traceparent } });
    expect(stock.headers.traceparent).toBe(traceparent);
  });

  it('builds what the consumed-event path accepts as it is, with the NATS headers', () => {
    for (const rates of [never, always]) {
      for (const answer of decideAnswers(order, rates, Math.random)) {
        const message = inboundMessageOf(answer);
        expect(message.headers?.['Nats-Msg-Id']).toBe(answer.id);
        const parsed = parseInbound(message);
        expect(parsed.ok, JSON.stringify(parsed)).toBe(true);
        expect(parsed.identity).toMatchObject({ id: answer.id, type: answer.type, orderId: order.id });
      }
    }
  });

  it('names the contract stream for each answer subject', () => {
    expect(streamDefaultFor('catalog.events.StockReserved')).toEqual({
      name: 'CATALOG_EVENTS',
      subjects: 'catalog.events.>',
    });
    expect(streamDefaultFor('payments.events.PaymentFailed').name).toBe('PAYMENTS_EVENTS');
  });
});

describe('createPartnerSimulator', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('answers SIMULATE_DELAY_MS after an order, once per order', async () => {
    vi.useFakeTimers();
    const delivered: PartnerAnswer[] = [];
    const simulator = createPartnerSimulator({
      ...never,
      delayMs: 500,
      logger: createLogger('silent'),
      deliver: async (a) => {
        delivered.push(a);
      },
    });
    simulator.orderCreated({ ...order, customerId: 'c-1', status: 'pending' });
    simulator.orderCreated(order); // a second handling of the same OrderCreated
    expect(simulator.pending).toBe(1);
    await vi.advanceTimersByTimeAsync(499);
    expect(delivered).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(delivered.map((a) => a.type)).toEqual(['StockReserved', 'PaymentCaptured']);
    expect(simulator.pending).toBe(0);
    await simulator.stop();
  });

  it('retries a failed delivery with backoff, and logs an answer it gives up', async () => {
    vi.useFakeTimers();
    const { logger, lines } = recordingLogger();
    let calls = 0;
    const simulator = createPartnerSimulator({
      ...never,
      delayMs: 0,
      logger,
      maxAttempts: 3,
      retryBaseMs: 100,
      deliver: async (a) => {
        calls++;
        if (a.type === 'PaymentCaptured' || calls === 1) throw new TransientError('down (test)');
      },
    });
    simulator.orderCreated(order);
    await vi.advanceTimersByTimeAsync(0);
    expect(calls).toBe(1);
    await vi.advanceTimersByTimeAsync(100); // the stock answer's second attempt succeeds
    expect(calls).toBe(3); // and the payment's first attempt fails
    await vi.advanceTimersByTimeAsync(100 + 200);
    expect(calls).toBe(5);
    expect(lines.filter((l) => l.level === 'error')).toEqual([
      expect.objectContaining({ msg: expect.stringMatching(/not delivered: the order stays pending/) }),
    ]);
    await simulator.stop();
  });

  it('stop() cancels what is not answered yet and names those orders', async () => {
    const { logger, lines } = recordingLogger();
    const deliver = vi.fn(async () => undefined);
    let closed = false;
    const simulator = createPartnerSimulator({
      ...never,
      delayMs: 60_000,
      logger,
      deliver,
      close: async () => {
        closed = true;
      },
    });
    simulator.orderCreated(order);
    await simulator.stop();
    expect(deliver).not.toHaveBeenCalled();
    expect(closed).toBe(true);
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        fields: expect.objectContaining({ count: 1, orderIds: [order.id] }),
      }),
    );
    simulator.orderCreated({ ...order, id: '0192f1c6-aaaa-7000-8000-000000000009' });
    expect(simulator.pending).toBe(0);
  });

  it('leaves data without id, total and currency unanswered, without throwing', () => {
    const { logger, lines } = recordingLogger();
    const simulator = createPartnerSimulator({
      ...never,
      delayMs: 0,
      logger,
      deliver: async () => undefined,
    });
    expect(() => simulator.orderCreated({ id: order.id, customerId: 'c' })).not.toThrow();
    expect(simulator.pending).toBe(0);
    expect(lines).toHaveLength(1);
  });
});

describe('SIMULATE_* configuration', () => {
  it('is on by default with the embedded database and off with DATABASE_URL', () => {
    expect(resolveSimulation(loadConfig({}))).toEqual({
      enabled: true,
      delayMs: 500,
      stockRejectRate: 0,
      paymentFailRate: 0,
    });
    expect(resolveSimulation(loadConfig({ DATABASE_URL: 'postgres://u@h/db' })).enabled).toBe(false);
    expect(
      resolveSimulation(loadConfig({ DATABASE_URL: 'postgres://u@h/db', SIMULATE_PARTNERS: 'true' })).enabled,
    ).toBe(true);
    expect(resolveSimulation(loadConfig({ SIMULATE_PARTNERS: 'false' })).enabled).toBe(false);
    expect(
      resolveSimulation(
        loadConfig({
          SIMULATE_DELAY_MS: '0',
          SIMULATE_STOCK_REJECT_RATE: '0.25',
          SIMULATE_PAYMENT_FAIL_RATE: '1',
        }),
      ),
    ).toMatchObject({ delayMs: 0, stockRejectRate: 0.25, paymentFailRate: 1 });
  });

  it('names every bad SIMULATE_* variable', () => {
    expect(() =>
      loadConfig({
        SIMULATE_PARTNERS: 'maybe',
        SIMULATE_DELAY_MS: '-1',
        SIMULATE_STOCK_REJECT_RATE: '1.5',
        SIMULATE_PAYMENT_FAIL_RATE: 'often',
      }),
    ).toThrow(
      /SIMULATE_PARTNERS[\s\S]*SIMULATE_DELAY_MS[\s\S]*SIMULATE_STOCK_REJECT_RATE[\s\S]*SIMULATE_PAYMENT_FAIL_RATE/,
    );
  });
});
