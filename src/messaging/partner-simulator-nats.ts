/**
 * `orders partners simulate`: Catalog and Payments played over NATS, for a full local stack
 * (docker compose) and demos. A development tool, never a partner.
 *
 * It reads `orders.events.OrderCreated` with a durable pull consumer of its own
 * (`orders-simulator`, explicit acks) on whichever stream captures the subject (creating
 * ORDERS_EVENTS when none does, so it may start before the service), and answers each order
 * SIMULATE_DELAY_MS after it was published, on `catalog.events.<Type>` and
 * `payments.events.<Type>` (the service's consumer applies them like a real partner's).
 *
 * An OrderCreated message is acknowledged only after both answers were published: one that
 * was being waited on when the simulator stops (or crashes) is redelivered to its next run and
 * answered then. Answers carry ids derived from the order, so answering twice stores them once.
 */
import type { Logger } from '../platform/logger.js';
import { sleep, within } from '../platform/shutdown.js';
import { CloudEvent, DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, ORDER_CREATED, subjectFor } from './events.js';
import { createNatsPublisher, ensureStream } from './nats-publisher.js';
import { parseNatsUrl } from './nats-url.js';
import {
  decideAnswers,
  natsDelivery,
  type PartnerSimulationSettings,
  SimulatedOrder,
} from './partner-simulator.js';

export const SIMULATOR_CONSUMER = 'orders-simulator';

export interface NatsPartnerSimulatorOptions extends PartnerSimulationSettings {
  /** NATS_URL: one URL or a comma-separated list, credentials passed as options. */
  url: string;
  logger: Logger;
  /** Stops the simulator: what is not answered yet is left for the next run. */
  signal: AbortSignal;
  random?: () => number;
  /** Default `orders-simulator`. */
  consumerName?: string;
  /** Where OrderCreated is published (default `orders.events`; tests use their own). */
  subjectPrefix?: string;
  /** Called each time the consumer is bound and reading. */
  onReady?: (binding: { stream: string; consumer: string }) => void;
}

type Nats = typeof import('@nats-io/transport-node');
type Js = typeof import('@nats-io/jetstream');
type JsMsg = import('@nats-io/jetstream').JsMsg;

/** Runs until `signal` aborts; resolves once every message in hand is acked or given back. */
export async function runNatsPartnerSimulator(options: NatsPartnerSimulatorOptions): Promise<void> {
  const { logger, signal } = options;
  const random = options.random ?? Math.random;
  const consumerName = options.consumerName ?? SIMULATOR_CONSUMER;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const createdSubject = subjectFor(prefix, ORDER_CREATED);
  const { servers, user, pass, token, tls } = parseNatsUrl(options.url);
  const [nats, js] = await Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]);

  logger.info({ nats: servers.join(','), subject: createdSubject }, 'connecting to NATS');
  // A NATS that is not up yet (a stack starting) is waited for, attempt by attempt, so that a
  // stop signal meanwhile ends the wait (a client left reconnecting would keep the process alive).
  let nc: Awaited<ReturnType<Nats['connect']>> | undefined;
  for (let attempt = 1; !nc && !signal.aborted; attempt++) {
    try {
      nc = await nats.connect({
        servers,
        user,
        pass,
        token,
        tls,
        name: 'orders-simulator',
        maxReconnectAttempts: -1,
        timeout: 5_000,
      });
    } catch (error) {
      if (attempt === 1 || attempt % 30 === 0) {
        logger.warn({ err: error, attempt }, 'NATS is not reachable yet: retrying');
      }
      await sleep(Math.min(500 * attempt, 2_000), signal);
    }
  }
  if (!nc) return;
  if (signal.aborted) {
    await nc.close();
    return;
  }
  const publisher = createNatsPublisher({ url: options.url, logger, connectionName: 'orders-simulator' });
  const deliver = natsDelivery(publisher);
  const inFlight = new Set<Promise<void>>();

  async function answer(m: JsMsg) {
    const order = readOrder(m, logger);
    if (!order) {
      m.term(); // never answerable: not redelivered
      return;
    }
    await sleep(options.delayMs - (Date.now() - m.time.getTime()), signal);
    if (signal.aborted) {
      m.nak(); // the next run answers it
      return;
    }
    const trace = traceOf(m);
    const answers = decideAnswers(order, options, random, { trace });
    try {
      for (const a of answers) await deliver(a, signal);
      m.ack();
      logger.info({ orderId: order.id, answers: answers.map((a) => a.type) }, 'answered an order');
    } catch (error) {
      // Doubling from 2 s to a minute: a publish that keeps failing (no permission, NATS gone)
      // must not become a tight loop over every order in flight.
      const retryInMs = Math.min(60_000, 2_000 * 2 ** Math.min(Math.max(0, m.info.deliveryCount - 1), 5));
      logger.warn(
        { orderId: order.id, err: error, retryInMs },
        'publishing the answers failed: retrying the order',
      );
      m.nak(retryInMs);
    }
  }

  try {
    const jsm = await js.jetstreamManager(nc);
    const client = js.jetstream(nc);
    while (!signal.aborted) {
      try {
        const stream = await ensureStream(
          jsm,
          nats,
          createdSubject,
          { name: DEFAULT_STREAM, subjects: `${prefix}.>` },
          logger,
        );
        await bindConsumer(jsm, nats, stream, consumerName, createdSubject, options.delayMs);
        const consumer = await client.consumers.get(stream, consumerName);
        const messages = await consumer.consume({ max_messages: 256 });
        const stop = () => void messages.close();
        signal.addEventListener('abort', stop, { once: true });
        void watch(messages, logger);
        logger.info({ stream, consumer: consumerName, subject: createdSubject }, 'answering new orders');
        options.onReady?.({ stream, consumer: consumerName });
        for await (const m of messages) {
          const work = answer(m).catch((error: unknown) => logger.error({ err: error }, 'answering failed'));
          inFlight.add(work);
          void work.finally(() => inFlight.delete(work));
        }
        signal.removeEventListener('abort', stop);
      } catch (error) {
        if (signal.aborted) break;
        logger.warn({ err: error }, 'the OrderCreated consumer failed: binding it again shortly');
      }
      // The iterator ended without a stop (the consumer or stream went away): bind again.
      if (!signal.aborted) await sleep(1_000, signal);
    }
  } finally {
    await Promise.allSettled([...inFlight]);
    await publisher.close();
    await closeConnection(nc);
    logger.info('partner simulator stopped');
  }
}

