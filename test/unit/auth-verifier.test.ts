import { createHmac } from 'node:crypto';
import type { JSONWebKeySet } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { type DevKeyPair, generateDevKeyPair, parseTtl, signDevToken } from '../../src/auth/dev-keys.js';
import { createKeyStore } from '../../src/auth/key-store.js';
import { AuthenticationError, createTokenVerifier } from '../../src/auth/verifier.js';

const ISSUER = 'https://idp.test/';
const AUDIENCE = 'orders';
const now = Math.floor(Date.now() / 1000);

let pair: DevKeyPair;
let other: DevKeyPair;

beforeAll(async () => {
  pair = await generateDevKeyPair('ES256');
  other = await generateDevKeyPair('ES256');
});

function verifierFor(jwks: () => JSONWebKeySet, clock = () => Date.now()) {
  let loads = 0;
  const keys = createKeyStore({
    load: async () => {
      loads++;
      return jwks();
    },
    now: clock,
  });
  const verifier = createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    clockToleranceS: 30,
    keys: keys.resolve,
    now: clock,
  });
  return { verifier, loads: () => loads };
}

const token = (overrides: Partial<Parameters<typeof signDevToken>[0]> = {}) =>
  signDevToken({
    privateJwk: pair.privateJwk,
    subject: 'c-1',
    scope: 'orders:read orders:write',
    issuer: ISSUER,
    audience: AUDIENCE,
    ttlSeconds: 300,
    ...overrides,
  });

async function reasonFor(verifier: ReturnType<typeof verifierFor>['verifier'], header: string | undefined) {
  try {
    await verifier.authenticate(header);
  } catch (error) {
    expect(error).toBeInstanceOf(AuthenticationError);
    return (error as AuthenticationError).reason;
  }
  return 'accepted';
}

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('token verification', () => {
  it('accepts a valid token and reads sub and scopes', async () => {
    const { verifier } = verifierFor(() => pair.jwks);
    const caller = await verifier.authenticate(`Bearer ${await token()}`);
    expect(caller.subject).toBe('c-1');
    expect([...caller.scopes].sort()).toEqual(['orders:read', 'orders:write']);
    // The scheme name is case-insensitive (RFC 7235).
    expect((await verifier.authenticate(`bearer ${await token()}`)).subject).toBe('c-1');
  });

  it('refuses every invalid token the contract names', async () => {
    const { verifier } = verifierFor(() => pair.jwks);
    const cases: [string, string | undefined, string][] = [
      ['no header', undefined, 'missing'],
      ['another scheme', 'Basic dXNlcjpwYXNz', 'missing'],
      [
        'expired beyond the tolerance',
        `Bearer ${await token({ issuedAt: now - 400, ttlSeconds: 60 })}`,
        'expired',
      ],
      ['not yet valid (nbf)', `Bearer ${await token({ notBefore: now + 120 })}`, 'invalid'],
      ['issued in the future', `Bearer ${await token({ issuedAt: now + 120 })}`, 'invalid'],
      ['wrong issuer', `Bearer ${await token({ issuer: 'https://evil.test/' })}`, 'invalid'],
      ['wrong audience', `Bearer ${await token({ audience: 'payments' })}`, 'invalid'],
      ['unknown key', `Bearer ${await token({ privateJwk: other.privateJwk })}`, 'invalid'],
      ['missing sub', `Bearer ${await token({ subject: '' })}`, 'invalid'],
    ];
    const valid = await token();
    const [h, p, s] = valid.split('.');
    const tampered = JSON.parse(Buffer.from(p!, 'base64url').toString());
    tampered.sub = 'c-2';
    cases.push(['tampered payload', `Bearer ${h}.${b64(tampered)}.${s}`, 'invalid']);
    cases.push(['alg none', `Bearer ${b64({ alg: 'none', typ: 'JWT' })}.${p}.`, 'invalid']);
    // HS256 "signed" with the public key as the secret: the classic algorithm-confusion attack.
    const hsHeader = b64({ alg: 'HS256', kid: pair.jwks.keys[0]!.kid });
    const secret = JSON.stringify(pair.jwks.keys[0]);
    const hsSig = createHmac('sha256', secret).update(`${hsHeader}.${p}`).digest('base64url');
    cases.push(['HS256 with the public key as secret', `Bearer ${hsHeader}.${p}.${hsSig}`, 'invalid']);
    cases.push(['garbage', 'Bearer not.a.token', 'invalid']);
    for (const [name, header, reason] of cases) {
      expect({ name, reason: await reasonFor(verifier, header) }).toEqual({ name, reason });
    }
  });

  it('accepts a token expired within the clock tolerance', async () => {
    const { verifier } = verifierFor(() => pair.jwks);
    const almost = await token({ issuedAt: now - 80, ttlSeconds: 60 }); // expired 20 s ago
    expect((await verifier.authenticate(`Bearer ${almost}`)).subject).toBe('c-1');
  });

  it('reads scopes from an scp array too', async () => {
    const { SignJWT, importJWK } = await import('jose');
    const key = await importJWK(pair.privateJwk, 'ES256');
    const jwt = await new SignJWT({ scp: ['orders:fulfil'] })
      .setProtectedHeader({ alg: 'ES256', kid: pair.privateJwk.kid!, typ: 'at+jwt' })
      .setIssuer(ISSUER)
      .setAudience([AUDIENCE, 'other'])
      .setSubject('svc-fulfilment')
      .setExpirationTime('5m')
      .sign(key);
    const { verifier } = verifierFor(() => pair.jwks);
    expect([...(await verifier.authenticate(`Bearer ${jwt}`)).scopes]).toEqual(['orders:fulfil']);
  });

  it('refuses a token whose typ is not an access token', async () => {
    const { SignJWT, importJWK } = await import('jose');
    const key = await importJWK(pair.privateJwk, 'ES256');
    const jwt = await new SignJWT({ scope: 'orders:read' })
      .setProtectedHeader({ alg: 'ES256', kid: pair.privateJwk.kid!, typ: 'id+jwt' })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject('c-1')
      .setExpirationTime('5m')
      .sign(key);
    const { verifier } = verifierFor(() => pair.jwks);
    expect(await reasonFor(verifier, `Bearer ${jwt}`)).toBe('invalid');
  });

  it('verifies a token once and answers repeats from the cache until it expires', async () => {
    let t = Date.now();
    const { verifier } = verifierFor(
      () => pair.jwks,
      () => t,
    );
    const jwt = await token({ ttlSeconds: 60, issuedAt: Math.floor(t / 1000) });
    const first = verifier.authenticate(`Bearer ${jwt}`);
    expect(first).toBeInstanceOf(Promise);
    await first;
    const again = verifier.authenticate(`Bearer ${jwt}`);
    expect(again).not.toBeInstanceOf(Promise);
    t += 100_000; // past exp + tolerance
    expect(await reasonFor(verifier, `Bearer ${jwt}`)).toBe('expired');
  });

  it('answers from the cache only for the very same header, never for one that shares its signature', async () => {
    const { verifier } = verifierFor(() => pair.jwks);
    const jwt = await token({ subject: 'c-1' });
    await verifier.authenticate(`Bearer ${jwt}`);
    // Another payload under the same signature: the same cache key, but a different header.
    const [header, , signature] = jwt.split('.');
    const forged = `${header}.${b64({ iss: ISSUER, aud: AUDIENCE, sub: 'c-2', exp: now + 300 })}.${signature}`;
    expect(forged.slice(-32)).toBe(jwt.slice(-32));
    expect(await reasonFor(verifier, `Bearer ${forged}`)).toBe('invalid');
    // The genuine token still answers, also spelt another way (verified once more, then cached).
    const lower = verifier.authenticate(`bearer ${jwt}`);
    expect(lower).toBeInstanceOf(Promise);
    expect((await lower).subject).toBe('c-1');
    expect(verifier.authenticate(`bearer ${jwt}`)).not.toBeInstanceOf(Promise);
    // The two spellings share a key: the latest one is remembered, the other is verified again.
    expect((await verifier.authenticate(`Bearer ${jwt}`)).subject).toBe('c-1');
  });
});

