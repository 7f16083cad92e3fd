/**
 * The error vocabulary. A failure the caller must hear about is an AppError with a stable code
 * from the contract; what HTTP status and title a code gets is the HTTP layer's business
 * (platform/problem.ts), so the domain raises codes and never speaks HTTP.
 *
 * Failures from the database fall in two classes that callers treat differently:
 * - `isBrokenConnection`: the connection or the server is gone. The client is discarded (it
 *   must never go back to the pool) and the API answers 503.
 * - `isRetryable`: running the same work again may succeed. Every broken connection, plus a
 *   transaction that lost a race on a healthy connection (serialization failure, deadlock, lock
 *   timeout): that connection stays pooled; the worker retries with backoff.
 */
export const ERROR_CODES = [
  'validation_failed',
  'unauthenticated',
  'forbidden',
  'not_found',
  'request_timeout',
  'idempotency_key_in_use',
  'invalid_transition',
  'precondition_failed',
  'payload_too_large',
  'unsupported_media_type',
  'idempotency_key_reused',
  'unavailable',
  'timeout',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export interface FieldError {
  /** JSON Pointer into the request body, e.g. `/items/0/quantity`; `` for the body itself. */
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly errors: FieldError[] | undefined;
  /** How many field errors there were, when `errors` lists only the first of them. */
  readonly errorCount: number | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: ErrorCode,
    detail: string,
    options: { errors?: FieldError[]; errorCount?: number; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.errors = options.errors;
    this.errorCount = options.errorCount;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/** SQLSTATEs that mean the server or the session is going away: the connection is useless. */
const BROKEN_CONNECTION_SQLSTATES = new Set([
  '57P01', // admin_shutdown
  '57P02', // crash_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '53400', // configuration_limit_exceeded
  '08000', // connection_exception
  '08001', // sqlclient_unable_to_establish_sqlconnection
  '08003', // connection_does_not_exist
  '08004', // sqlserver_rejected_establishment_of_sqlconnection
  '08006', // connection_failure
  '08P01', // protocol_violation (seen when a server dies mid-message)
]);

/** lock_not_available: a lock_timeout ran out waiting for a lock (a row, an index entry, a table). */
export const LOCK_NOT_AVAILABLE = '55P03';

/** A transaction that lost a race on a healthy connection: run it again. */
const LOST_RACE_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  LOCK_NOT_AVAILABLE,
]);

const BROKEN_CONNECTION_NETWORK_CODES = new Set([
  'DB_UNAVAILABLE', // DatabaseUnavailableError: no connection could be had
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

const BROKEN_CONNECTION_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Client was closed',
  'connection timeout',
];

/** True when the connection (or the server behind it) is gone: discard the client, answer 503. */
export function isBrokenConnection(error: unknown): boolean {
  return matches(error, (code, message) =>
    code === undefined
      ? BROKEN_CONNECTION_MESSAGES.some((m) => message.includes(m))
      : BROKEN_CONNECTION_SQLSTATES.has(code) ||
        BROKEN_CONNECTION_NETWORK_CODES.has(code) ||
        BROKEN_CONNECTION_MESSAGES.some((m) => message.includes(m)),
  );
}

/** True when a failure is transient (database down, network, lost race): retry with backoff. */
export function isRetryable(error: unknown): boolean {
  return (
    isBrokenConnection(error) || matches(error, (code) => code !== undefined && LOST_RACE_SQLSTATES.has(code))
  );
}

/** Tests the error, then what it wraps (`cause`, an AggregateError's errors). */
function matches(error: unknown, test: (code: string | undefined, message: string) => boolean): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (test(typeof code === 'string' ? code : undefined, error.message)) return true;
  if (error instanceof AggregateError && error.errors.some((e) => matches(e, test))) return true;
  return error.cause !== undefined && matches(error.cause, test);
}

/** Bad usage the operator must fix (a flag or variable): a command exits with code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
