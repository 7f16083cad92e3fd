/**
 * Starting authentication for `serve`: the key store (warmed up so the first request does not pay
 * for the fetch) and the token verifier. A provider that is down at start does not stop the
 * service: requests with tokens get 503 until the keys can be fetched (readiness stays about the
 * database, so a gateway's outage does not take every replica out of rotation).
 */
import type { Logger } from '../platform/logger.js';
import { redactUrl } from '../platform/redact.js';
import { createKeyStore, jwksSource } from './key-store.js';
import { createTokenVerifier, type TokenVerifier } from './verifier.js';

export interface JwtSettings {
  issuer: string;
  audience: string;
  /** Where the keys are; from the issuer's OpenID discovery document when undefined. */
  jwksUrl: URL | undefined;
  clockToleranceS: number;
}

export async function startTokenVerifier(settings: JwtSettings, logger: Logger): Promise<TokenVerifier> {
  const where = settings.jwksUrl ? redactUrl(settings.jwksUrl.href) : `${settings.issuer} (OpenID discovery)`;
  const keys = createKeyStore({
    load: jwksSource({ url: settings.jwksUrl, issuer: settings.issuer }),
    onRefreshFailed: (error) =>
      logger.warn(
        { err: error, jwks: where },
        'fetching the signing keys failed; retrying in 30 s at the earliest',
      ),
  });
  if (await keys.warmUp()) logger.info({ jwks: where, issuer: settings.issuer }, 'signing keys loaded');
  else
    logger.warn({ jwks: where }, 'signing keys not loaded yet: requests with tokens get 503 until they are');
  return createTokenVerifier({
    issuer: settings.issuer,
    audience: settings.audience,
    clockToleranceS: settings.clockToleranceS,
    keys: keys.resolve,
  });
}
