/**
 * Publishing events to NATS JetStream (only when NATS_URL is set; the client is imported lazily
 * so nobody else pays for it).
 *
 * Each event goes to `<prefix>.<Type>` (by default `orders.events.OrderCreated`) as a CloudEvent
 * in structured mode (the body is the envelope, `Content-Type: application/cloudevents+json`),
 * with the event id as the message id (`Nats-Msg-Id`): JetStream drops a second publish of the
 * same id within the stream's duplicate window, so the worker's at-least-once publishing (a retry
 * after the publish succeeded but marking the event processed failed) stores each event once.
 *
 * The service binds to whichever stream captures a subject (an operator may own the stream, with
 * its own retention and replicas) and creates its default stream only when none does. The answer
 * is cached per subject and asked again after a failed publish (someone may have deleted it).
 */

import { abortable } from '../platform/abortable.js';
import { TransientError } from '../platform/failures.js';
import type { Logger } from '../platform/logger.js';
import { within } from '../platform/shutdown.js';
import {
  CLOUDEVENTS_CONTENT_TYPE,
  DEFAULT_STREAM,
  DEFAULT_SUBJECT_PREFIX,
  subjectFor,
  toCloudEvent,
} from './events.js';
import { parseNatsUrl } from './nats-url.js';
import type { OutboxEvent } from './outbox.js';

export interface EventPublisher {
  /** Publishes one event; rejects with a TransientError so the event is retried. */
  publish(event: OutboxEvent, options: { signal: AbortSignal }): Promise<{ duplicate: boolean }>;
  /** Flushes and closes the connection. Idempotent. */
  close(): Promise<void>;
}

/** A message prepared by its producer (the partner simulator's answers), published as it is. */
export interface PreparedMessage {
  subject: string;
  /** The exact bytes to publish (a CloudEvent's JSON). */
  body: string;
  /** `Nats-Msg-Id` is set from msgId; every other header as given. */
  headers: Readonly<Record<string, string>>;
  msgId: string;
  /** The stream created when none captures the subject. */
  stream: StreamDefault;
}

export interface NatsPublisher extends EventPublisher {
  publishMessage(message: PreparedMessage, options: { signal: AbortSignal }): Promise<{ duplicate: boolean }>;
}

/** What to create when no stream captures a subject. */
export interface StreamDefault {
  name: string;
  /** e.g. `orders.events.>` */
  subjects: string;
  /** How long JetStream remembers message ids (default 10 min). */
  duplicateWindowMs?: number;
}

export interface NatsPublisherOptions {
  /** One nats:// (or tls://) URL or a comma-separated list; credentials in it are passed as options. */
  url: string;
  logger: Logger;
  /** Default `ORDERS_EVENTS`. */
  streamName?: string;
  /** Default `orders.events`; the stream captures `<prefix>.>`. */
  subjectPrefix?: string;
  /** How long JetStream remembers message ids for deduplication when it creates the stream (default 10 min). */
  duplicateWindowMs?: number;
  /** Time to wait for the publish acknowledgement (default 5 s). */
  publishTimeoutMs?: number;
  connectionName?: string;
}

type NatsModule = typeof import('@nats-io/transport-node');
type JetStreamModule = typeof import('@nats-io/jetstream');

interface Connection {
  nats: NatsModule;
  nc: Awaited<ReturnType<NatsModule['connect']>>;
  js: ReturnType<JetStreamModule['jetstream']>;
  jsm: Awaited<ReturnType<JetStreamModule['jetstreamManager']>>;
}