describe('signing keys', () => {
  it('picks up a rotated key (new kid) on a later request, at most once per 30 s', async () => {
    let t = Date.now();
    let served: JSONWebKeySet = pair.jwks;
    const { verifier, loads } = verifierFor(
      () => served,
      () => t,
    );
    await verifier.authenticate(`Bearer ${await token()}`);
    expect(loads()).toBe(1);
    served = { keys: [...pair.jwks.keys, ...other.jwks.keys] };
    const rotated = `Bearer ${await token({ privateJwk: other.privateJwk })}`;
    // Within the cooldown the new kid is unknown (and no fetch is made).
    expect(await reasonFor(verifier, rotated)).toBe('invalid');
    expect(loads()).toBe(1);
    t += 31_000;
    expect((await verifier.authenticate(rotated)).subject).toBe('c-1');
    expect(loads()).toBe(2);
  });

  it('is unavailable (not invalid) when the keys cannot be fetched', async () => {
    const { verifier } = verifierFor(() => {
      throw new Error('connect ECONNREFUSED');
    });
    expect(await reasonFor(verifier, `Bearer ${await token()}`)).toBe('jwks_unavailable');
  });

  it('keeps verifying with the keys it has while a refresh fails', async () => {
    let t = Date.now();
    let down = false;
    const { verifier } = verifierFor(
      () => {
        if (down) throw new Error('503 from the identity provider');
        return pair.jwks;
      },
      () => t,
    );
    await verifier.authenticate(`Bearer ${await token()}`);
    down = true;
    t += 11 * 60_000; // keys are stale: a refresh is attempted and fails
    const fresh = await token({ issuedAt: Math.floor(t / 1000) });
    expect((await verifier.authenticate(`Bearer ${fresh}`)).subject).toBe('c-1');
    // An unknown kid while the provider is down is our outage, not the caller's fault.
    const rotated = await token({ privateJwk: other.privateJwk, issuedAt: Math.floor(t / 1000) });
    expect(await reasonFor(verifier, `Bearer ${rotated}`)).toBe('jwks_unavailable');
  });
});

describe('parseTtl', () => {
  it('reads seconds and s/m/h/d suffixes', () => {
    expect(parseTtl('90')).toBe(90);
    expect(parseTtl('30m')).toBe(1800);
    expect(parseTtl('1h')).toBe(3600);
    expect(parseTtl('2d')).toBe(172_800);
    for (const bad of ['', '0', '-1', '1w', '1.5h', 'h']) expect(parseTtl(bad)).toBeUndefined();
  });
});