/** Creates the durable consumer, or keeps the one that exists (an earlier run's position). */
async function bindConsumer(
  jsm: Awaited<ReturnType<Js['jetstreamManager']>>,
  nats: Pick<Nats, 'nanos'>,
  stream: string,
  name: string,
  subject: string,
  delayMs: number,
) {
  try {
    await jsm.consumers.info(stream, name);
    return;
  } catch (error) {
    if ((error as { name?: string }).name !== 'ConsumerNotFoundError') throw error;
  }
  await jsm.consumers.add(stream, {
    durable_name: name,
    filter_subject: subject,
    ack_policy: 'explicit',
    // Orders placed before the simulator first ran are answered too.
    deliver_policy: 'all',
    // A message is held for the delay before its ack: it must not be redelivered meanwhile.
    ack_wait: nats.nanos(Math.max(30_000, 2 * delayMs + 10_000)),
    max_ack_pending: 1_000,
  });
}

/** Ends the messages when the consumer or its stream is gone, so the loop binds again. */
async function watch(
  messages: Awaited<ReturnType<import('@nats-io/jetstream').Consumer['consume']>>,
  logger: Logger,
) {
  for await (const status of messages.status()) {
    if (
      status.type === 'consumer_deleted' ||
      (status.type === 'consumer_not_found' && status.count >= 2) ||
      status.type === 'stream_not_found'
    ) {
      logger.warn({ status: status.type }, 'the OrderCreated consumer went away');
      await messages.close();
      return;
    }
  }
}

/** Drains (acks in flight reach the server); a connection that is down is closed instead of waited for. */
async function closeConnection(nc: Awaited<ReturnType<Nats['connect']>>) {
  if (nc.isClosed()) return;
  const drained = await within(
    2_000,
    nc.drain().catch(() => undefined),
  );
  if (!drained || !nc.isClosed()) await nc.close().catch(() => undefined);
}

function readOrder(m: JsMsg, logger: Logger): SimulatedOrder | undefined {
  let json: unknown;
  try {
    json = m.json();
  } catch {
    logger.warn({ seq: m.seq }, 'an OrderCreated message that is not JSON: skipped');
    return undefined;
  }
  const event = CloudEvent.safeParse(json);
  const order = event.success ? SimulatedOrder.safeParse(event.data.data) : undefined;
  if (!order?.success) {
    logger.warn({ seq: m.seq }, 'an OrderCreated message without an order (id, total, currency): skipped');
    return undefined;
  }
  return order.data;
}

function traceOf(m: JsMsg): Record<string, string> | undefined {
  const traceparent = m.headers?.get('traceparent');
  if (!traceparent) return undefined;
  const tracestate = m.headers?.get('tracestate');
  return tracestate ? { traceparent, tracestate } : { traceparent };
}
