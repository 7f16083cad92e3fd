/**
 * The database layer: a pg pool (a process may open several: `serve` gives its in-process worker
 * a pool of its own) and cancellation that reaches the server. An aborted AbortSignal sends
 * PostgreSQL a CancelRequest for the running statement (so the work stops on the server, not just
 * in our promise) and the client is then discarded rather than pooled, so a late cancel can never
 * hit someone else's query.
 *
 * No statement waits forever. The server ends any statement at `statement_timeout`; a statement
 * the server has not answered by then (plus a grace), or a cancel it has not answered within a
 * grace, means the connection is dead or half-open (a peer gone without a FIN or RST, a NAT or
 * proxy that drops its state): its socket is destroyed, the statement fails as a broken
 * connection, and the pool reconnects. TCP keepalive starts probing idle sockets after 10 s.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import { AppError, isBrokenConnection } from './errors.js';
import { inSpan, SpanKind, type Telemetry } from './telemetry.js';

export type QueryValues = readonly unknown[];

/**
 * What a statement's cancellation needs of a signal: an AbortSignal fits, and so does the request
 * deadline's own (server/plugins/request-deadline.ts), which costs a request far less than an
 * AbortController (measured: ~4 µs to create one and attach its first listener).
 */
export interface CancelSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface QueryOptions {
  signal?: CancelSignal | undefined;
}

/** Anything queries can run on: a pool, or (for a transaction) the one client it is pinned to. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string | pg.QueryConfig,
    values?: QueryValues,
    options?: QueryOptions,
  ): Promise<pg.QueryResult<R>>;
}

export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
  max: number;
}

/** A Queryable that can also run a transaction (the pool). */
export interface Transactional extends Queryable {
  /**
   * `fn` between BEGIN and COMMIT on one client. Any error rolls back before the client returns
   * to the pool; one whose connection broke, signal fired or ROLLBACK failed is discarded: no
   * session inside an aborted transaction is ever handed out again.
   */
  transaction<T>(fn: (tx: Queryable) => Promise<T>, options?: QueryOptions): Promise<T>;
}

export interface Db extends Transactional {
  stats(): PoolStats;
  close(): Promise<void>;
}

export interface DbOptions {
  connectionString: string;
  max: number;
  logger: Logger;
  applicationName?: string;
  /** How long a caller may wait for a free connection before the pool gives up. */
  connectionTimeoutMillis?: number;
  /**
   * Server-side lock_timeout for every statement. The app never holds locks for long, so a wait
   * this long means contention (e.g. an Idempotency-Key whose first request is still running).
   */
  lockTimeoutMillis?: number;
  /**
   * Server-side statement_timeout for every statement (0: none), and the client's bound for an
   * answer: a statement unanswered this long plus a grace is on a dead connection.
   */
  statementTimeoutMillis?: number;
  /** When tracing is on, every query gets a client span. */
  telemetry?: Telemetry;
}

export const DEFAULT_LOCK_TIMEOUT_MS = 2_000;
/**
 * The worker's statements are short, and HTTP requests have their own, shorter deadline
 * (REQUEST_TIMEOUT_MS cancels their statements first). Migrations do not use these pools.
 */
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
/** A server that answers neither the statement nor the cancel within this is unreachable. */
const UNANSWERED_GRACE_MS = 1_000;
/** Idle time before TCP keepalive probes a socket (the kernel's default is two hours). */
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

/** int8 (bigint, count(*)) as a JS number: money totals are validated to stay safe integers. */
const types = new pg.TypeOverrides();
types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

