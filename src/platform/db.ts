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
 *
 * Every GET is one `query`, so that path costs as little as pg allows: the client is checked out
 * and the statement run through pg's callbacks, which settle a single promise (withCallerStack
 * aside); no timer per statement (one watchdog per pool checks the statements in flight); and
 * no copy of the statement's config by pg. How a statement is sent, cancelled and given up on
 * is in platform/db-statement.ts.
 */
import pg from 'pg';
import type { Logger } from 'pino';
import {
  abortReason,
  DatabaseUnresponsiveError,
  send,
  UNANSWERED_GRACE_MS,
  Watchdog,
} from './db-statement.js';
import { AppError, isBrokenConnection } from './errors.js';
import { inSpan, SpanKind, type Telemetry } from './telemetry.js';

export type QueryValues = readonly unknown[];

export { abortReason, DatabaseUnresponsiveError };

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
/** Idle time before TCP keepalive probes a socket (the kernel's default is two hours). */
const KEEPALIVE_INITIAL_DELAY_MS = 10_000;

/** int8 (bigint, count(*)) as a JS number: money totals are validated to stay safe integers. */
const types = new pg.TypeOverrides();
types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

export function createDb(options: DbOptions): Db {
  const statementTimeoutMs = options.statementTimeoutMillis ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  const waitMs = options.connectionTimeoutMillis ?? 5_000;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    // Idle connections stay open (the connection budget counts every pool at its max anyway): a
    // pool above `min` arms a timer on every release to close idle clients, a cost per statement.
    min: options.max,
    idleTimeoutMillis: 30_000,
    // pg-pool would arm a timer for every checkout, even one an idle client answers on the next
    // tick: checkout() times only a wait, and each new connection times its own connect.
    connectionTimeoutMillis: 0,
    Client: clientConnectingWithin(waitMs),
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

  const watchdog = answerWithinMs === undefined ? undefined : new Watchdog(answerWithinMs);
  const telemetry = options.telemetry;
  /** A statement on a checked-out client, inside a `pg <verb>` client span when tracing is on. */
  const exec = <R extends pg.QueryResultRow>(
    client: pg.PoolClient,
    text: string | pg.QueryConfig,
    values: QueryValues | undefined,
    signal: CancelSignal | undefined,
    markBroken: () => void,
  ): Promise<pg.QueryResult<R>> => {
    if (!telemetry?.enabled) return run<R>(client, text, values, signal, watchdog, markBroken);
    const sql = typeof text === 'string' ? text : text.text;
    const name = typeof text === 'string' ? undefined : text.name;
    return inSpan(
      telemetry,
      `pg ${name ?? sql.trim().split(/\s+/, 1)[0]?.toUpperCase() ?? 'query'}`,
      {
        kind: SpanKind.CLIENT,
        attributes: { 'db.system.name': 'postgresql', 'db.query.text': sql.slice(0, 2000) },
      },
      () => run<R>(client, text, values, signal, watchdog, markBroken),
    );
  };

  async function withClient<T>(
    signal: CancelSignal | undefined,
    fn: (client: pg.PoolClient, markBroken: () => void) => Promise<T>,
  ) {
    const client = await new Promise<pg.PoolClient>((resolve, reject) =>
      checkout(pool, waitMs, signal, resolve, reject),
    );
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
    query<R extends pg.QueryResultRow>(
      text: string | pg.QueryConfig,
      values?: QueryValues,
      queryOptions?: QueryOptions,
    ) {
      const signal = queryOptions?.signal;
      if (telemetry?.enabled) {
        return withClient(signal, (client, markBroken) => exec<R>(client, text, values, signal, markBroken));
      }
      return queryPool<R>(pool, waitMs, text, values, signal, watchdog);
    },
    transaction(fn, txOptions) {
      const signal = txOptions?.signal;
      return withClient(signal, async (client, markBroken) => {
        const tx: Queryable = {
          query: (text, values, queryOptions) =>
            exec(client, text, values, queryOptions?.signal ?? signal, markBroken),
        };
        await exec(client, 'BEGIN', undefined, signal, markBroken);
        try {
          const result = await fn(tx);
          await exec(client, 'COMMIT', undefined, signal, markBroken);
          return result;
        } catch (error) {
          // A broken connection or a fired signal discards the client (the server rolls back
          // when the session ends); otherwise roll back here, and discard the client if even
          // that fails: it must not return to the pool inside an aborted transaction.
          if (!signal?.aborted && !isBrokenConnection(error)) {
            await exec(client, 'ROLLBACK', undefined, undefined, markBroken).catch(markBroken);
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

/** pg's Client with a timeout on its own connect (the pool hands it its config, without one). */
function clientConnectingWithin(connectTimeoutMs: number): new () => pg.Client {
  return class extends pg.Client {
    constructor(config?: pg.ClientConfig) {
      super({ ...config, connectionTimeoutMillis: connectTimeoutMs });
    }
  };
}

/** A statement on the pool: checkout and statement report through callbacks to one promise. */
function queryPool<R extends pg.QueryResultRow>(
  pool: pg.Pool,
  waitMs: number,
  text: string | pg.QueryConfig,
  values: QueryValues | undefined,
  signal: CancelSignal | undefined,
  watchdog: Watchdog | undefined,
): Promise<pg.QueryResult<R>> {
  return new Promise<pg.QueryResult<R>>((resolve, reject) => {
    const use = (client: pg.PoolClient, release: (discard: boolean) => void) => {
      send(client, text, values, signal, watchdog, (error, result, discard) => {
        release(discard);
        if (error) reject(error);
        else resolve(result as pg.QueryResult<R>);
      });
    };
    checkout(pool, waitMs, signal, use, reject);
  }).catch(withCallerStack);
}

/** A statement on a checked-out client, as a promise; `markBroken` when it must not be pooled. */
function run<R extends pg.QueryResultRow>(
  client: pg.PoolClient,
  text: string | pg.QueryConfig,
  values: QueryValues | undefined,
  signal: CancelSignal | undefined,
  watchdog: Watchdog | undefined,
  markBroken: () => void,
): Promise<pg.QueryResult<R>> {
  return new Promise<pg.QueryResult<R>>((resolve, reject) => {
    send(client, text, values, signal, watchdog, (error, result, discard) => {
      if (discard) markBroken();
      if (error) reject(error);
      else resolve(result as pg.QueryResult<R>);
    });
  }).catch(withCallerStack);
}

/**
 * Gives a failed statement's error the stack of the code awaiting it (pg's own errors carry its
 * parser's, ours that of the callback that made them), as pg's promises do; an AppError (a
 * signal's reason) keeps its own. The handler costs ~0.03 µs a query (measured), a second
 * promise that only an error does anything with.
 */
function withCallerStack(error: unknown): never {
  if (error instanceof Error && !(error instanceof AppError)) Error.captureStackTrace(error);
  throw error;
}

/** No connection could be had: transient by nature (see isBrokenConnection). */
export class DatabaseUnavailableError extends Error {
  readonly code = 'DB_UNAVAILABLE';
  constructor(cause: unknown) {
    super(`could not get a database connection: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'DatabaseUnavailableError';
  }
}

/**
 * Checks a client out for `use`, or tells `fail` why not: the signal's reason if it fires first,
 * a DatabaseUnavailableError when no client came within `waitMs` (0: no bound) or none could be
 * had. A client that comes after the caller gave up goes straight back.
 */
function checkout(
  pool: pg.Pool,
  waitMs: number,
  signal: CancelSignal | undefined,
  use: (client: pg.PoolClient, release: (discard: boolean) => void) => void,
  fail: (error: Error) => void,
): void {
  if (signal?.aborted) {
    fail(abortReason(signal));
    return;
  }
  // With an idle client and nobody queued, the pool answers on the next tick: nothing to time
  // or cut short (send checks the signal again before sending), so no timer and no listener.
  if (pool.idleCount > 0 && pool.waitingCount === 0) {
    pool.connect((error, client, release) => {
      if (client) return use(client, release);
      fail(new DatabaseUnavailableError(error));
    });
    return;
  }
  let gaveUp = false;
  let timer: NodeJS.Timeout | undefined;
  const giveUp = (error: Error) => {
    gaveUp = true;
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    fail(error);
  };
  const onAbort = () => giveUp(abortReason(signal!));
  signal?.addEventListener('abort', onAbort, { once: true });
  if (waitMs > 0) {
    timer = setTimeout(
      () => giveUp(new DatabaseUnavailableError(new Error('timeout exceeded when trying to connect'))),
      waitMs,
    );
  }
  pool.connect((error, client, release) => {
    if (gaveUp) {
      if (client) release();
      return;
    }
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    if (client) return use(client, release);
    if (signal?.aborted) return fail(abortReason(signal));
    // Whatever stops us getting a connection (refused, restarting, not accepting connections,
    // too many clients) means the database is unavailable to this process.
    fail(new DatabaseUnavailableError(error));
  });
}
