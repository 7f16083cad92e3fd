/**
 * One statement on a checked-out client (platform/db.ts): how it is sent, cancelled and given up
 * on. A pg Query built from the statement's text, pg's callback rather than its promise, one
 * shared watchdog timer per pool rather than one timer per statement: the path every GET takes.
 */
import pg from 'pg';
import type { CancelSignal, QueryValues } from './db.js';
import { AppError, isBrokenConnection } from './errors.js';

/** A server that answers neither the statement nor the cancel within this is unreachable. */
export const UNANSWERED_GRACE_MS = 1_000;

/** The server never answered a statement: the connection is presumed dead, and was destroyed. */
export class DatabaseUnresponsiveError extends Error {
  readonly code = 'DB_UNAVAILABLE';
  constructor(waitedMs: number, cause: unknown) {
    super(
      `the database did not answer within ${waitedMs} ms (statement_timeout and a grace): ` +
        'the connection was presumed dead and closed',
      { cause },
    );
    this.name = 'DatabaseUnresponsiveError';
  }
}

/** The signal's reason when it is an Error (our deadline sets an AppError), else a generic one. */
export function abortReason(signal: CancelSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new AppError('timeout', 'The request was cancelled before it finished.');
}

/** A statement's outcome, and whether its client must not be pooled again. */
export type Done = (error: Error | undefined, result: pg.QueryResult | undefined, discard: boolean) => void;

/** A statement in flight: what the watchdog and the signal's listener need of it. */
class Statement {
  /** Watchdog ticks seen while in flight, and its place in the watchdog's list (-1: none). */
  ticks = 0;
  slot = -1;
  /** The watchdog gave up waiting: the connection was destroyed. */
  unanswered = false;
  /** A CancelRequest went out: a late one must not hit the client's next user. */
  cancelled = false;
  /** Reported to `done`: pg calls back twice when it fails a statement itself (see send). */
  settled = false;
  /** After a cancel, when the socket is destroyed if the server has answered neither. */
  giveUp: NodeJS.Timeout | undefined = undefined;
  constructor(readonly client: pg.PoolClient) {}
}

/**
 * Runs one statement, reporting to `done`. On abort, a CancelRequest; if the server answers
 * neither the statement nor the cancel in time, the socket is destroyed, which fails the
 * statement ("Connection terminated"), and the client is discarded.
 */