export function createDb(options: DbOptions): Db {
  const statementTimeoutMs = options.statementTimeoutMillis ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? 5_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: KEEPALIVE_INITIAL_DELAY_MS,
    application_name: options.applicationName ?? 'orders',
    lock_timeout: options.lockTimeoutMillis ?? DEFAULT_LOCK_TIMEOUT_MS,
    ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
    types,
  });
  const answerWithinMs = statementTimeoutMs > 0 ? statementTimeoutMs + UNANSWERED_GRACE_MS : undefined;
  // An idle client whose server went away emits 'error' on the pool; without a listener that
  // would crash the process. The pool drops the client and the next checkout reconnects.
  pool.on('error', (error) => {
    options.logger.warn({ err: error }, 'idle database connection failed; it will be replaced');
  });
  // pg removes the pool's error listener while a client is checked out; a socket error then
  // (the server restarting under us) would be an unhandled 'error' event and crash the process.
  // The failing query rejects on its own; this listener, on every client for its whole life (not
  // added and removed per checkout), only keeps the event handled.
  pool.on('connect', (client) => {
    client.on('error', ignoreClientError);
  });

  const telemetry = options.telemetry;
  /** runQuery, inside a `pg <verb>` client span when tracing is on. */
  const exec = <R extends pg.QueryResultRow>(
    client: pg.PoolClient,
    text: string | pg.QueryConfig,
    values: QueryValues | undefined,
    signal: CancelSignal | undefined,
  ): Promise<pg.QueryResult<R>> => {
    if (!telemetry?.enabled) return runQuery<R>(client, text, values, signal, answerWithinMs);
    const sql = typeof text === 'string' ? text : text.text;
    const name = typeof text === 'string' ? undefined : text.name;
    return inSpan(
      telemetry,
      `pg ${name ?? sql.trim().split(/\s+/, 1)[0]?.toUpperCase() ?? 'query'}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { 'db.system.name': 'postgresql', 'db.query.text': sql.slice(0, 2000) },
      },
      () => runQuery<R>(client, text, values, signal, answerWithinMs),
    );
  };

  async function withClient<T>(
    signal: CancelSignal | undefined,
    fn: (client: pg.PoolClient, markBroken: () => void) => Promise<T>,
  ) {
    throwIfAborted(signal);
    let client: pg.PoolClient;
    try {
      client = await acquire(pool, signal);
    } catch (error) {
      if (signal?.aborted) throw error;
      // Whatever stops us getting a connection (refused, restarting, not accepting connections,
      // too many clients, pool wait timeout) means the database is unavailable to this process.
      throw new DatabaseUnavailableError(error);
    }
    let discard = false;
    try {
      return await fn(client, () => {
        discard = true;
      });
    } catch (error) {
      // Only a broken connection is thrown away: a lost race (deadlock, lock timeout,
      // serialization failure) leaves a healthy session that the pool can hand out again.
      discard ||= signal?.aborted === true || isBrokenConnection(error);
      throw error;
    } finally {
      client.release(discard);
    }
  }

  const db: Db = {
    query(text, values, queryOptions) {
      return withClient(queryOptions?.signal, (client) => exec(client, text, values, queryOptions?.signal));
    },
    transaction(fn, txOptions) {
      const signal = txOptions?.signal;
      return withClient(signal, async (client, markBroken) => {
        const tx: Queryable = {
          query: (text, values, queryOptions) => exec(client, text, values, queryOptions?.signal ?? signal),
        };
        await exec(client, 'BEGIN', undefined, signal);
        try {
          const result = await fn(tx);
          await exec(client, 'COMMIT', undefined, signal);
          return result;
        } catch (error) {
          // A broken connection or a fired signal discards the client (the server rolls back
          // when the session ends); otherwise roll back here, and discard the client if even
          // that fails: it must not return to the pool inside an aborted transaction.
          if (!signal?.aborted && !isBrokenConnection(error)) {
            await exec(client, 'ROLLBACK', undefined, undefined).catch(markBroken);
          }
          throw error;
        }
      });
    },
    stats() {
      return { total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount, max: options.max };
    },
    async close() {
      if (!(pool as { ending?: boolean }).ending) await pool.end();
    },
  };
  return db;
}

function ignoreClientError(): void {}

/** No connection could be had: transient by nature (see isBrokenConnection). */
export class DatabaseUnavailableError extends Error {
  readonly code = 'DB_UNAVAILABLE';
  constructor(cause: unknown) {
    super(`could not get a database connection: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

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

function throwIfAborted(signal: CancelSignal | undefined): void {
  if (signal?.aborted) throw abortReason(signal);
}

/** The signal's reason when it is an Error (our deadline sets an AppError), else a generic one. */
export function abortReason(signal: CancelSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  return new AppError('timeout', 'The request was cancelled before it finished.');
}

/** Waits for a pool client, giving up (and returning the client later) if the signal fires. */
function acquire(pool: pg.Pool, signal: CancelSignal | undefined): Promise<pg.PoolClient> {
  // With an idle client the pool answers at once: there is no wait for the signal to cut short
  // (runQuery checks it again before sending), so no listener and no extra promise.
  if (!signal || (pool.idleCount > 0 && pool.waitingCount === 0)) return pool.connect();
  return new Promise((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      if (settled) return;
      settled = true;
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    pool.connect().then(
      (client) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) client.release();
        else {
          settled = true;
          resolve(client);
        }
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        if (!settled) {
          settled = true;
          reject(error);
        }
      },
    );
  });
}

/**
 * Runs one statement. On abort, a CancelRequest; if the server answers neither the statement nor
 * the cancel in time, the socket is destroyed, which fails the statement ("Connection
 * terminated"), and the caller discards the client.
 */
async function runQuery<R extends pg.QueryResultRow>(
  client: pg.PoolClient,
  text: string | pg.QueryConfig,
  values: QueryValues | undefined,
  signal: CancelSignal | undefined,
  answerWithinMs: number | undefined,
): Promise<pg.QueryResult<R>> {
  throwIfAborted(signal);
  let unanswered = false;
  let giveUp: NodeJS.Timeout | undefined;
  const destroy = () => void client.end().catch(() => undefined);
  const watchdog =
    answerWithinMs === undefined
      ? undefined
      : setTimeout(() => {
          unanswered = true;
          destroy();
        }, answerWithinMs);
  const onAbort = () => {
    sendCancel(client);
    giveUp ??= setTimeout(destroy, UNANSWERED_GRACE_MS);
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    // pg copies the config and sets the values on its copy (a config's own values stay when
    // none are given): nothing to copy here.
    return await client.query<R>(text, values as unknown[] | undefined);
  } catch (error) {
    if (signal?.aborted) throw abortReason(signal);
    if (unanswered) throw new DatabaseUnresponsiveError(answerWithinMs ?? 0, error);
    throw error;
  } finally {
    clearTimeout(watchdog);
    clearTimeout(giveUp);
    signal?.removeEventListener('abort', onAbort);
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
  con.on('error', () => undefined);
  con.on('connect', () => {
    con.cancel(wire.processID as number, wire.secretKey as number);
  });
  if (wire.host?.startsWith('/')) con.connect(`${wire.host}/.s.PGSQL.${wire.port}`);
  else con.connect(wire.port, wire.host);
  // The server closes this socket once it has read the request; one that cannot reach the
  // server (the reason for cancelling, often) must not linger.
  setTimeout(() => con.stream.destroy(), UNANSWERED_GRACE_MS).unref();
}
