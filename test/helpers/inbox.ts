/** Partner events as the inbox receives them, for tests without a transport. */
import { randomUUID } from 'node:crypto';
import { CLOUDEVENTS_CONTENT_TYPE } from '../../src/messaging/events.js';
import type { InboundMessage } from '../../src/messaging/inbox-message.js';
import { createOrdersService } from '../../src/orders/service.js';
import type { Transactional } from '../../src/platform/db.js';
import { validOrder } from './app.js';

export const SUBJECTS = {
  StockReserved: 'catalog.events.StockReserved',
  StockRejected: 'catalog.events.StockRejected',
  PaymentCaptured: 'payments.events.PaymentCaptured',
  PaymentFailed: 'payments.events.PaymentFailed',
} as const;
export type Kind = keyof typeof SUBJECTS;

/** A new pending order (total 4498 EUR, what PaymentCaptured pays by default). */
export async function createOrder(db: Transactional) {
  const service = createOrdersService({ db, idempotencyTtlHours: 1 });
  const result = await service.create({ input: validOrder(), customerId: 'c-42' });
  if (result.kind !== 'created') throw new Error('not created');
  return result.order;
}

/** A partner's CloudEvent for an order, as NATS would carry it. */
export function event(
  kind: Kind,
  orderId: string,
  overrides: { id?: string; data?: Record<string, unknown>; envelope?: Record<string, unknown> } = {},
): InboundMessage {
  const source = kind.startsWith('Stock') ? 'catalog' : 'payments';
  const data: Record<string, unknown> = { orderId };
  if (kind === 'PaymentCaptured') Object.assign(data, { paymentId: 'p-1', amount: 4498, currency: 'EUR' });
  if (kind === 'PaymentFailed') Object.assign(data, { paymentId: 'p-1', reason: 'card declined' });
  if (kind === 'StockRejected') Object.assign(data, { reason: 'out of stock' });
  const id = overrides.id ?? randomUUID();
  const body = {
    specversion: '1.0',
    id,
    source,
    type: kind,
    subject: orderId,
    time: new Date().toISOString(),
    datacontenttype: 'application/json',
    data: { ...data, ...overrides.data },
    ...overrides.envelope,
  };
  return {
    subject: SUBJECTS[kind],
    body: JSON.stringify(body),
    headers: { 'Content-Type': CLOUDEVENTS_CONTENT_TYPE, 'Nats-Msg-Id': id },
  };
}
