/**
 * Consuming Catalog's and Payments' events from NATS JetStream: the transport. What a message
 * means is the handler's (the inbox); this module decides when to fetch, ack and nak.
 *
 * - One durable pull consumer per stream that captures our subjects (nats-bindings.ts); each
 *   message is handled, kept alive, acked or nakked by nats-dispatch.ts.
 * - At most `concurrency` messages are handled at once, and the client buffers at most
 *   `maxMessages` per stream: the next pull is sent only as the loop takes buffered messages,
 *   so a buffered message does not sit past its ack wait behind slow handling (nats.go #1929,
 *   nats.net #608: prefetched messages redelivered while still queued).
 * - A message being handled is kept alive with `working()` every few seconds, so the short ack
 *   wait (what a crashed consumer's messages wait) does not cut a slow handler short.
 * - Acked only after the handler resolved, i.e. after its transaction committed (a message that
 *   can never be applied resolves too: the inbox recorded it dead). A rejection (the database
 *   down) naks with exponential backoff: the message comes back later, nothing behind it waits.
 * - The client reconnects by itself and pulls again after a reconnect or missed heartbeats; a
 *   deleted consumer or stream is only reported (nats.deno #641), so the status events close
 *   the loop and it binds again, creating what is missing. A connection that closed is opened
 *   anew, with backoff.
 * - stop(): no more fetching; what the client had buffered is given back (nak) unhandled;
 *   running handlers get until the timeout, then are aborted (their transactions roll back) and
 *   their messages given back; nothing uncommitted is acked; the connection is flushed and closed.
 */
import type { ConsumerMessages } from '@nats-io/jetstream';
import type { Logger } from '../platform/logger.js';
import { sleep, within } from '../platform/shutdown.js';
import { CONSUMER_NAME } from './events.js';
import {
  type Binding,
  type BindingOptions,
  consumedSubjects,
  ensureConsumer,
  isStreamGone,
  resolveBindings,
  supportsMultipleFilters,
} from './nats-bindings.js';
import { createDispatcher, type InboundHandler, settle } from './nats-dispatch.js';
import { parseNatsUrl } from './nats-url.js';

export type { InboundHandler } from './nats-dispatch.js';

export interface NatsConsumerOptions {
  /** NATS_URL: one URL or a comma-separated list; credentials in it are passed as options. */
  url: string;
  logger: Logger;
  handle: InboundHandler;
  /** Messages handled at once, across streams. */
  concurrency: number;
  /** Messages the client buffers per stream (default 2 × concurrency). */
  maxMessages?: number;
  /** The delay of a redelivery after a failure: ceiling base·2^(n−1), capped (see worker/backoff). */
  retryDelay: (deliveryCount: number) => number;
  /** The contract's 15 s: how long a crashed consumer's messages wait before redelivery. */
  ackWaitMs?: number;
  /** How often a message being handled is kept alive (default: a third of the ack wait, at most 5 s). */
  workingIntervalMs?: number;
  /** How long one pull waits on the server (default 10 s; heartbeats every half of it). */
  expiresMs?: number;
  consumerName?: string;
  /** Only tests set these (runs on a shared NATS never meet). */
  subjectPrefix?: string;
  streamSuffix?: string;
  connectionName?: string;
}

export interface NatsConsumer {
  /** Starts connecting and consuming in the background (NATS down at start is retried). */
  start(): void;
  stop(options: { timeoutMs: number }): Promise<void>;
  readonly inFlight: number;
}

type NatsModule = typeof import('@nats-io/transport-node');
type JetStreamModule = typeof import('@nats-io/jetstream');
interface Connection {
  nc: Awaited<ReturnType<NatsModule['connect']>>;
  jsModule: JetStreamModule;
  js: ReturnType<JetStreamModule['jetstream']>;
  jsm: Awaited<ReturnType<JetStreamModule['jetstreamManager']>>;
}

const DEFAULT_ACK_WAIT_MS = 15_000;