/** Throws a UsageError for a NATS_URL it cannot use (before anything connects). */
export function createNatsPublisher(options: NatsPublisherOptions): NatsPublisher {
  const streamName = options.streamName ?? DEFAULT_STREAM;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const duplicateWindowMs = options.duplicateWindowMs ?? 10 * 60_000;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5_000;
  const { servers, user, pass, token, tls } = parseNatsUrl(options.url);
  // The servers carry no credentials: this is what logs and errors name.
  const where = servers.join(',');
  let connecting: Promise<Connection> | undefined;
  /** The stream that captures each subject, once known. */
  const streams = new Map<string, Promise<string>>();
  let closed = false;

  function connection(): Promise<Connection> {
    connecting ??= open().catch((error: unknown) => {
      connecting = undefined;
      throw new TransientError(`cannot connect to NATS at ${where}: ${messageOf(error)}`, { cause: error });
    });
    return connecting;
  }

  async function open(): Promise<Connection> {
    const [nats, jetstreamModule] = await Promise.all([
      import('@nats-io/transport-node'),
      import('@nats-io/jetstream'),
    ]);
    const nc = await nats.connect({
      servers,
      user,
      pass,
      token,
      tls,
      name: options.connectionName ?? 'orders-worker',
      // Keep reconnecting for as long as the process lives; publishes fail (and are retried
      // with backoff) while the connection is down.
      maxReconnectAttempts: -1,
      timeout: 5_000,
      // Otherwise every JetStream publish (a request) builds an Error up front, only for its
      // stack should the request fail: ~1% of the worker's CPU at 60 orders/s. Our own error
      // (TransientError, with the client's message and the event id) says where it failed.
      noAsyncTraces: true,
    });
    if (closed) {
      await nc.close();
      throw new Error('the publisher was closed');
    }
    const auth = user !== undefined ? 'user' : token !== undefined ? 'token' : 'none';
    options.logger.info(
      { nats: where, auth, tls: tls !== undefined, stream: streamName, subjects: `${prefix}.>` },
      'connected to NATS',
    );
    void nc.closed().then((error) => {
      if (error) options.logger.warn({ err: error }, 'NATS connection closed with an error');
    });
    const jsm = await jetstreamModule.jetstreamManager(nc);
    return { nats, nc, js: jetstreamModule.jetstream(nc), jsm };
  }

  function streamFor(conn: Connection, subject: string, fallback: StreamDefault): Promise<string> {
    let known = streams.get(subject);
    if (!known) {
      known = ensureStream(conn.jsm, conn.nats, subject, fallback, options.logger);
      streams.set(subject, known);
      const entry = known;
      entry.catch(() => {
        if (streams.get(subject) === entry) streams.delete(subject);
      });
    }
    return known;
  }

  async function send(
    subject: string,
    body: string,
    headerValues: Readonly<Record<string, string>>,
    msgId: string,
    fallback: StreamDefault,
    signal: AbortSignal,
  ): Promise<{ duplicate: boolean }> {
    signal.throwIfAborted();
    if (closed) throw new TransientError('the NATS publisher is closed');
    const conn = await connection();
    try {
      await streamFor(conn, subject, fallback);
      const headers = conn.nats.headers();
      for (const [key, value] of Object.entries(headerValues)) headers.set(key, value);
      const ack = await abortable(
        conn.js.publish(subject, body, { msgID: msgId, timeout: publishTimeoutMs, headers }),
        signal,
      );
      return { duplicate: ack.duplicate };
    } catch (error) {
      if (signal.aborted) throw error;
      // Ask again on the next attempt: a missing stream shows up as "no responders".
      streams.delete(subject);
      throw new TransientError(`publishing event ${msgId} to NATS failed: ${messageOf(error)}`, {
        cause: error,
      });
    }
  }

  const ownStream: StreamDefault = { name: streamName, subjects: `${prefix}.>`, duplicateWindowMs };

  return {
    publish(event, { signal }) {
      const headers: Record<string, string> = {
        'Content-Type': CLOUDEVENTS_CONTENT_TYPE,
        'Orders-Event-Type': event.type,
      };
      for (const key of ['traceparent', 'tracestate']) {
        const value = event.traceContext?.[key];
        if (typeof value === 'string' && value) headers[key] = value;
      }
      const body = JSON.stringify(toCloudEvent({ ...event, data: event.payload }));
      return send(subjectFor(prefix, event.type), body, headers, event.id, ownStream, signal);
    },
    publishMessage(message, { signal }) {
      return send(message.subject, message.body, message.headers, message.msgId, message.stream, signal);
    },
    async close() {
      if (closed) return;
      closed = true;
      const pending = connecting;
      connecting = undefined;
      if (!pending) return;
      const conn = await pending.catch(() => undefined);
      if (!conn || conn.nc.isClosed()) return;
      // Drained, publishes in flight reach the server; a connection that is down (reconnecting)
      // would keep a drain waiting, so it is closed after a short bound instead.
      const drained = await within(
        2_000,
        conn.nc.drain().catch(() => undefined),
      );
      if (!drained || !conn.nc.isClosed()) await conn.nc.close().catch(() => undefined);
    },
  };
}

type Jsm = Awaited<ReturnType<JetStreamModule['jetstreamManager']>>;

/**
 * The name of the stream that captures `subject`; when none does, creates `fallback` (limits
 * retention) and returns its name. Another process may create it at the same moment: then the
 * stream that now captures the subject is the answer.
 */
export async function ensureStream(
  jsm: Jsm,
  nats: Pick<NatsModule, 'nanos'>,
  subject: string,
  fallback: StreamDefault,
  logger: Logger,
): Promise<string> {
  try {
    return await jsm.streams.find(subject);
  } catch (error) {
    if (!isStreamNotFound(error)) throw error;
  }
  try {
    await jsm.streams.add({
      name: fallback.name,
      subjects: [fallback.subjects],
      retention: 'limits',
      duplicate_window: nats.nanos(fallback.duplicateWindowMs ?? 10 * 60_000),
    });
    logger.info({ stream: fallback.name, subjects: fallback.subjects }, 'created JetStream stream');
    return fallback.name;
  } catch (error) {
    return await jsm.streams.find(subject).catch(() => {
      throw error;
    });
  }
}

function isStreamNotFound(error: unknown): boolean {
  const e = error as { name?: string; code?: number; message?: string };
  return e?.name === 'StreamNotFoundError' || e?.code === 10059 || /stream not found/i.test(e?.message ?? '');
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
