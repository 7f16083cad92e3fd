/**
 * Bearer access tokens (RFC 6750, RFC 9068 profile): from the Authorization header to a Caller.
 *
 * Verified: the signature against the identity provider's keys, found by `kid`, with an
 * asymmetric algorithm only (so a public key can never serve as an HMAC secret, and `none` is
 * never accepted); `iss`, `aud`, `exp` and `sub` present and right, `nbf` and `iat` honoured with
 * the clock tolerance; a `typ` other than `at+jwt`/`JWT` refused. Keys a token offers itself
 * (`jwk`, `jku`, `x5u`) are never used: keys come from the key store alone.
 *
 * A verified token is remembered until it expires (bounded, oldest first out), so a client that
 * sends the same token on every request pays for one signature check, not thousands. The cost:
 * a key removed from the JWKS keeps verifying the tokens already seen with it until they expire
 * (access tokens live minutes; revoke by rotating and waiting out their lifetime).
 */
import { type JWSAlgorithm, type JWTPayload, errors as joseErrors, jwtVerify } from 'jose';
import { type KeyResolver, KeysUnavailableError } from './key-store.js';

/** The asymmetric algorithms we accept. HS* and `none` are refused by omission. */
export const ACCEPTED_ALGORITHMS: readonly JWSAlgorithm[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const ACCEPTED_TYP = new Set(['at+jwt', 'application/at+jwt', 'jwt']);

export interface Caller {
  /** The token's `sub`: the customer a non-admin caller acts as. */
  subject: string;
  scopes: ReadonlySet<string>;
}

/** Why authentication failed, as the auth-failure counter labels it. */
export type AuthFailureReason = 'missing' | 'invalid' | 'expired' | 'insufficient_scope' | 'jwks_unavailable';

export class AuthenticationError extends Error {
  override name = 'AuthenticationError';
  constructor(
    readonly reason: Exclude<AuthFailureReason, 'insufficient_scope'>,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface VerifierOptions {
  issuer: string;
  audience: string;
  clockToleranceS: number;
  keys: KeyResolver;
  /** Verified tokens remembered at most (each entry holds the token string). */
  cacheSize?: number;
  now?: () => number;
}

export interface TokenVerifier {
  /**
   * The caller behind an `Authorization` header value. Rejects with AuthenticationError. Returns
   * a Caller synchronously-resolved from the cache when the token was verified before.
   */
  authenticate(authorization: string | undefined): Caller | Promise<Caller>;
}

const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

export function createTokenVerifier(options: VerifierOptions): TokenVerifier {
  const cacheSize = options.cacheSize ?? 10_000;
  const now = options.now ?? Date.now;
  const toleranceMs = options.clockToleranceS * 1000;
  /**
   * Verified tokens by the tail of the Authorization header that carried them (part of the
   * signature: short to hash, and as good as unique); an entry counts only for the very same header.
   */
  const cache = new Map<string, { authorization: string; caller: Caller; expiresAtMs: number }>();

  async function verify(token: string, authorization: string): Promise<Caller> {
    let payload: JWTPayload;
    try {
      const result = await jwtVerify(token, options.keys, {
        issuer: options.issuer,
        audience: options.audience,
        algorithms: [...ACCEPTED_ALGORITHMS],
        clockTolerance: options.clockToleranceS,
        requiredClaims: ['iss', 'aud', 'exp', 'sub'],
        currentDate: new Date(now()),
      });
      const typ = result.protectedHeader.typ;
      if (typ !== undefined && !ACCEPTED_TYP.has(typ.toLowerCase())) {
        throw new AuthenticationError('invalid', `tokens of type "${typ}" are not access tokens`);
      }
      payload = result.payload;
    } catch (error) {
      throw classify(error);
    }
    if (typeof payload.iat === 'number' && payload.iat * 1000 > now() + toleranceMs) {
      throw new AuthenticationError('invalid', 'the token was issued in the future');
    }
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) {
      throw new AuthenticationError('invalid', 'the token has no subject');
    }
    const caller: Caller = { subject: payload.sub, scopes: scopesOf(payload) };
    remember(authorization, caller, (payload.exp as number) * 1000 + toleranceMs);
    return caller;
  }

  function remember(authorization: string, caller: Caller, expiresAtMs: number) {
    if (cache.size >= cacheSize) {
      // Map keeps insertion order: drop the oldest entry.
      const oldest = cache.keys().next();
      if (!oldest.done) cache.delete(oldest.value);
    }
    cache.set(cacheKey(authorization), { authorization, caller, expiresAtMs });
  }

  return {
    authenticate(authorization) {
      if (authorization === undefined || authorization === '') {
        return Promise.reject(new AuthenticationError('missing', 'This request needs a bearer token.'));
      }
      // A header seen before skips the parse as well as the signature check.
      const key = cacheKey(authorization);
      const cached = cache.get(key);
      if (cached?.authorization === authorization) {
        if (now() < cached.expiresAtMs) return cached.caller;
        cache.delete(key);
      }
      const match = BEARER.exec(authorization);
      if (!match) {
        return Promise.reject(
          new AuthenticationError('missing', 'Send the access token as `Authorization: Bearer <token>`.'),
        );
      }
      return verify(match[1]!, authorization);
    },
  };
}

/**
 * A header's cache key: its last 32 characters, from the token's signature. Hashing the whole
 * header (hundreds of characters, a new string per request) is the larger part of a cache hit.
 */
function cacheKey(authorization: string): string {
  return authorization.length <= 32 ? authorization : authorization.slice(-32);
}

/** `scope` (space-separated, RFC 9068) or `scp` (an array, as some providers send it). */
function scopesOf(payload: JWTPayload): ReadonlySet<string> {
  const scopes = new Set<string>();
  if (typeof payload.scope === 'string') for (const s of payload.scope.split(' ')) if (s) scopes.add(s);
  if (Array.isArray(payload.scp)) for (const s of payload.scp) if (typeof s === 'string' && s) scopes.add(s);
  return scopes;
}

function classify(error: unknown): AuthenticationError {
  if (error instanceof AuthenticationError) return error;
  if (error instanceof KeysUnavailableError) {
    return new AuthenticationError('jwks_unavailable', error.message, { cause: error });
  }
  if (error instanceof joseErrors.JWTExpired) {
    return new AuthenticationError('expired', 'The token has expired.', { cause: error });
  }
  if (error instanceof joseErrors.JWTClaimValidationFailed) {
    return new AuthenticationError('invalid', `The token's "${error.claim}" claim is not acceptable.`, {
      cause: error,
    });
  }
  if (error instanceof joseErrors.JWKSNoMatchingKey) {
    return new AuthenticationError('invalid', 'The token is signed with a key we do not know.', {
      cause: error,
    });
  }
  if (error instanceof joseErrors.JOSEAlgNotAllowed) {
    return new AuthenticationError('invalid', 'The token is signed with an algorithm we do not accept.', {
      cause: error,
    });
  }
  return new AuthenticationError('invalid', 'The token could not be verified.', { cause: error });
}
