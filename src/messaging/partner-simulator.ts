/**
 * Partner simulation (SIMULATE_PARTNERS; `orders partners simulate`): a development and demo tool
 * that plays Catalog and Payments, so that an order moves on its own where no real partner runs.
 *
 * SIMULATE_DELAY_MS after an order is created, Catalog answers StockReserved (StockRejected at
 * SIMULATE_STOCK_REJECT_RATE) and Payments PaymentCaptured for the order's total and currency
 * (PaymentFailed at SIMULATE_PAYMENT_FAIL_RATE). Each answer is a CloudEvent built here and
 * handed to the same consumed-event path as a real partner's: published to NATS when NATS_URL is
 * set (the worker's consumer takes it from there), otherwise given to the inbox directly, byte for
 * byte what would have been published.
 *
 * An answer's id is derived from the order and the partner, not drawn at random: an order
 * answered twice (its OrderCreated handled again after a failed outcome write, or both the
 * in-process simulation and `orders partners simulate` running) gives the same ids, so the inbox
 * (keyed by source and id) and JetStream's duplicate window apply the first answer only.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { Logger } from '../platform/logger.js';
import { sleep } from '../platform/shutdown.js';
import {
  CLOUDEVENTS_CONTENT_TYPE,
  type CloudEvent,
  CONSUMED_EVENTS,
  type ConsumedEventType,
  ORDER_CREATED,
  PUBLISHED_EVENTS,
  STREAMS,
} from './events.js';
import type { InboundMessage } from './inbox-message.js';
import { createNatsPublisher, type NatsPublisher, type StreamDefault } from './nats-publisher.js';

/** The CloudEvents `source` of each simulated partner. */
export const SIMULATOR_SOURCES = {
  catalog: 'orders-simulator/catalog',
  payments: 'orders-simulator/payments',
} as const;
type Partner = keyof typeof SIMULATOR_SOURCES;

export interface SimulationRates {
  /** Share (0..1) of orders Catalog rejects. */
  stockRejectRate: number;
  /** Share (0..1) of orders whose payment fails. */
  paymentFailRate: number;
}

/** What the simulation reads from an OrderCreated event's data (the order): the contract's schema, narrowed. */
export const SimulatedOrder = PUBLISHED_EVENTS[ORDER_CREATED]
  .pick({
    id: true,
    total: true,
    currency: true,
  })
  .loose();
export type SimulatedOrder = z.infer<typeof SimulatedOrder>;

/** One partner's answer, ready for either transport. */
export interface PartnerAnswer {
  type: ConsumedEventType;
  /** The CloudEvent id, and the message id (`Nats-Msg-Id`) it is published under. */
  id: string;
  orderId: string;
  subject: string;
  /** The exact bytes published: the CloudEvent in structured JSON mode. */
  body: string;
  /** The headers it is published with, except `Nats-Msg-Id` (the publish sets it from `id`). */
  headers: Record<string, string>;
}

/**
 * The two answers to one order. `random` is drawn twice, stock first: `random() < rate` says no
 * (so rate 0 never does, and rate 1 always does).
 */
export function decideAnswers(
  order: SimulatedOrder,
  rates: SimulationRates,
  random: () => number,
  options: { now?: Date; trace?: Readonly<Record<string, string>> | null } = {},
): [PartnerAnswer, PartnerAnswer] {
  const stockRejected = random() < rates.stockRejectRate;
  const paymentFailed = random() < rates.paymentFailRate;
  const orderId = order.id;
  const paymentId = `sim-${answerId(orderId, 'payments').slice(0, 8)}`;
  const build = (type: ConsumedEventType, partner: Partner, data: Record<string, unknown>) =>
    answer(type, partner, orderId, data, options.now ?? new Date(), options.trace);
  return [
    stockRejected
      ? build('StockRejected', 'catalog', { orderId, reason: 'simulated: out of stock' })
      : build('StockReserved', 'catalog', { orderId }),
    paymentFailed
      ? build('PaymentFailed', 'payments', { orderId, paymentId, reason: 'simulated: card declined' })
      : build('PaymentCaptured', 'payments', {
          orderId,
          paymentId,
          amount: order.total,
          currency: order.currency,
        }),
  ];
}

