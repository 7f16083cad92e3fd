/**
 * `orders auth keygen` and `orders auth token`: a development signing key and access tokens for
 * it, so the secured API can be tried without an identity provider:
 *
 *   orders auth keygen --out ./keys
 *   AUTH_MODE=jwt AUTH_ISSUER=http://localhost AUTH_AUDIENCE=orders \
 *     AUTH_JWKS_URL=file://$PWD/keys/jwks.json orders serve
 *   orders auth token --key ./keys/private.jwk --sub c-42 --scope "orders:read orders:write" \
 *     --iss http://localhost --aud orders
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { JWK } from 'jose';
import {
  generateDevKeyPair,
  KEY_ALGORITHMS,
  type KeyAlgorithm,
  parseTtl,
  signDevToken,
} from '../auth/dev-keys.js';
import { loadConfig } from '../config.js';
import { type CommandIo, processIo, UsageError } from './report.js';

export interface KeygenOptions {
  action: 'keygen';
  out: string;
  alg: string;
}

export interface TokenOptions {
  action: 'token';
  key: string;
  sub: string;
  scope: string;
  iss?: string | undefined;
  aud?: string | undefined;
  ttl: string;
}

export async function run(options: KeygenOptions | TokenOptions, io: CommandIo = processIo): Promise<number> {
  return options.action === 'keygen' ? keygen(options, io) : token(options, io);
}

async function keygen(options: KeygenOptions, io: CommandIo): Promise<number> {
  if (!(KEY_ALGORITHMS as readonly string[]).includes(options.alg)) {
    throw new UsageError(
      `--alg expects one of ${KEY_ALGORITHMS.join(', ')} (got ${JSON.stringify(options.alg)}).`,
    );
  }
  const dir = resolve(options.out);
  const privatePath = join(dir, 'private.jwk');
  const jwksPath = join(dir, 'jwks.json');
  if (existsSync(privatePath) || existsSync(jwksPath)) {
    throw new UsageError(
      `--out ${options.out} already holds a key (jwks.json or private.jwk): choose another directory or remove them.`,
    );
  }
  const pair = await generateDevKeyPair(options.alg as KeyAlgorithm);
  await mkdir(dir, { recursive: true });
  // The private key is written 0600 from the start (and chmod'ed in case the umask widened it).
  await writeFile(privatePath, `${JSON.stringify(pair.privateJwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(privatePath, 0o600);
  await writeFile(jwksPath, `${JSON.stringify(pair.jwks, null, 2)}\n`, { flag: 'wx' });
  io.stdout(
    `wrote ${jwksPath} (public keys, kid ${pair.privateJwk.kid}) and ${privatePath} (private, mode 0600)\n` +
      `serve with:  AUTH_MODE=jwt AUTH_ISSUER=<issuer> AUTH_AUDIENCE=<audience> AUTH_JWKS_URL=${pathToFileURL(jwksPath).href}\n` +
      `tokens with: orders auth token --key ${privatePath} --sub <customer> --scope "orders:read orders:write" --iss <issuer> --aud <audience>\n`,
  );
  return 0;
}

async function token(options: TokenOptions, io: CommandIo): Promise<number> {
  const config = loadConfig();
  const issuer = options.iss ?? config.AUTH_ISSUER;
  const audience = options.aud ?? config.AUTH_AUDIENCE;
  const ttlSeconds = parseTtl(options.ttl);
  const problems: string[] = [];
  if (!issuer) problems.push('--iss (or AUTH_ISSUER) is required: the issuer serve expects (AUTH_ISSUER)');
  if (!audience)
    problems.push('--aud (or AUTH_AUDIENCE) is required: the audience serve expects (AUTH_AUDIENCE)');
  if (ttlSeconds === undefined)
    problems.push(
      `--ttl expects seconds or a number with s, m, h or d, e.g. 30m (got ${JSON.stringify(options.ttl)})`,
    );
  if (options.sub.trim() === '') problems.push('--sub expects the customer (or service) the token is for');
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
  let privateJwk: unknown;
  try {
    privateJwk = JSON.parse(await readFile(options.key, 'utf8'));
  } catch (error) {
    throw new UsageError(
      `--key ${options.key}: cannot read a JSON private key (${(error as Error).message})`,
    );
  }
  if (typeof privateJwk !== 'object' || privateJwk === null || !('d' in privateJwk)) {
    throw new UsageError(
      `--key ${options.key} is not a private JWK: use the private.jwk written by \`orders auth keygen\``,
    );
  }
  const jwt = await signDevToken({
    privateJwk: privateJwk as JWK,
    subject: options.sub,
    scope: options.scope,
    issuer: issuer!,
    audience: audience!,
    ttlSeconds: ttlSeconds!,
  });
  io.stdout(`${jwt}\n`);
  return 0;
}
