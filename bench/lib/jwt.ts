/**
 * `--jwt`: ours once more as target "jwt", with AUTH_MODE=jwt and a valid bearer token on every
 * request. The bench makes an ES256 key pair (the default of `orders auth keygen`), serves its
 * JWKS as a file, and signs TOKENS tokens (orders:admin, so that any seeded order may be read and
 * any customer's order created); the load generators send them in turn. Each distinct token is
 * verified once and then found in the verifier's cache, as a client that reuses its access token.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { generateDevKeyPair, signDevToken } from '../../src/auth/dev-keys.js';

const TOKENS = 100;
const ISSUER = 'https://bench.invalid/';
const AUDIENCE = 'orders';

export interface JwtSetup {
  /** The server's AUTH_* environment. */
  env: Record<string, string>;
  /** One token per line, for the wrk scripts (BENCH_TOKENS_FILE). */
  tokensFile: string;
  tokens: string[];
}

export async function prepareJwt(work: string, ttlSeconds: number): Promise<JwtSetup> {
  const pair = await generateDevKeyPair('ES256');
  const jwksFile = join(work, 'jwks.json');
  writeFileSync(jwksFile, JSON.stringify(pair.jwks));
  const tokens = await Promise.all(
    Array.from({ length: TOKENS }, (_, i) =>
      signDevToken({
        privateJwk: pair.privateJwk,
        subject: `bench-${i}`,
        scope: 'orders:admin',
        issuer: ISSUER,
        audience: AUDIENCE,
        ttlSeconds,
      }),
    ),
  );
  const tokensFile = join(work, 'jwt.tokens');
  writeFileSync(tokensFile, `${tokens.join('\n')}\n`);
  return {
    env: {
      AUTH_MODE: 'jwt',
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: AUDIENCE,
      AUTH_JWKS_URL: pathToFileURL(jwksFile).href,
    },
    tokensFile,
    tokens,
  };
}
