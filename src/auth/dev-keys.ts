/**
 * Development keys and tokens (`orders auth keygen`, `orders auth token`), so the secured API can
 * be tried in a minute and tested without an identity provider. Production tokens come from the
 * identity provider; nothing here is used by `serve`.
 */
import { randomUUID } from 'node:crypto';
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  SignJWT,
} from 'jose';

export const KEY_ALGORITHMS = ['ES256', 'RS256', 'EdDSA'] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

export interface DevKeyPair {
  /** The public half, as the JWKS `serve` reads (AUTH_JWKS_URL=file://…/jwks.json). */
  jwks: JSONWebKeySet;
  /** The private half, with its `kid` and `alg`, as `orders auth token --key` reads it. */
  privateJwk: JWK;
}

export async function generateDevKeyPair(alg: KeyAlgorithm): Promise<DevKeyPair> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    jwks: { keys: [{ ...publicJwk, kid, alg, use: 'sig' }] },
    privateJwk: { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' },
  };
}

export interface TokenRequest {
  privateJwk: JWK;
  subject: string;
  /** Space-separated scopes, e.g. "orders:read orders:write". */
  scope: string;
  issuer: string;
  audience: string;
  ttlSeconds: number;
  /** Seconds since the epoch; now by default. */
  issuedAt?: number;
  /** Seconds since the epoch: `nbf`, when the token starts to be valid (none by default). */
  notBefore?: number;
}

/** A signed RFC 9068 access token (`typ: at+jwt`). */
export async function signDevToken(request: TokenRequest): Promise<string> {
  const { privateJwk } = request;
  if (typeof privateJwk.alg !== 'string' || typeof privateJwk.kid !== 'string') {
    throw new Error('the key has no "alg" or "kid": use a private.jwk written by `orders auth keygen`');
  }
  const key = await importJWK(privateJwk, privateJwk.alg);
  const iat = request.issuedAt ?? Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ scope: request.scope, client_id: 'orders-dev' });
  if (request.notBefore !== undefined) jwt.setNotBefore(request.notBefore);
  return jwt
    .setProtectedHeader({ alg: privateJwk.alg, kid: privateJwk.kid, typ: 'at+jwt' })
    .setIssuer(request.issuer)
    .setAudience(request.audience)
    .setSubject(request.subject)
    .setIssuedAt(iat)
    .setExpirationTime(iat + request.ttlSeconds)
    .setJti(randomUUID())
    .sign(key);
}

const TTL = /^(\d+)(s|m|h|d)?$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `--ttl`: seconds, or a number with s, m, h or d. Undefined when malformed or zero. */
export function parseTtl(value: string): number | undefined {
  const match = TTL.exec(value.trim());
  if (!match) return undefined;
  const seconds = Number(match[1]) * UNIT_SECONDS[(match[2] ?? 's') as keyof typeof UNIT_SECONDS];
  return seconds > 0 && Number.isSafeInteger(seconds) ? seconds : undefined;
}