function answer(
  type: ConsumedEventType,
  partner: Partner,
  orderId: string,
  data: Record<string, unknown>,
  now: Date,
  trace: Readonly<Record<string, string>> | null | undefined,
): PartnerAnswer {
  const id = answerId(orderId, partner);
  const event: CloudEvent = {
    specversion: '1.0',
    id,
    source: SIMULATOR_SOURCES[partner],
    type,
    subject: orderId,
    time: now.toISOString(),
    datacontenttype: 'application/json',
    data,
  };
  const headers: Record<string, string> = { 'Content-Type': CLOUDEVENTS_CONTENT_TYPE };
  // The answers join the order's trace, as a real partner propagating the context would.
  for (const key of ['traceparent', 'tracestate']) {
    const value = trace?.[key];
    if (typeof value === 'string' && value) headers[key] = value;
  }
  const subject = CONSUMED_EVENTS[type].subject;
  return { type, id, orderId, subject, body: JSON.stringify(event), headers };
}

/** A UUID (version 8: name-based, SHA-256) for one partner's answer to one order. */
export function answerId(orderId: string, partner: Partner): string {
  const hex = createHash('sha256')
    .update(`orders-simulator:${partner}:${orderId.toLowerCase()}`)
    .digest('hex');
  const variant = ((Number.parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** The message the inbox receives for an answer: what a NATS consumer would hand it. */
export function inboundMessageOf(answer: PartnerAnswer): InboundMessage {
  return {
    subject: answer.subject,
    body: answer.body,
    headers: { ...answer.headers, 'Nats-Msg-Id': answer.id },
  };
}

/** The stream created for an answer's subject when none captures it (CATALOG_EVENTS, PAYMENTS_EVENTS). */
export function streamDefaultFor(subject: string): StreamDefault {
  for (const [name, subjects] of Object.entries(STREAMS)) {
    if (subject.startsWith(subjects.slice(0, -1))) return { name, subjects };
  }
  throw new Error(`no stream of the contract captures ${subject}`);
}

/** Hands one answer to the consumed-event path; rejects when it may succeed later. */
export type Deliver = (answer: PartnerAnswer, signal: AbortSignal) => Promise<void>;

/** Through NATS: the consumer (`orders worker`, or `serve`'s worker) applies it. */
export function natsDelivery(publisher: NatsPublisher): Deliver {
  return async (answer, signal) => {
    await publisher.publishMessage(
      {
        subject: answer.subject,
        body: answer.body,
        headers: answer.headers,
        msgId: answer.id,
        stream: streamDefaultFor(answer.subject),
      },
      { signal },
    );
  };
}

/**
 * Applies a consumed message as the NATS consumer would (the worker's `receive`: the inbox, its
 * metrics, a wake-up for what the change published). Rejects when it may succeed later.
 */
export type Receive = (
  message: InboundMessage,
  options: { signal?: AbortSignal },
) => Promise<{ outcome: string; reason?: string | undefined }>;

/** Without NATS: straight into the inbox, as the consumer would have handed it over. */
export function receiverDelivery(receive: Receive, logger: Logger): Deliver {
  return async (answer, signal) => {
    const result = await receive(inboundMessageOf(answer), { signal });
    if (result.outcome === 'dead') {
      logger.warn(
        { orderId: answer.orderId, type: answer.type, reason: result.reason },
        'a simulated partner answer was recorded dead',
      );
    }
  };
}

export interface PartnerSimulator {
  /**
   * An order was created (its OrderCreated `data` and trace context): answer it SIMULATE_DELAY_MS
   * from now. Never throws; data it cannot read is logged and left unanswered.
   */
  orderCreated(data: unknown, trace?: Readonly<Record<string, string>> | null): void;
  /** Orders scheduled but not answered yet. */
  readonly pending: number;
  /**
   * Cancels the answers not sent yet (logged with their order ids: those orders stay pending),
   * waits for deliveries under way, and closes the transport.
   */
  stop(): Promise<void>;
}

export interface PartnerSimulatorOptions extends SimulationRates {
  delayMs: number;
  deliver: Deliver;
  logger: Logger;
  random?: () => number;
  /** Attempts per answer before giving it up (logged as an error); default 5. */
  maxAttempts?: number;
  /** First retry delay, doubled each time; default 1 s. */
  retryBaseMs?: number;
  /** Releases the transport; called by stop(). */
  close?: () => Promise<void>;
}

export function createPartnerSimulator(options: PartnerSimulatorOptions): PartnerSimulator {
  const { logger } = options;
  const random = options.random ?? Math.random;
  const maxAttempts = options.maxAttempts ?? 5;
  const retryBaseMs = options.retryBaseMs ?? 1_000;
  const scheduled = new Map<string, NodeJS.Timeout>();
  const inFlight = new Set<Promise<void>>();
  const stopping = new AbortController();
  let stopped: Promise<void> | undefined;

  async function deliverWithRetries(answer: PartnerAnswer): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await options.deliver(answer, stopping.signal);
        return;
      } catch (error) {
        const context = { orderId: answer.orderId, type: answer.type, attempt, err: error };
        if (stopping.signal.aborted || attempt >= maxAttempts) {
          logger.error(context, 'a simulated partner answer was not delivered: the order stays pending');
          return;
        }
        logger.warn(context, 'delivering a simulated partner answer failed: retrying');
        await sleep(retryBaseMs * 2 ** (attempt - 1), stopping.signal);
      }
    }
  }

  function answerNow(order: SimulatedOrder, trace: Readonly<Record<string, string>> | null | undefined) {
    scheduled.delete(order.id);
    const answers = decideAnswers(order, options, random, { trace });
    const work = (async () => {
      for (const a of answers) await deliverWithRetries(a);
      logger.debug({ orderId: order.id, answers: answers.map((a) => a.type) }, 'simulated partners answered');
    })();
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work));
  }

  return {
    orderCreated(data, trace) {
      const parsed = SimulatedOrder.safeParse(data);
      if (!parsed.success) {
        logger.warn(
          'partner simulation: an OrderCreated event without id, total and currency was not answered',
        );
        return;
      }
      const order = parsed.data;
      if (stopped) {
        logger.warn({ orderId: order.id }, 'partner simulation stopped: the order is not answered');
        return;
      }
      // A second OrderCreated handling of the same order (a retried outcome) is answered once.
      if (scheduled.has(order.id)) return;
      const timer = setTimeout(() => answerNow(order, trace), options.delayMs);
      timer.unref();
      scheduled.set(order.id, timer);
    },
    get pending() {
      return scheduled.size;
    },
    stop() {
      stopped ??= (async () => {
        const unanswered = [...scheduled.keys()];
        for (const timer of scheduled.values()) clearTimeout(timer);
        scheduled.clear();
        if (unanswered.length > 0) {
          // A development tool keeps its schedule in memory: nothing answers these after a restart.
          logger.warn(
            { count: unanswered.length, orderIds: unanswered.slice(0, 20) },
            'partner simulation stopped before answering these orders: they stay pending',
          );
        }
        stopping.abort();
        await Promise.allSettled([...inFlight]);
        await options.close?.();
      })();
      return stopped;
    },
  };
}

