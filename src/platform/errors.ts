/**
 * The error taxonomy. Every failure the API reports is an AppError with a stable code; the
 * server's one error handler turns it into RFC 9457 problem+json and hides the cause of 5xx.
 */
export const ERROR_CODES = {
  validation_failed: { status: 400, title: 'Request validation failed' },
  not_found: { status: 404, title: 'Not found' },
  idempotency_key_in_use: { status: 409, title: 'Idempotency key in use' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  idempotency_key_reused: { status: 422, title: 'Idempotency key reused' },
  unavailable: { status: 503, title: 'Service unavailable' },
  timeout: { status: 504, title: 'Request timed out' },
  internal: { status: 500, title: 'Internal server error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface FieldError {
  /** JSON Pointer into the request body, e.g. `/items/0/quantity`; `` for the body itself. */
  path: string;
  message: string;
}

export class AppError extends Error {
  readonly status: number;
  readonly errors: FieldError[] | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: ErrorCode,
    detail: string,
    options: { errors?: FieldError[]; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.status = ERROR_CODES[code].status;
    this.errors = options.errors;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

/**
 * SQLSTATEs that mean "try again later": the database is going away, restarting, overloaded, or
 * the transaction lost a race it can simply re-run. Everything else from PostgreSQL is a bug.
 */
const RETRYABLE_SQLSTATES = new Set([
  '40001', // serialization_failure
  '40P01', // deadlock_detected
  '55P03', // lock_not_available
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

const RETRYABLE_NETWORK_CODES = new Set([
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

const RETRYABLE_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Client was closed',
  'connection timeout',
];

/** True when a failure is transient (database down, network, lost race): retry with backoff. */
export function isRetryable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (RETRYABLE_SQLSTATES.has(code) || RETRYABLE_NETWORK_CODES.has(code))) {
    return true;
  }
  if (RETRYABLE_MESSAGES.some((m) => error.message.includes(m))) return true;
  if (error instanceof AggregateError) return error.errors.some(isRetryable);
  return error.cause !== undefined && isRetryable(error.cause);
}

/** A database failure that means the database is not there (as opposed to a bad query). */
export function isUnavailable(error: unknown): boolean {
  return isRetryable(error);
}

/** Bad usage the operator must fix (a flag or variable): a command exits with code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