export function send(
  client: pg.PoolClient,
  text: string | pg.QueryConfig,
  values: QueryValues | undefined,
  signal: CancelSignal | undefined,
  watchdog: Watchdog | undefined,
  done: Done,
): void {
  if (signal?.aborted) {
    done(abortReason(signal), undefined, false);
    return;
  }
  const statement = new Statement(client);
  const onAbort = () => {
    // Never for a statement already answered: its client may be someone else's by now.
    if (statement.settled) return;
    statement.cancelled = true;
    sendCancel(client);
    statement.giveUp = setTimeout(destroy, UNANSWERED_GRACE_MS, client);
  };
  const answered = (error: Error | undefined, result: pg.QueryResult | undefined) => {
    // A value pg cannot serialize fails the statement at once (while it is being queued), and
    // the server's ReadyForQuery then reports it a second time, as a success.
    if (statement.settled) return;
    statement.settled = true;
    watchdog?.delete(statement);
    signal?.removeEventListener('abort', onAbort);
    if (statement.giveUp) clearTimeout(statement.giveUp);
    if (!error) return done(undefined, result, statement.cancelled);
    if (signal?.aborted) return done(abortReason(signal), undefined, true);
    if (statement.unanswered) {
      return done(new DatabaseUnresponsiveError(watchdog?.answerWithinMs ?? 0, error), undefined, true);
    }
    // Only a broken connection is thrown away: a lost race (deadlock, lock timeout,
    // serialization failure) leaves a healthy session that the pool can hand out again.
    done(error, undefined, isBrokenConnection(error));
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  watchdog?.add(statement);
  try {
    submit(client, text, values, answered);
  } catch (error) {
    // A config pg cannot read (a caller's bug) fails the statement, not the pool's callback.
    answered(error as Error, undefined);
  }
}

/** A QueryConfig as pg reads it: the options besides name, text and values take pg's own path. */
interface QueryConfigOptions {
  name?: string | undefined;
  text?: unknown;
  values?: unknown[] | undefined;
  rowMode?: unknown;
  types?: unknown;
  binary?: unknown;
  rows?: unknown;
  portal?: unknown;
  queryMode?: unknown;
  query_timeout?: unknown;
  callback?: unknown;
  submit?: unknown;
}

/**
 * Queues the statement as a pg Query built from its text: pg copies a config object before
 * reading it (~2–4 µs a statement in a profile), and the configs used here ({ name, text },
 * perhaps values) need no copy. Any other option goes through pg's own path, unchanged.
 */
function submit(
  client: pg.PoolClient,
  text: string | pg.QueryConfig,
  values: QueryValues | undefined,
  callback: (error: Error | undefined, result: pg.QueryResult | undefined) => void,
): void {
  if (typeof text === 'string') {
    client.query(new pg.Query(text, values as unknown[] | undefined, callback as QueryCallback));
    return;
  }
  const c = text as QueryConfigOptions;
  if (
    typeof c.text !== 'string' ||
    c.rowMode !== undefined ||
    c.types !== undefined ||
    c.binary !== undefined ||
    c.rows !== undefined ||
    c.portal !== undefined ||
    c.queryMode !== undefined ||
    c.query_timeout !== undefined ||
    c.callback !== undefined ||
    c.submit !== undefined
  ) {
    (client.query as (config: unknown, values: unknown, callback: unknown) => void)(text, values, callback);
    return;
  }
  // pg takes the config's own values when none are given, and sets no name from a text.
  const query = new pg.Query(
    c.text,
    (values ?? c.values) as unknown[] | undefined,
    callback as QueryCallback,
  );
  (query as { name?: string | undefined }).name = c.name;
  client.query(query);
}

type QueryCallback = (error: Error | undefined, result: pg.ResultBuilder) => void;

/** Ends a client whose socket may be dead: an active statement makes pg destroy the socket. */
function destroy(client: pg.PoolClient): void {
  client.end(ignore);
}

function ignore(): void {}

/**
 * The bound on an unanswered statement, with one timer per pool rather than a setTimeout and a
 * clearTimeout per statement. While statements are in flight (at most the pool's `max`) it ticks
 * n ≥ 4 times per `answerWithinMs`, at most 1 s apart. A statement's first tick comes within a
 * tick of its start, so one that has seen more than n is declared dead between answerWithinMs
 * and a tick later: its connection is destroyed.
 */
export class Watchdog {
  /** Unordered; each statement knows its slot, so adding and removing one is O(1), no hashing. */
  private readonly inFlight: Statement[] = [];
  private readonly ticks: number;
  private readonly tickMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(readonly answerWithinMs: number) {
    this.ticks = Math.max(4, Math.ceil(answerWithinMs / 1_000));
    this.tickMs = Math.ceil(answerWithinMs / this.ticks);
  }

  add(statement: Statement): void {
    statement.slot = this.inFlight.push(statement) - 1;
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.tickMs);
    this.timer.unref();
  }

  delete(statement: Statement): void {
    const slot = statement.slot;
    if (slot < 0) return;
    statement.slot = -1;
    const last = this.inFlight.pop() as Statement;
    if (last === statement) return;
    this.inFlight[slot] = last;
    last.slot = slot;
  }

  private tick(): void {
    // Idle: stop until the next statement (a busy pool keeps the timer rather than re-arm it).
    if (this.inFlight.length === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    // From the end: removing one moves the last, already seen, into its slot.
    for (let i = this.inFlight.length - 1; i >= 0; i--) {
      const statement = this.inFlight[i] as Statement;
      if (++statement.ticks <= this.ticks) continue;
      this.delete(statement);
      statement.unanswered = true;
      destroy(statement.client);
    }
  }
}

/** The parts of pg's (untyped) Connection used to send a CancelRequest. */
interface CancelConnection {
  on(event: 'error' | 'connect', listener: (...args: unknown[]) => void): void;
  connect(portOrPath: number | string, host?: string): void;
  cancel(processID: number, secretKey: number): void;
  stream: { destroy(): void };
}

interface ClientWire {
  processID: number | null;
  secretKey: number | null;
  host: string;
  port: number;
}

/**
 * Sends a protocol-level CancelRequest on a fresh socket (no authentication needed, no pool
 * connection used), the way psql's Ctrl-C does. Best effort: if it cannot be sent, the client
 * is discarded anyway and the server ends the statement when the session closes.
 */
function sendCancel(client: pg.PoolClient): void {
  const wire = client as unknown as ClientWire;
  if (wire.processID == null || wire.secretKey == null) return;
  const con = new pg.Connection() as unknown as CancelConnection;
  con.on('error', ignore);
  con.on('connect', () => {
    con.cancel(wire.processID as number, wire.secretKey as number);
  });
  if (wire.host?.startsWith('/')) con.connect(`${wire.host}/.s.PGSQL.${wire.port}`);
  else con.connect(wire.port, wire.host);
  // The server closes this socket once it has read the request; one that cannot reach the
  // server (the reason for cancelling, often) must not linger.
  setTimeout(() => con.stream.destroy(), UNANSWERED_GRACE_MS).unref();
}
