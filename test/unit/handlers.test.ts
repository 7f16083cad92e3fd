/**
 * The worker's handlers: every order event notifies its customer (one record per event), a
 * payload the contract's schema refuses is a permanent failure, and a new order is handed to the
 * partner simulation only once its notification went out.
 */
import { describe, expect, it, vi } from 'vitest';
import { PUBLISHED_EVENTS } from '../../src/messaging/events.js';
import type { OutboxEvent } from '../../src/messaging/outbox.js';
import { PermanentError, TransientError } from '../../src/platform/failures.js';
import { createLogger } from '../../src/platform/logger.js';
import { defaultHandlers } from '../../src/worker/handlers.js';
import type { Notification, Notifier } from '../../src/worker/notifier.js';

const context = { signal: new AbortController().signal, logger: createLogger('silent') };
const orderId = '0192f1c6-aaaa-7000-8000-000000000001';

function event(
  type: string,
  payload: unknown = { id: orderId, customerId: 'c-1', total: 10, currency: 'EUR' },
): OutboxEvent {
  return {
    id: '0192f1c6-0000-7000-8000-00000000b001',
    type,
    aggregateType: 'order',
    aggregateId: orderId,
    payload,
    traceContext: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    attempts: 1,
    createdAt: new Date(),
  };
}

function recordingNotifier(fail = false) {
  const sent: Notification[] = [];
  const notifier: Notifier = {
    async send(n) {
      if (fail) throw new TransientError('provider down (test)');
      sent.push(n);
    },
  };
  return { notifier, sent };
}

describe('default handlers', () => {
  it('has one for every published event, and none for inherited names', () => {
    const handlers = defaultHandlers(recordingNotifier().notifier);
    expect(Object.keys(handlers).sort()).toEqual(Object.keys(PUBLISHED_EVENTS).sort());
    expect(Object.hasOwn(handlers, 'constructor')).toBe(false);
  });

  it.each(Object.keys(PUBLISHED_EVENTS))('%s notifies the customer and records it', async (type) => {
    const { notifier, sent } = recordingNotifier();
    const result = await defaultHandlers(notifier)[type]!(event(type), context);
    const record = { orderId, customerId: 'c-1', channel: 'email' };
    expect(result).toEqual({ notification: record });
    expect(sent).toEqual([{ eventId: '0192f1c6-0000-7000-8000-00000000b001', event: type, ...record }]);
  });

  it('refuses a payload without the order fields as a permanent failure', async () => {
    const handler = defaultHandlers(recordingNotifier().notifier).OrderShipped!;
    await expect(handler(event('OrderShipped', { id: 'not-a-uuid' }), context)).rejects.toBeInstanceOf(
      PermanentError,
    );
  });

  it('hands a new order to the partner simulation after its notification, with its trace', async () => {
    const partners = { orderCreated: vi.fn() };
    await defaultHandlers(recordingNotifier().notifier, { partners }).OrderCreated!(
      event('OrderCreated'),
      context,
    );
    expect(partners.orderCreated).toHaveBeenCalledWith(
      expect.objectContaining({ id: orderId, total: 10 }),
      expect.objectContaining({ traceparent: expect.any(String) }),
    );
    // Other events never reach it; a failed notification (retried) does not yet.
    await defaultHandlers(recordingNotifier().notifier, { partners }).OrderConfirmed!(
      event('OrderConfirmed'),
      context,
    );
    const failing = defaultHandlers(recordingNotifier(true).notifier, { partners }).OrderCreated!;
    await expect(failing(event('OrderCreated'), context)).rejects.toBeInstanceOf(TransientError);
    expect(partners.orderCreated).toHaveBeenCalledTimes(1);
  });
});
