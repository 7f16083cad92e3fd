/**
 * The one reader of the app's environment. Every variable of the contract is parsed here, once,
 * with zod; every invalid variable is reported at the same time so an operator fixes them in one
 * go. The few settings read where start-up time matters (the healthcheck's port, ORDERS_DEBUG)
 * live in the zod-free config-light.ts and are re-exported here.
 */
import { z } from 'zod';
import { DEFAULT_PORT } from './config-light.js';
import { redactUrl } from './platform/redact.js';

export { readDebug, readProbePort } from './config-light.js';

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no']))
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `expected a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** A share from 0 to 1, e.g. `0.25`. */
const rate = z
  .string()
  .trim()
  .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, 'expected a number from 0 to 1')
  .transform(Number);

const postgresUrl = z
  .string()
  .trim()
  .superRefine((v, ctx) => {
    if (!/^postgres(ql)?:\/\//i.test(v)) {
      ctx.addIssue({ code: 'custom', message: 'expected a postgres:// or postgresql:// connection URL' });
      return;
    }
    try {
      new URL(v);
    } catch {
      ctx.addIssue({
        code: 'custom',
        message:
          'not a valid URL: percent-encode / @ : # ? % and spaces in the user name and password (@ as %40)',
      });
    }
  });

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The most `serve` processes one `orders serve` runs (see SERVE_PROCESSES; cli.ts repeats it). */
export const MAX_SERVE_PROCESSES = 64;

export const EnvSchema = z.object({
  DATABASE_URL: postgresUrl.optional(),
  MIGRATE_DATABASE_URL: postgresUrl.optional(),
  ORDERS_DATA_DIR: z.string().trim().min(1).default('./.orders'),
  PORT: int(0, 65535).default(DEFAULT_PORT),
  HOST: z.string().trim().min(1).default('0.0.0.0'),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  /**
   * `serve` processes sharing the port (node:cluster). 64 at most: each process holds its own
   * pool (64 × DB_POOL_MAX 10 is already 6× PostgreSQL's default max_connections), and more
   * processes than cores only add context switches; 64 covers the largest common machines.
   */
  SERVE_PROCESSES: z
    .string()
    .trim()
    .regex(/^\d+$/, `expected a whole number from 1 to ${MAX_SERVE_PROCESSES}`)
    .transform(Number)
    .pipe(
      z
        .number()
        .min(1, `expected a whole number from 1 to ${MAX_SERVE_PROCESSES}`)
        .max(MAX_SERVE_PROCESSES, `expected a whole number from 1 to ${MAX_SERVE_PROCESSES}`),
    )
    .default(1),
  DB_POOL_MAX: int(1, 1000).default(10),
  REQUEST_TIMEOUT_MS: int(1, 3_600_000).default(10_000),
  SHUTDOWN_DELAY_MS: int(0, 3_600_000).default(0),
  SHUTDOWN_TIMEOUT_MS: int(0, 3_600_000).default(25_000),
  WORKER_ENABLED: bool.default(true),
  WORKER_PORT: int(0, 65535).default(8081),
  WORKER_CONCURRENCY: int(1, 1000).default(4),
  WORKER_BATCH_SIZE: int(1, 10_000).default(50),
  WORKER_MAX_ATTEMPTS: int(1, 1000).default(10),
  WORKER_BACKOFF_BASE_MS: int(1, 86_400_000).default(1000),
  WORKER_BACKOFF_MAX_MS: int(1, 86_400_000).default(300_000),
  NOTIFY_FAILURE_RATE: z
    .string()
    .trim()
    .regex(/^(0(\.\d+)?|1(\.0+)?|\.\d+)$/, 'expected a number from 0 to 1')
    .transform(Number)
    .default(0),
  IDEMPOTENCY_TTL_HOURS: z
    .string()
    .trim()
    .regex(/^(\d+(\.\d+)?|\.\d+)$/, 'expected a positive number of hours (fractions allowed)')
    .transform(Number)
    .pipe(z.number().positive('expected a positive number of hours (fractions allowed)').max(87_600))
    .default(24),
  NATS_URL: z
    .string()
    .trim()
    .regex(/^(nats|tls|wss?):\/\/\S+$/, 'expected a nats:// URL (or a comma-separated list of them)')
    .optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url('expected an http(s):// URL').optional(),
  OTEL_SERVICE_NAME: z.string().trim().min(1).default('orders'),
  AUTH_MODE: z.enum(['none', 'jwt'], 'expected none or jwt').optional(),
  AUTH_ISSUER: z.string().trim().min(1).optional(),
  AUTH_AUDIENCE: z.string().trim().min(1).optional(),
  AUTH_JWKS_URL: z
    .url({
      protocol: /^(https?|file)$/,
      error: 'expected an https:// (http:// for development) or file:/// URL of a JWKS',
    })
    .optional(),
  AUTH_CLOCK_TOLERANCE_S: int(0, 3600).default(30),
  /** Unset: on with the embedded database, off with DATABASE_URL (see resolveSimulation). */
  SIMULATE_PARTNERS: bool.optional(),
  SIMULATE_DELAY_MS: int(0, 3_600_000).default(500),
  SIMULATE_STOCK_REJECT_RATE: rate.default(0),
  SIMULATE_PAYMENT_FAIL_RATE: rate.default(0),
  /** `production` (the image sets it) forbids the embedded development database. */
  NODE_ENV: z.string().trim().optional(),
});

export type Config = z.output<typeof EnvSchema>;

/** A configuration problem an operator must fix: exit code 2, every offending variable named. */
export class ConfigError extends Error {
  constructor(readonly issues: readonly string[]) {
    super(`invalid configuration:\n${issues.map((i) => `  - ${i}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Variables that may hold a credential: echoed back in an error message only with it masked. */
const SECRET_VARS = new Set([
  'DATABASE_URL',
  'MIGRATE_DATABASE_URL',
  'NATS_URL',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'AUTH_JWKS_URL',
]);

/**
 * Set but empty means a missing secret here, not "unset": an empty DATABASE_URL would otherwise
 * select the embedded development database, and an empty MIGRATE_DATABASE_URL the app's role.
 */
const EMPTY_IS_AN_ERROR = new Map([
  [
    'DATABASE_URL',
    "set but empty: give the PostgreSQL server's postgres:// URL; unset it only for the embedded development database",
  ],
  [
    'MIGRATE_DATABASE_URL',
    "set but empty: give the schema owner's PostgreSQL URL, or unset it to migrate with DATABASE_URL",
  ],
]);

const truncate = (value: string) => (value.length > 80 ? `${value.slice(0, 80)}…` : value);

function describeValue(name: string, value: unknown): string {
  if (typeof value !== 'string') return '';
  if (!SECRET_VARS.has(name)) return ` (got ${JSON.stringify(truncate(value))})`;
  // Only what reads as a URL is shown, its credentials masked: anything else may be a bare password.
  if (!/^\s*[a-z][a-z0-9+.-]*:\/\//i.test(value)) return ' (not shown: it does not start with scheme://)';
  return ` (got ${JSON.stringify(truncate(redactUrl(value.trim())))})`;
}

/**
 * Parses the environment (this process's unless `env` is given). Empty strings count as unset,
 * the way shells and compose files usually mean them, except for the database URLs (see
 * EMPTY_IS_AN_ERROR). Flags override env: pass them in `overrides`, already named as variables.
 */
export function loadConfig(
  env: Record<string, string | undefined> = process.env,
  overrides: Partial<Record<keyof Config, string>> = {},
): Config {
  const raw: Record<string, string> = {};
  const issues: string[] = [];
  for (const key of Object.keys(EnvSchema.shape)) {
    const value = (overrides as Record<string, string | undefined>)[key] ?? env[key];
    if (value === '' && EMPTY_IS_AN_ERROR.has(key)) issues.push(`${key}: ${EMPTY_IS_AN_ERROR.get(key)}`);
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const parsed = EnvSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const name = String(issue.path[0] ?? '?');
      issues.push(`${name}: ${issue.message}${describeValue(name, raw[name])}`);
    }
  } else if (parsed.data.WORKER_BACKOFF_MAX_MS < parsed.data.WORKER_BACKOFF_BASE_MS) {
    issues.push('WORKER_BACKOFF_MAX_MS: must be at least WORKER_BACKOFF_BASE_MS');
  }
  if (issues.length > 0 || !parsed.success) throw new ConfigError(issues);
  return parsed.data;
}

/** How `serve` authenticates callers: nobody (development, or a gateway in front), or bearer JWTs. */
export type AuthSettings =
  | { mode: 'none' }
  | { mode: 'jwt'; issuer: string; audience: string; jwksUrl: URL | undefined; clockToleranceS: number };

/**
 * AUTH_MODE defaults to jwt as soon as DATABASE_URL is set, so a service that holds real orders
 * cannot come up open by accident; only the embedded development database defaults to none.
 * With jwt, the issuer and audience are required (exit 2 naming them).
 */
export function resolveAuth(config: Config): AuthSettings {
  const mode = config.AUTH_MODE ?? (config.DATABASE_URL ? 'jwt' : 'none');
  if (mode === 'none') return { mode };
  const missing = (['AUTH_ISSUER', 'AUTH_AUDIENCE'] as const).filter((name) => !config[name]);
  if (missing.length > 0) {
    const why = config.AUTH_MODE ? 'AUTH_MODE=jwt' : 'AUTH_MODE=jwt (the default once DATABASE_URL is set)';
    throw new ConfigError(
      missing.map(
        (name) =>
          `${name}: required with ${why}: the ${name === 'AUTH_ISSUER' ? "tokens' issuer (iss)" : 'audience (aud) tokens must name'}; ` +
          'or set AUTH_MODE=none to run without authentication (behind a gateway that authenticates, or for development)',
      ),
    );
  }
  return {
    mode,
    issuer: config.AUTH_ISSUER!,
    audience: config.AUTH_AUDIENCE!,
    jwksUrl: config.AUTH_JWKS_URL ? new URL(config.AUTH_JWKS_URL) : undefined,
    clockToleranceS: config.AUTH_CLOCK_TOLERANCE_S,
  };
}

/** The partner simulation (development and demos): who answers for Catalog and Payments, how. */
export interface SimulationSettings {
  enabled: boolean;
  delayMs: number;
  stockRejectRate: number;
  paymentFailRate: number;
}

/**
 * SIMULATE_PARTNERS defaults to true only with the embedded database (`npm ci && npx orders
 * serve` shows an order confirm itself); a service on a real database answers only real partners
 * unless asked to, like AUTH_MODE's default.
 */
export function resolveSimulation(config: Config): SimulationSettings {
  return {
    enabled: config.SIMULATE_PARTNERS ?? !config.DATABASE_URL,
    delayMs: config.SIMULATE_DELAY_MS,
    stockRejectRate: config.SIMULATE_STOCK_REJECT_RATE,
    paymentFailRate: config.SIMULATE_PAYMENT_FAIL_RATE,
  };
}