export interface PartnerSimulationSettings extends SimulationRates {
  delayMs: number;
}

/**
 * The simulation inside `serve`'s or `orders worker`'s worker: through NATS when `natsUrl` is set
 * (its own connection; the worker's consumer applies the answers), otherwise handed to `receive`.
 */
export function createInProcessSimulator(
  settings: PartnerSimulationSettings,
  deps: { natsUrl: string | undefined; logger: Logger; receive: Receive },
): PartnerSimulator {
  const logger = deps.logger.child({ component: 'partner-simulator' });
  let deliver: Deliver;
  let close: (() => Promise<void>) | undefined;
  if (deps.natsUrl) {
    const publisher = createNatsPublisher({ url: deps.natsUrl, logger, connectionName: 'orders-simulator' });
    deliver = natsDelivery(publisher);
    close = () => publisher.close();
  } else {
    deliver = receiverDelivery(deps.receive, logger);
  }
  logger.warn(
    {
      transport: deps.natsUrl ? 'nats' : 'inbox',
      delayMs: settings.delayMs,
      stockRejectRate: settings.stockRejectRate,
      paymentFailRate: settings.paymentFailRate,
    },
    'SIMULATE_PARTNERS is on: this process answers every new order as Catalog and Payments would. ' +
      'For development and demos only; set SIMULATE_PARTNERS=false where real partners answer.',
  );
  return createPartnerSimulator({ ...settings, deliver, logger, close });
}