/** Throws a UsageError for a NATS_URL it cannot use (before anything connects). */
export function createNatsConsumer(options: NatsConsumerOptions): NatsConsumer {
  const { servers, user, pass, token, tls } = parseNatsUrl(options.url);
  const where = servers.join(',');
  const logger = options.logger.child({ component: 'nats-consumer' });
  const bindingOptions: BindingOptions = {
    consumerName: options.consumerName ?? CONSUMER_NAME,
    ackWaitMs: options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS,
    subjectPrefix: options.subjectPrefix ?? '',
    streamSuffix: options.streamSuffix ?? '',
  };
  const wanted = new Set(consumedSubjects(bindingOptions.subjectPrefix));
  const workingMs = options.workingIntervalMs ?? Math.min(5_000, bindingOptions.ackWaitMs / 3);
  const maxMessages = options.maxMessages ?? Math.max(1, options.concurrency * 2);
  const expires = options.expiresMs ?? 10_000;

  let state: 'created' | 'running' | 'stopping' | 'stopped' = 'created';
  const stopping = new AbortController();
  const dispatcher = createDispatcher({
    handle: options.handle,
    concurrency: options.concurrency,
    retryDelay: options.retryDelay,
    workingMs,
    logger,
  });
  let connection: Connection | undefined;
  let supervisor: Promise<void> | undefined;
  let stopped: Promise<void> | undefined;

  async function supervise() {
    for (let failures = 0; state === 'running'; ) {
      let productive = false;
      try {
        if (!connection || connection.nc.isClosed()) connection = await connect();
        productive = await session(connection);
      } catch (error) {
        if (state === 'running')
          logger.warn({ err: error, nats: where }, 'consuming from NATS failed; retrying');
      }
      if (state !== 'running') break;
      // A session that consumed ended because a stream went away or the connection closed:
      // bind again at once; one that never got going backs off.
      failures = productive ? 0 : failures + 1;
      await sleep(Math.min(30_000, 250 * 2 ** failures), stopping.signal);
    }
  }

  async function connect(): Promise<Connection> {
    const [nats, jsModule] = await Promise.all([
      import('@nats-io/transport-node'),
      import('@nats-io/jetstream'),
    ]);
    const nc = await nats.connect({
      servers,
      user,
      pass,
      token,
      tls,
      name: options.connectionName ?? 'orders-consumer',
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1_000,
      timeout: 5_000,
    });
    if (state !== 'running') {
      await nc.close();
      throw new Error('the consumer was stopped');
    }
    void watchConnection(nc);
    const jsm = await jsModule.jetstreamManager(nc);
    logger.info(
      { nats: where, auth: user ? 'user' : token ? 'token' : 'none' },
      'connected to NATS to consume',
    );
    return { nc, jsModule, js: jsModule.jetstream(nc), jsm };
  }

  async function watchConnection(nc: Connection['nc']) {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') logger.warn({ nats: where }, 'NATS connection lost; reconnecting');
      else if (status.type === 'reconnect')
        logger.info({ nats: where }, 'NATS connection restored; pulling again');
    }
  }

  /**
   * Binds every stream; ends when the connection closes or a stream went away (the supervisor
   * then resolves the streams again). True when every stream was consumed at some point.
   */
  async function session(conn: Connection): Promise<boolean> {
    const bindings = await resolveBindings(conn.jsModule, conn.jsm, bindingOptions, logger);
    const ended = new AbortController();
    const end = () => ended.abort();
    stopping.signal.addEventListener('abort', end, { once: true });
    if (stopping.signal.aborted) end();
    void conn.nc.closed().then(end);
    let bound = 0;
    try {
      await Promise.all(
        bindings.map((binding) =>
          bind(conn, binding, ended, () => {
            bound++;
          }),
        ),
      );
    } finally {
      stopping.signal.removeEventListener('abort', end);
    }
    return bound === bindings.length;
  }

  async function bind(conn: Connection, binding: Binding, ended: AbortController, onBound: () => void) {
    const multipleFilters = supportsMultipleFilters(conn.nc.info?.version);
    let first = true;
    for (let failures = 0; !ended.signal.aborted; ) {
      try {
        await ensureConsumer(
          conn.jsModule,
          conn.jsm,
          binding,
          { ...bindingOptions, multipleFilters },
          logger,
        );
        const consumer = await conn.js.consumers.get(binding.stream, bindingOptions.consumerName);
        const messages = await consumer.consume({ max_messages: maxMessages, expires });
        if (first) onBound();
        first = false;
        failures = 0;
        logger.info({ stream: binding.stream, subjects: binding.subjects }, 'consuming');
        await drain(messages, binding, ended);
      } catch (error) {
        if (isStreamGone(error)) {
          // Streams are resolved again (and the contract's created) by a new session.
          logger.warn({ stream: binding.stream }, 'the stream is gone; binding the subjects again');
          ended.abort();
          break;
        }
        if (!ended.signal.aborted) {
          logger.warn({ err: error, stream: binding.stream }, 'binding the consumer failed; retrying');
        }
      }
      if (ended.signal.aborted) break;
      await sleep(Math.min(30_000, 250 * 2 ** ++failures), ended.signal);
    }
  }

  /** The message loop of one consume(): ends when it is closed (stop, a deleted consumer or stream). */
  async function drain(messages: ConsumerMessages, binding: Binding, ended: AbortController) {
    let closing = false;
    const close = () => {
      closing = true;
      void messages.close();
    };
    ended.signal.addEventListener('abort', close, { once: true });
    void watch(messages, binding, ended, close);
    try {
      // After close() the client still yields what it had buffered: given back unhandled.
      for await (const msg of messages) {
        if (!wanted.has(msg.subject)) {
          // Only on a server without filter_subjects: a subject the wildcard filter let through.
          settle(() => msg.ack());
        } else if (closing || state !== 'running' || !(await dispatcher.acquire(stopping.signal))) {
          settle(() => msg.nak());
        } else {
          dispatcher.dispatch(msg);
        }
      }
    } finally {
      ended.signal.removeEventListener('abort', close);
    }
  }

  /** The consume() status events: a consumer or stream that went away is recreated. */
  async function watch(
    messages: ConsumerMessages,
    binding: Binding,
    ended: AbortController,
    close: () => void,
  ) {
    const where = { stream: binding.stream, consumer: bindingOptions.consumerName };
    for await (const status of messages.status()) {
      switch (status.type) {
        case 'consumer_deleted':
        case 'consumer_not_found':
          logger.warn({ ...where, status: status.type }, 'the durable consumer is gone; recreating it');
          close();
          return;
        case 'stream_not_found':
          logger.warn(where, 'the stream is gone; binding the subjects again');
          ended.abort();
          return;
        case 'heartbeats_missed':
          logger.warn(
            { ...where, missed: status.count },
            'no heartbeats from NATS; checking the consumer and pulling again',
          );
          break;
        case 'exceeded_limits':
          logger.warn({ ...where, description: status.description }, 'a pull exceeded a consumer limit');
          break;
        default:
          break;
      }
    }
  }

  async function shutdown(timeoutMs: number) {
    const wasRunning = state === 'running';
    state = 'stopping';
    stopping.abort();
    const deadline = Date.now() + Math.max(0, timeoutMs);
    if (wasRunning && dispatcher.inFlight > 0) {
      logger.info(
        { inFlight: dispatcher.inFlight, timeoutMs },
        'consumer stopping: finishing the events being handled',
      );
    }
    // Past the deadline's last half-second the handlers are aborted: their messages given back.
    await dispatcher.finish(deadline - Date.now() - 500, 500);
    await within(Math.max(100, deadline - Date.now()), supervisor ?? Promise.resolve());
    const nc = connection?.nc;
    if (nc && !nc.isClosed()) {
      // The acks (and naks) just sent must reach the server before the socket goes.
      await within(
        1_000,
        nc.flush().catch(() => undefined),
      );
      await nc.close().catch(() => undefined);
    }
    state = 'stopped';
  }

  return {
    start() {
      if (state !== 'created') return;
      state = 'running';
      supervisor = supervise();
    },
    stop({ timeoutMs }) {
      stopped ??= shutdown(timeoutMs);
      return stopped;
    },
    get inFlight() {
      return dispatcher.inFlight;
    },
  };
}
