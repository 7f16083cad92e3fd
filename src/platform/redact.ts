/** Replaces the password of a URL (postgres://user:secret@host) with `***`; leaves other text alone. */
export function redactUrl(value: string): string {
  // Every log line's message passes through here: skip the regex when there is no URL at all.
  if (!value.includes('://')) return value;
  return value.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*:)[^@/\s]*@/gi, '$1***@');
}

/** Redacts every URL credential found anywhere in a piece of text (error messages, log lines). */
export const redactText = redactUrl;

/** pino `redact` paths: request headers that carry credentials, and config fields that may. */
export const LOG_REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'config.DATABASE_URL',
  'config.MIGRATE_DATABASE_URL',
  'config.NATS_URL',
  'databaseUrl',
  'password',
];
