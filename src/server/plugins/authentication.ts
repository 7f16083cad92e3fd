/**
 * Authentication for the /orders routes: each route's onRequest hook (`auth.hook(operation)`)
 * verifies the bearer token and checks that its scopes allow the operation before the body is
 * even read, then leaves the caller on `request.principal` for the route's ownership decision
 * (auth/policy.ts). With AUTH_MODE=none there is no hook and no caller.
 *
 * Refusals follow RFC 6750: 401 with `WWW-Authenticate: Bearer realm="orders"` (plus
 * `error="invalid_token"` when a token was sent), 403 with `error="insufficient_scope"` and the
 * scope to ask for. Keys that cannot be fetched are our outage: 503 with Retry-After, never 401.
 * The hook is callback-style: a cached token costs no promise.
 */
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import { OPERATION_SCOPES, type Operation } from '../../auth/policy.js';
import { AuthenticationError, type Caller, type TokenVerifier } from '../../auth/verifier.js';
import { AppError } from '../../platform/errors.js';
import type { Metrics } from '../../platform/metrics.js';

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The authenticated caller; undefined with AUTH_MODE=none. (Not `caller`: fastify builds
     * requests with a function, whose strict-mode `caller` property may not be touched.)
     */
    principal: Caller | undefined;
  }
}

/** `request.principal`, declared once so every request object has the same shape. */
export const callerDecoration = fp(
  async (app) => {
    app.decorateRequest('principal', undefined);
  },
  { name: 'principal' },
);

const REALM = 'Bearer realm="orders"';
/** How long a caller should wait while the identity provider's keys cannot be fetched. */
const KEYS_RETRY_AFTER_S = 5;

export interface Authentication {
  /** The onRequest hooks a route needs for `operation` (none without authentication). */
  hooks(operation: Operation): onRequestHookHandler[];
  readonly enabled: boolean;
}

export function createAuthentication(deps: {
  verifier: TokenVerifier | undefined;
  metrics: Metrics;
}): Authentication {
  const { verifier, metrics } = deps;
  if (!verifier) return { enabled: false, hooks: () => [] };

  function admit(
    request: FastifyRequest,
    reply: FastifyReply,
    caller: Caller,
    operation: Operation,
    done: (error?: Error) => void,
  ) {
    const allowedBy = OPERATION_SCOPES[operation];
    if (!allowedBy.some((scope) => caller.scopes.has(scope))) {
      metrics.authFailures.inc({ reason: 'insufficient_scope' });
      reply.header('www-authenticate', `${REALM}, error="insufficient_scope", scope="${allowedBy[0]}"`);
      done(new AppError('forbidden', `This operation needs the scope ${allowedBy.join(' or ')}.`));
      return;
    }
    request.principal = caller;
    done();
  }

  function refuse(reply: FastifyReply, error: unknown, done: (error?: Error) => void) {
    if (!(error instanceof AuthenticationError)) {
      done(error instanceof Error ? error : new Error(String(error)));
      return;
    }
    metrics.authFailures.inc({ reason: error.reason });
    if (error.reason === 'jwks_unavailable') {
      done(
        new AppError(
          'unavailable',
          'The signing keys cannot be fetched from the identity provider. Retry shortly.',
          {
            retryAfterSeconds: KEYS_RETRY_AFTER_S,
            cause: error,
          },
        ),
      );
      return;
    }
    reply.header('www-authenticate', error.reason === 'missing' ? REALM : `${REALM}, error="invalid_token"`);
    done(new AppError('unauthenticated', error.message));
  }

  const hooksByOperation = new Map<Operation, onRequestHookHandler[]>();
  for (const operation of Object.keys(OPERATION_SCOPES) as Operation[]) {
    const hook: onRequestHookHandler = (request, reply, done) => {
      let result: Caller | Promise<Caller>;
      try {
        result = verifier.authenticate(request.headers.authorization);
      } catch (error) {
        refuse(reply, error, done);
        return;
      }
      if (result instanceof Promise) {
        result.then(
          (caller) => admit(request, reply, caller, operation, done),
          (error: unknown) => refuse(reply, error, done),
        );
      } else {
        admit(request, reply, result, operation, done);
      }
    };
    hooksByOperation.set(operation, [hook]);
  }
  return { enabled: true, hooks: (operation) => hooksByOperation.get(operation)! };
}
