/**
 * What a failed attempt means: retry later (transient) or dead-letter now (permanent).
 *
 * The database and network cases come from the shared table in platform/errors (`isRetryable`). On
 * top of it, handlers say what they know explicitly: a TransientError (a notification provider
 * that is down, a NATS publish that timed out) is retried, a PermanentError (an unknown event
 * type, a payload that can never be handled) is dead-lettered at once. Anything else, such as a
 * TypeError in a handler, is a bug: retrying cannot fix it, so it is permanent too.
 */
import { isRetryable } from './errors.js';
import { redactText } from './redact.js';

/** A failure worth retrying with backoff. */
export class TransientError extends Error {
  override name = 'TransientError';
  readonly retryable = true;
}

/** A failure no retry can fix: the event is dead-lettered at once. */
export class PermanentError extends Error {
  override name = 'PermanentError';
  readonly retryable = false;
}

/** True when a handler's failure should be retried with backoff; false to dead-letter now. */
export function isRetryableFailure(error: unknown): boolean {
  if (error instanceof PermanentError) return false;
  if (error instanceof TransientError) return true;
  if (isRetryable(error)) return true;
  // A cause chain may carry the explicit verdict (e.g. an Error wrapping a TransientError).
  if (error instanceof Error && error.cause !== undefined) return isRetryableFailure(error.cause);
  return false;
}

/** One line for `last_error`: the error's name and message, bounded, without the stack. */
export function describeFailure(error: unknown, maxLength = 1000): string {
  const text =
    error instanceof Error
      ? `${error.name}: ${error.message}${(error as { code?: unknown }).code ? ` (${String((error as { code?: unknown }).code)})` : ''}`
      : String(error);
  const line = redactText(text).replace(/\s+/g, ' ').trim();
  return line.length > maxLength ? `${line.slice(0, maxLength - 1)}…` : line;
}
