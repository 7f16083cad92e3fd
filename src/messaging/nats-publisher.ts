/**
 * Publishing events to NATS JetStream (only when NATS_URL is set; the client is imported lazily
 * so nobody else pays for it).
 *
 * Each event goes to `<prefix>.<Type>` (by default `orders.events.OrderCreated`) with the event id
 * as the message id (`Nats-Msg-Id`): JetStream drops a second publish of the same id within the
 * stream's duplicate window, so the worker's at-least-once publishing (a retry after the publish
 * succeeded but marking the event processed failed) stores each event once. The stream is created
 * when missing, and checked again after a failed publish (someone may have deleted it).
 */

import { abortable } from '../platform/abortable.js';
import { TransientError } from '../platform/failures.js';
import type { Logger } from '../platform/logger.js';
import { DEFAULT_STREAM, DEFAULT_SUBJECT_PREFIX, type PublishedEvent, subjectFor } from './events.js';
import { parseNatsUrl } from './nats-url.js';
import type { OutboxEvent } from './outbox.js';

export interface EventPublisher {
  /** Publishes one event; rejects with a TransientError so the event is retried. */
  publish(event: OutboxEvent, options: { signal: AbortSignal }): Promise<{ duplicate: boolean }>;
  /** Flushes and closes the connection. Idempotent. */
  close(): Promise<void>;
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

/** The message body published for an event. */

type NatsModule = typeof import('@nats-io/transport-node');
type JetStreamModule = typeof import('@nats-io/jetstream');

interface Connection {
  nats: NatsModule;
  nc: Awaited<ReturnType<NatsModule['connect']>>;
  js: ReturnType<JetStreamModule['jetstream']>;
  jsm: Awaited<ReturnType<JetStreamModule['jetstreamManager']>>;
}

/** Throws a UsageError for a NATS_URL it cannot use (before anything connects). */
export function createNatsPublisher(options: NatsPublisherOptions): EventPublisher {
  const streamName = options.streamName ?? DEFAULT_STREAM;
  const prefix = options.subjectPrefix ?? DEFAULT_SUBJECT_PREFIX;
  const duplicateWindowMs = options.duplicateWindowMs ?? 10 * 60_000;
  const publishTimeoutMs = options.publishTimeoutMs ?? 5_000;
  const { servers, user, pass, token, tls } = parseNatsUrl(options.url);
  // The servers carry no credentials: this is what logs and errors name.
  const where = servers.join(',');
  let connecting: Promise<Connection> | undefined;
  let streamReady: Promise<void> | undefined;
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

  function ensureStream(conn: Connection): Promise<void> {
    streamReady ??= (async () => {
      try {
        await conn.jsm.streams.info(streamName);
        return;
      } catch (error) {
        if (!isStreamNotFound(error)) throw error;
      }
      try {
        await conn.jsm.streams.add({
          name: streamName,
          subjects: [`${prefix}.>`],
          duplicate_window: conn.nats.nanos(duplicateWindowMs),
        });
        options.logger.info({ stream: streamName, subjects: `${prefix}.>` }, 'created JetStream stream');
      } catch (error) {
        // Another replica may have created it in the meantime: fine if it now exists.
        await conn.jsm.streams.info(streamName).catch(() => {
          throw error;
        });
      }
    })().catch((error: unknown) => {
      streamReady = undefined;
      throw error;
    });
    return streamReady;
  }

  return {
    async publish(event, { signal }) {
      signal.throwIfAborted();
      if (closed) throw new TransientError('the NATS publisher is closed');
      const conn = await connection();
      try {
        await ensureStream(conn);
        const headers = conn.nats.headers();
        headers.set('Orders-Event-Type', event.type);
        for (const key of ['traceparent', 'tracestate']) {
          const value = event.traceContext?.[key];
          if (typeof value === 'string' && value) headers.set(key, value);
        }
        const body: PublishedEvent = {
          id: event.id,
          type: event.type,
          aggregateType: event.aggregateType,
          aggregateId: event.aggregateId,
          createdAt: event.createdAt.toISOString(),
          data: event.payload,
        };
        const ack = await abortable(
          conn.js.publish(subjectFor(prefix, event.type), JSON.stringify(body), {
            msgID: event.id,
            timeout: publishTimeoutMs,
            headers,
          }),
          signal,
        );
        return { duplicate: ack.duplicate };
      } catch (error) {
        if (signal.aborted) throw error;
        // Re-check the stream on the next attempt: a missing stream shows up as "no responders".
        streamReady = undefined;
        throw new TransientError(`publishing event ${event.id} to NATS failed: ${messageOf(error)}`, {
          cause: error,
        });
      }
    },
    async close() {
      if (closed) return;
      closed = true;
      const pending = connecting;
      connecting = undefined;
      if (!pending) return;
      const conn = await pending.catch(() => undefined);
      if (conn && !conn.nc.isClosed()) await conn.nc.drain().catch(() => conn.nc.close());
    },
  };
}

function isStreamNotFound(error: unknown): boolean {
  const e = error as { name?: string; code?: number; message?: string };
  return e?.name === 'StreamNotFoundError' || e?.code === 10059 || /stream not found/i.test(e?.message ?? '');
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
