/**
 * RFC 9457 problem details: how an AppError's code reads over HTTP. Both HTTP servers answer
 * with it (the API, and the worker's probe server, which may not import the API), so the table
 * lives here rather than in either; the domain only raises codes.
 */
import type { AppError, ErrorCode, FieldError } from './errors.js';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json; charset=utf-8';
export const JSON_CONTENT_TYPE = 'application/json; charset=utf-8';

export const HTTP_PROBLEMS: Readonly<Record<ErrorCode, { status: number; title: string }>> = {
  validation_failed: { status: 400, title: 'Request validation failed' },
  unauthenticated: { status: 401, title: 'Authentication required' },
  forbidden: { status: 403, title: 'Forbidden' },
  not_found: { status: 404, title: 'Not found' },
  request_timeout: { status: 408, title: 'Request timeout' },
  idempotency_key_in_use: { status: 409, title: 'Idempotency key in use' },
  invalid_transition: { status: 409, title: 'Invalid transition' },
  precondition_failed: { status: 412, title: 'Precondition failed' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  idempotency_key_reused: { status: 422, title: 'Idempotency key reused' },
  unavailable: { status: 503, title: 'Service unavailable' },
  timeout: { status: 504, title: 'Request timed out' },
  internal: { status: 500, title: 'Internal server error' },
};

export function httpStatus(code: ErrorCode): number {
  return HTTP_PROBLEMS[code].status;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ErrorCode;
  instance: string;
  errors?: FieldError[];
  errorCount?: number;
}

export function problemType(code: ErrorCode): string {
  return `/problems/${code}`;
}

export function problemBody(error: AppError, instance: string): Problem {
  const { status, title } = HTTP_PROBLEMS[error.code];
  const body: Problem = {
    type: problemType(error.code),
    title,
    status,
    detail: error.message,
    code: error.code,
    instance,
  };
  if (error.errors) body.errors = error.errors;
  if (error.errorCount !== undefined) body.errorCount = error.errorCount;
  return body;
}
