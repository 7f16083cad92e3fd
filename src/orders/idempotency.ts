/**
 * Idempotency-Key helpers (draft-ietf-httpapi-idempotency-key-header): header parsing, the
 * request fingerprint and the stored response. The storage side lives with the order write, in
 * the same statement (repository.ts).
 */
import { createHash } from 'node:crypto';
import { AppError } from '../platform/errors.js';

/** The first response to a key: what a repeated request with that key gets back. */
export interface StoredResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

const KEY_CHARS = /^[\x21-\x7e]{1,255}$/;

/**
 * Accepts the draft's structured-field string (`"abc"`, with `\"` and `\\` escapes) and the bare
 * token form Stripe takes (`abc`); both name the key `abc`. Returns undefined when absent.
 */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header)) {
    throw invalidKey('send exactly one Idempotency-Key header');
  }
  const raw = header.trim();
  let key = raw;
  if (raw.startsWith('"')) {
    const match = /^"((?:[^"\\]|\\["\\])*)"$/.exec(raw);
    if (!match) throw invalidKey('a quoted Idempotency-Key must be a valid structured-field string');
    key = match[1]!.replace(/\\(["\\])/g, '$1');
  }
  if (!KEY_CHARS.test(key)) {
    throw invalidKey('Idempotency-Key must be 1–255 visible ASCII characters (0x21–0x7E)');
  }
  return key;
}

function invalidKey(message: string): AppError {
  return new AppError('validation_failed', message, {
    errors: [{ path: '', message: `header Idempotency-Key: ${message}` }],
  });
}

/** JSON with object keys sorted at every level: key order and whitespace stop mattering. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value as Record<string, unknown>)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}

/** What makes two requests "the same request": method, path and the canonical body. */
export function requestFingerprint(method: string, path: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method.toUpperCase()} ${path}\n${canonicalJson(body)}`)
    .digest('base64url');
}
