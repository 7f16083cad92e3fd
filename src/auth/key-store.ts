/**
 * The identity provider's signing keys (a JWKS), fetched over HTTP(S) or read from a file, and
 * kept in memory.
 *
 * Why not jose's createRemoteJWKSet alone: once its cache ages out it refetches on every request
 * while the provider is down (no cooldown after a failure, and no stale keys meanwhile), so an IdP
 * outage becomes a request storm against it and 503s for callers whose tokens we could still
 * verify. Here:
 * - keys are refreshed at most once per `cooldownMs` (30 s) whatever triggers it: an unknown
 *   `kid`, keys older than `maxAgeMs`, or a failed fetch;
 * - a refresh that fails keeps the keys we have (rotation overlaps keys, so yesterday's set still
 *   verifies today's tokens) and only callers whose `kid` we do not know see 503;
 * - concurrent requests share one fetch.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  type CryptoKey,
  createLocalJWKSet,
  type FlattenedJWSInput,
  type JSONWebKeySet,
  type JWSHeaderParameters,
  errors as joseErrors,
} from 'jose';

/** The keys cannot be had at all (never fetched, or the source failed): our outage, not the caller's. */
export class KeysUnavailableError extends Error {
  override name = 'KeysUnavailableError';
}

export interface KeyStoreOptions {
  /** Where the keys come from: see jwksSource(). */
  load: () => Promise<JSONWebKeySet>;
  cooldownMs?: number;
  maxAgeMs?: number;
  /** Told about each failed refresh (the store itself keeps going with what it has). */
  onRefreshFailed?: (error: unknown) => void;
  /** Injected clock for tests. */
  now?: () => number;
}

export type KeyResolver = (
  header: JWSHeaderParameters,
  token: FlattenedJWSInput,
) => Promise<CryptoKey | Uint8Array>;

export interface KeyStore {
  /** jose's `getKey` function for jwtVerify. */
  resolve: KeyResolver;
  /** Loads the keys now (at start-up, so the first request does not pay for it); never throws. */
  warmUp(): Promise<boolean>;
}

export function createKeyStore(options: KeyStoreOptions): KeyStore {
  const cooldownMs = options.cooldownMs ?? 30_000;
  const maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
  const now = options.now ?? Date.now;
  let local: ReturnType<typeof createLocalJWKSet> | undefined;
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let attemptedAt = Number.NEGATIVE_INFINITY;
  let lastError: unknown;
  let pending: Promise<void> | undefined;

  function refresh(): Promise<void> {
    pending ??= (async () => {
      attemptedAt = now();
      try {
        local = createLocalJWKSet(await options.load());
        fetchedAt = now();
        lastError = undefined;
      } catch (error) {
        lastError = error;
        options.onRefreshFailed?.(error);
      } finally {
        pending = undefined;
      }
    })();
    return pending;
  }

  const mayRefresh = () => now() - attemptedAt >= cooldownMs;

  async function resolve(header: JWSHeaderParameters, token: FlattenedJWSInput) {
    if (pending) await pending;
    if ((!local || now() - fetchedAt >= maxAgeMs) && mayRefresh()) await refresh();
    if (!local) throw unavailable(lastError);
    try {
      return await local(header, token);
    } catch (error) {
      if (!(error instanceof joseErrors.JWKSNoMatchingKey)) throw error;
      // A key we have not seen: the provider may have rotated. Look again, at most once per cooldown.
      if (mayRefresh()) await refresh();
      try {
        return await local(header, token);
      } catch (again) {
        // While the provider cannot be reached we cannot tell a new key from a forged one.
        if (again instanceof joseErrors.JWKSNoMatchingKey && lastError !== undefined)
          throw unavailable(lastError);
        throw again;
      }
    }
  }

  return {
    resolve,
    async warmUp() {
      await refresh();
      return local !== undefined;
    },
  };
}

function unavailable(cause: unknown): KeysUnavailableError {
  const reason = cause instanceof Error ? cause.message : 'not loaded yet';
  return new KeysUnavailableError(`the signing keys (JWKS) cannot be loaded: ${reason}`, { cause });
}

/**
 * Loads a JWKS from `file:` (read on every refresh, so replacing the file rotates keys),
 * `http(s):`, or, with no URL, from the issuer's OpenID discovery document (looked up until it
 * succeeds once).
 */
export function jwksSource(options: { url?: URL | undefined; issuer: string; timeoutMs?: number }) {
  const timeoutMs = options.timeoutMs ?? 5_000;
  let url = options.url;
  return async (): Promise<JSONWebKeySet> => {
    url ??= await discoverJwksUrl(options.issuer, timeoutMs);
    return loadJwks(url, timeoutMs);
  };
}

async function loadJwks(url: URL, timeoutMs: number): Promise<JSONWebKeySet> {
  let body: unknown;
  if (url.protocol === 'file:') {
    body = JSON.parse(await readFile(fileURLToPath(url), 'utf8'));
  } else {
    const response = await fetch(url, {
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
      headers: { accept: 'application/jwk-set+json, application/json' },
    });
    if (response.status !== 200) throw new Error(`${url.origin}${url.pathname} answered ${response.status}`);
    body = await response.json();
  }
  if (!isJwks(body)) throw new Error('the JWKS document has no "keys" array');
  return body;
}

function isJwks(value: unknown): value is JSONWebKeySet {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as { keys?: unknown }).keys) &&
    (value as { keys: unknown[] }).keys.every((k) => typeof k === 'object' && k !== null)
  );
}

/**
 * The issuer's OpenID discovery document names its `jwks_uri`. Checked: the document's
 * `issuer` is ours (OpenID Connect Discovery 1.0 §4.3), and the keys come over HTTPS unless
 * the issuer itself is plain HTTP (development).
 */
export async function discoverJwksUrl(issuer: string, timeoutMs = 5_000): Promise<URL> {
  const base = issuer.endsWith('/') ? issuer : `${issuer}/`;
  const where = new URL('.well-known/openid-configuration', base);
  const response = await fetch(where, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  if (response.status !== 200) throw new Error(`${where.href} answered ${response.status}`);
  const document = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
  if (document.issuer !== issuer) {
    throw new Error(`${where.href} names issuer ${JSON.stringify(document.issuer)}, not ${issuer}`);
  }
  if (typeof document.jwks_uri !== 'string') throw new Error(`${where.href} has no jwks_uri`);
  const jwks = new URL(document.jwks_uri);
  if (jwks.protocol !== 'https:' && !(jwks.protocol === 'http:' && where.protocol === 'http:')) {
    throw new Error(`${where.href} names a jwks_uri that is not https: ${jwks.href}`);
  }
  return jwks;
}
