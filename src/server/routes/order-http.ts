/**
 * What the /orders routes share: the ownership decision, the OpenAPI security requirement, the
 * conditional-request headers (RFC 9110 §13: ETag, If-Match, If-None-Match) and the problem
 * responses these operations add.
 */
import type { FastifyRequest } from 'fastify';
import { authorize, OPERATION_SCOPES, type Operation } from '../../auth/policy.js';
import type { Visibility } from '../../orders/service.js';
import type { IfMatch } from '../../orders/transitions.js';
import { AppError } from '../../platform/errors.js';
import { problemResponses } from '../problem.js';

/** The ownership decision for a request (scopes were checked by the authentication hook). */
export function decide(
  request: FastifyRequest,
  operation: Operation,
  requestedCustomerId?: string,
): Visibility {
  const decision = authorize(request.principal, operation, requestedCustomerId);
  if (decision.allowed) return decision;
  if (decision.reason === 'other_customer') {
    throw new AppError(
      'forbidden',
      "A customer's token acts only for that customer: leave customerId out or use your own.",
    );
  }
  throw new AppError('forbidden', `This operation needs the scope ${decision.scope}.`);
}

/**
 * The document always describes the secured API (AUTH_MODE=none is for development, or behind a
 * gateway that authenticates): the scopes that allow each operation, any one of them.
 */
export function secured(operation: Operation) {
  return { security: OPERATION_SCOPES[operation].map((scope) => ({ bearerAuth: [scope] })) };
}

/** Problem responses, with the descriptions these operations need where the shared ones do not fit. */
export function orderProblems(descriptions: Record<number, string>, ...statuses: number[]) {
  const responses = problemResponses(...statuses);
  for (const [status, description] of Object.entries(descriptions)) {
    const response = responses[status];
    if (response) responses[status] = { ...response, description };
  }
  return responses;
}

export const PRECONDITION_FAILED_DESCRIPTION =
  "precondition_failed: If-Match does not name the order's current version (checked before the transition)";
export const INVALID_TRANSITION_DESCRIPTION =
  'invalid_transition: the command does not apply to the order (cancel of a shipped order, ship of one that is not confirmed)';

interface EntityTag {
  weak: boolean;
  opaque: string;
}

/** `"*"`, or the entity tags of a comma-separated list (`"1", W/"2"`); undefined when malformed. */
function parseEntityTags(value: string): '*' | EntityTag[] | undefined {
  const trimmed = value.trim();
  if (trimmed === '*') return '*';
  const tags: EntityTag[] = [];
  // etagc is %x21 / %x23-7E / obs-text: anything but DQUOTE, controls and space (a comma may be inside).
  const tag = /[ \t]*(W\/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(,|$)/y;
  let at = 0;
  while (at < value.length) {
    tag.lastIndex = at;
    const match = tag.exec(value);
    if (!match) return undefined;
    tags.push({ weak: match[1] !== undefined, opaque: match[2] ?? '' });
    at = tag.lastIndex;
    if (match[3] === '') break;
  }
  return tags.length > 0 && at === value.length ? tags : undefined;
}

/** A repeated header is joined as a list, as RFC 9110 §5.3 allows for list-based fields. */
function single(header: string | string[] | undefined): string | undefined {
  return Array.isArray(header) ? header.join(', ') : header;
}

/**
 * If-Match (RFC 9110 §13.1.1): `*` or a list of entity tags, compared strongly with the order's
 * ETag `"<version>"` (a weak tag never matches). Absent: undefined. Malformed: 400.
 */
export function parseIfMatch(header: string | string[] | undefined): IfMatch | undefined {
  const value = single(header);
  if (value === undefined) return undefined;
  const tags = parseEntityTags(value);
  if (tags === undefined) {
    throw new AppError('validation_failed', 'If-Match must be "*" or entity tags such as "3".', {
      errors: [{ path: '', message: 'header If-Match: must be "*" or a list of entity tags ("<version>")' }],
    });
  }
  if (tags === '*') return '*';
  const versions = tags
    .filter((t) => !t.weak && /^[1-9]\d{0,9}$/.test(t.opaque))
    .map((t) => Number(t.opaque));
  return { versions };
}

/**
 * If-None-Match (RFC 9110 §13.1.2) against the current ETag, with the weak comparison: true when
 * the caller's copy is current (answer 304). A malformed header is ignored (a full answer).
 */
export function noneMatchHits(header: string | string[] | undefined, etag: string): boolean {
  const value = single(header);
  if (value === undefined) return false;
  const tags = parseEntityTags(value);
  if (tags === undefined) return false;
  if (tags === '*') return true;
  const opaque = etag.slice(1, -1);
  return tags.some((t) => t.opaque === opaque);
}
