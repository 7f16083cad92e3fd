/**
 * What `orders render-k8s` reads: its own K8S_* variables (flags override them) and the app's
 * non-secret variables, which are validated with the app's own schema (src/config.ts) so that a
 * manifest never carries a value the service would refuse at start. Every problem is reported at
 * once, and so is a configuration whose connections at full scale-out exceed
 * K8S_DB_MAX_CONNECTIONS (src/k8s/connection-budget.ts). Credentials (DATABASE_URL,
 * MIGRATE_DATABASE_URL, NATS_URL) are never read here: the pods get them from the Secret named by
 * K8S_DATABASE_SECRET.
 */
import { z } from 'zod';
import { ConfigError, EnvSchema } from '../config.js';
import { type Cidr, METADATA_ADDRESSES, metadataExceptions, parseCidr } from './cidr.js';
import { connectionBudgetProblem, K8S_DEFAULT_DB_POOL_MAX } from './connection-budget.js';
import { IMAGE_EXAMPLES, type ImageReference, imageVersionLabel, parseImageReference } from './image.js';

/** The app variables carried into the ConfigMap when set (none of them may hold a credential). */
export const CARRIED_APP_VARS = [
  'LOG_LEVEL',
  'DB_POOL_MAX',
  'REQUEST_TIMEOUT_MS',
  'SHUTDOWN_DELAY_MS',
  'SHUTDOWN_TIMEOUT_MS',
  'WORKER_ENABLED',
  'WORKER_PORT',
  'WORKER_CONCURRENCY',
  'WORKER_BATCH_SIZE',
  'WORKER_MAX_ATTEMPTS',
  'WORKER_BACKOFF_BASE_MS',
  'WORKER_BACKOFF_MAX_MS',
  'IDEMPOTENCY_TTL_HOURS',
  'OTEL_SERVICE_NAME',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'NOTIFY_FAILURE_RATE',
  'AUTH_MODE',
  'AUTH_ISSUER',
  'AUTH_AUDIENCE',
  'AUTH_JWKS_URL',
  'AUTH_CLOCK_TOLERANCE_S',
] as const satisfies readonly (keyof typeof EnvSchema.shape)[];

type CarriedVar = (typeof CARRIED_APP_VARS)[number];

/**
 * In Kubernetes the API pods stop taking traffic only once the endpoint removal has reached every
 * proxy and load balancer: the service keeps serving (with /readyz 503) for this long after SIGTERM.
 */
export const K8S_DEFAULT_SHUTDOWN_DELAY_MS = 5000;

/** OTLP's standard collector ports (gRPC, HTTP): always open for egress. */
const OTLP_PORTS = [4317, 4318];

/** K8S_EGRESS_CIDRS' default: the private ranges (RFC 1918, RFC 6598 shared space, IPv6 ULA). */
export const K8S_DEFAULT_EGRESS_CIDRS = '10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,100.64.0.0/10,fc00::/7';

export type Autoscaler = 'hpa' | 'keda';

/** One egress ipBlock: a CIDR and the metadata addresses inside it, which it must not reach. */
export interface EgressBlock {
  cidr: string;
  except: string[];
}

export interface K8sConfig {
  namespace: string;
  image: string;
  /** A label-safe form of the image's tag (or digest) for app.kubernetes.io/version. */
  imageVersion: string;
  minReplicas: number;
  maxReplicas: number;
  cpuTargetPercent: number;
  databaseSecret: string;
  prometheusRule: boolean;
  /** The Prometheus Operator's ServiceMonitor (API) and PodMonitor (worker). */
  prometheusOperator: boolean;
  grafanaDashboard: boolean;
  /** `hpa`: both Deployments scale on CPU; `keda`: the worker scales on its backlog and CPU. */
  autoscaler: Autoscaler;
  /** Due pending events per worker replica (KEDA's targetQueryValue). */
  workerTargetBacklog: number;
  /** Namespaces whose pods may call the API (NetworkPolicy), sorted. */
  ingressFrom: string[];
  /** Namespaces whose pods may scrape /metrics (API and worker), sorted. */
  metricsFrom: string[];
  /** Where the pods may connect (other than DNS), canonical, in the given order. */
  egress: EgressBlock[];
  dbMaxConnections: number;
  priorityClass: string | undefined;
  workerPort: number;
  shutdownDelayMs: number;
  shutdownTimeoutMs: number;
  /** Egress ports for the trace exporter, sorted. */
  otlpPorts: number[];
  /** Egress ports for the identity provider's keys (AUTH_MODE=jwt), sorted; empty otherwise. */
  identityProviderPorts: number[];
  /** The ConfigMap's data: carried app variables plus the values the manifests depend on, sorted. */
  appEnv: Record<string, string>;
}

export interface K8sFlags {
  image?: string | undefined;
  namespace?: string | undefined;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const NAMESPACE_EXAMPLE = 'lowercase letters, digits and "-", at most 63 characters';
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const int = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, `expected a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, `expected a whole number from ${min} to ${max}`)
        .max(max, `expected a whole number from ${min} to ${max}`),
    );

const bool = z
  .string()
  .trim()
  .toLowerCase()
  .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], 'expected true or false'))
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

/** A comma-separated list; blanks around items are ignored, an empty item is an error. */
const list = (what: string) =>
  z
    .string()
    .transform((v) => v.split(',').map((item) => item.trim()))
    .refine(
      (items) => items.every((item) => item !== ''),
      `expected ${what}, comma-separated, with no empty item`,
    );

/** Namespace names (DNS labels), sorted and without duplicates. */
const namespaces = list('namespace names')
  .superRefine((items, ctx) => {
    for (const item of items) {
      if (item !== '' && (item.length > 63 || !DNS_LABEL.test(item))) {
        ctx.addIssue({
          code: 'custom',
          message: `expected namespace names (${NAMESPACE_EXAMPLE}); ${quote(item)} is not one`,
        });
      }
    }
  })
  .transform((items) => [...new Set(items)].sort());

/** CIDR blocks, canonical, without duplicates; refuses a block that is only a metadata address. */
const cidrs = list('CIDR blocks (e.g. 10.0.0.0/8,fc00::/7)').transform((items, ctx) => {
  const blocks: Cidr[] = [];
  for (const item of items) {
    if (item === '') continue;
    const parsed = parseCidr(item);
    if (!parsed.ok) {
      ctx.addIssue({
        code: 'custom',
        message: `expected CIDR blocks (e.g. 10.0.0.0/8,fc00::/7); ${quote(item)} ${parsed.problem}`,
      });
      continue;
    }
    if (METADATA_ADDRESSES.some((m) => m.text === parsed.cidr.text)) {
      ctx.addIssue({
        code: 'custom',
        message: `${quote(item)} is the cloud metadata address, which the pods must never reach`,
      });
      continue;
    }
    if (!blocks.some((b) => b.text === parsed.cidr.text)) blocks.push(parsed.cidr);
  }
  return blocks.map((b): EgressBlock => ({ cidr: b.text, except: metadataExceptions(b) }));
});

const K8sSchema = z.object({
  K8S_NAMESPACE: z
    .string()
    .trim()
    .max(63, 'expected a namespace name of at most 63 characters')
    .regex(DNS_LABEL, 'expected a namespace name: lowercase letters, digits and "-" (e.g. orders)')
    .default('orders'),
  K8S_IMAGE: z.string({ error: `required; ${IMAGE_EXAMPLES}` }).trim(),
  K8S_MIN_REPLICAS: int(1, 1000).default(2),
  K8S_MAX_REPLICAS: int(1, 1000).default(10),
  K8S_CPU_TARGET_PERCENT: int(1, 100).default(70),
  K8S_DATABASE_SECRET: z
    .string()
    .trim()
    .max(253, 'expected a Secret name of at most 253 characters')
    .regex(DNS_SUBDOMAIN, 'expected a Secret name: lowercase letters, digits, "-" and "." (e.g. orders-db)')
    .default('orders-db'),
  K8S_PROMETHEUS_RULE: bool.default(false),
  K8S_PROMETHEUS_OPERATOR: bool.default(false),
  K8S_GRAFANA_DASHBOARD: bool.default(false),
  K8S_AUTOSCALER: z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['hpa', 'keda'], 'expected hpa or keda'))
    .default('hpa'),
  K8S_WORKER_TARGET_BACKLOG: int(1, 1_000_000).default(100),
  // Unset: the render's own namespace (filled in below, since --namespace may set it).
  K8S_INGRESS_FROM: namespaces.optional(),
  K8S_METRICS_FROM: namespaces.default(['monitoring']),
  K8S_EGRESS_CIDRS: cidrs.default(() => cidrs.parse(K8S_DEFAULT_EGRESS_CIDRS)),
  // PostgreSQL's own default; its upper bound is the server's (2^18 - 1).
  K8S_DB_MAX_CONNECTIONS: int(1, 262_143).default(100),
  K8S_PRIORITY_CLASS: z
    .string()
    .trim()
    .max(253, 'expected a PriorityClass name of at most 253 characters')
    .regex(
      DNS_SUBDOMAIN,
      'expected a PriorityClass name: lowercase letters, digits, "-" and "." (e.g. orders-critical)',
    )
    .optional(),
});

type K8sVar = keyof typeof K8sSchema.shape;

/** How a problem names its source: the flag when one was given, else the variable. */
const FLAG_FOR: Partial<Record<K8sVar, keyof K8sFlags>> = { K8S_IMAGE: 'image', K8S_NAMESPACE: 'namespace' };

function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}

/**
 * Reads render-k8s's configuration from `env` (this process's unless given) and the command's
 * flags, which override their variables. Throws ConfigError (exit 2) naming every offending
 * variable or flag and what it expects.
 */
export function loadK8sConfig(
  env: Record<string, string | undefined> = process.env,
  flags: K8sFlags = {},
): K8sConfig {
  const issues: string[] = [];
  const sourceName: Partial<Record<K8sVar, string>> = {};
  const raw: Record<string, string> = {};
  for (const key of Object.keys(K8sSchema.shape) as K8sVar[]) {
    const flag = FLAG_FOR[key];
    const fromFlag = flag === undefined ? undefined : flags[flag];
    const value = fromFlag ?? env[key];
    sourceName[key] = fromFlag !== undefined && flag !== undefined ? `--${flag}` : key;
    if (value !== undefined && (value !== '' || fromFlag !== undefined)) raw[key] = value;
  }
  if (raw.K8S_IMAGE === undefined) {
    // Named as both, since either fixes it.
    sourceName.K8S_IMAGE = 'K8S_IMAGE (or --image)';
  }

  // Each variable on its own, so that one bad value does not hide the checks of the others.
  const k8s: Partial<{ [K in K8sVar]: z.output<(typeof K8sSchema.shape)[K]> }> = {};
  let image: ImageReference | undefined;
  for (const key of Object.keys(K8sSchema.shape) as K8sVar[]) {
    const parsed = (K8sSchema.shape[key] as z.ZodType).safeParse(raw[key]);
    if (parsed.success) {
      (k8s as Record<string, unknown>)[key] = parsed.data;
      if (key === 'K8S_IMAGE') {
        image = parseImageReference(String(parsed.data));
        if (!image.ok) issues.push(`${sourceName.K8S_IMAGE}: ${quote(String(parsed.data))} ${image.problem}`);
      }
      continue;
    }
    const got = raw[key] === undefined ? '' : ` (got ${quote(raw[key])})`;
    for (const issue of parsed.error.issues) issues.push(`${sourceName[key] ?? key}: ${issue.message}${got}`);
  }

  if (k8s.K8S_MIN_REPLICAS !== undefined && k8s.K8S_MAX_REPLICAS !== undefined) {
    if (k8s.K8S_MAX_REPLICAS < k8s.K8S_MIN_REPLICAS) {
      issues.push(
        `K8S_MAX_REPLICAS: expected at least K8S_MIN_REPLICAS (${k8s.K8S_MIN_REPLICAS}) (got ${k8s.K8S_MAX_REPLICAS})`,
      );
    }
  }

  const app = readAppVars(env, issues);
  if (
    issues.length > 0 ||
    !image?.ok ||
    k8s.K8S_IMAGE === undefined ||
    k8s.K8S_NAMESPACE === undefined ||
    k8s.K8S_MIN_REPLICAS === undefined ||
    k8s.K8S_MAX_REPLICAS === undefined ||
    k8s.K8S_CPU_TARGET_PERCENT === undefined ||
    k8s.K8S_DATABASE_SECRET === undefined ||
    k8s.K8S_PROMETHEUS_RULE === undefined ||
    k8s.K8S_PROMETHEUS_OPERATOR === undefined ||
    k8s.K8S_GRAFANA_DASHBOARD === undefined ||
    k8s.K8S_AUTOSCALER === undefined ||
    k8s.K8S_WORKER_TARGET_BACKLOG === undefined ||
    k8s.K8S_METRICS_FROM === undefined ||
    k8s.K8S_EGRESS_CIDRS === undefined ||
    k8s.K8S_DB_MAX_CONNECTIONS === undefined
  ) {
    throw new ConfigError(issues);
  }

  // The app's default pool (10) is for one process; in a cluster it must fit the connection
  // budget, so the manifests say what the pods use.
  const dbPoolMax = Number(app.DB_POOL_MAX ?? K8S_DEFAULT_DB_POOL_MAX);
  const budget = connectionBudgetProblem(
    { maxReplicas: k8s.K8S_MAX_REPLICAS, poolMax: dbPoolMax, keda: k8s.K8S_AUTOSCALER === 'keda' },
    k8s.K8S_DB_MAX_CONNECTIONS,
  );
  if (budget !== undefined) throw new ConfigError([budget]);

  const shutdownDelayMs = Number(app.SHUTDOWN_DELAY_MS ?? K8S_DEFAULT_SHUTDOWN_DELAY_MS);
  const shutdownTimeoutMs = Number(app.SHUTDOWN_TIMEOUT_MS ?? defaultOf('SHUTDOWN_TIMEOUT_MS'));
  const workerPort = Number(app.WORKER_PORT ?? defaultOf('WORKER_PORT'));
  // The manifests are computed from these four, so the pods must not fall back to other defaults.
  const appEnv: Record<string, string> = {
    ...app,
    DB_POOL_MAX: String(dbPoolMax),
    SHUTDOWN_DELAY_MS: String(shutdownDelayMs),
    SHUTDOWN_TIMEOUT_MS: String(shutdownTimeoutMs),
    WORKER_PORT: String(workerPort),
  };

  return {
    namespace: k8s.K8S_NAMESPACE,
    image: k8s.K8S_IMAGE,
    imageVersion: imageVersionLabel(image),
    minReplicas: k8s.K8S_MIN_REPLICAS,
    maxReplicas: k8s.K8S_MAX_REPLICAS,
    cpuTargetPercent: k8s.K8S_CPU_TARGET_PERCENT,
    databaseSecret: k8s.K8S_DATABASE_SECRET,
    prometheusRule: k8s.K8S_PROMETHEUS_RULE,
    prometheusOperator: k8s.K8S_PROMETHEUS_OPERATOR,
    grafanaDashboard: k8s.K8S_GRAFANA_DASHBOARD,
    autoscaler: k8s.K8S_AUTOSCALER,
    workerTargetBacklog: k8s.K8S_WORKER_TARGET_BACKLOG,
    ingressFrom: k8s.K8S_INGRESS_FROM ?? [k8s.K8S_NAMESPACE],
    metricsFrom: k8s.K8S_METRICS_FROM,
    egress: k8s.K8S_EGRESS_CIDRS,
    dbMaxConnections: k8s.K8S_DB_MAX_CONNECTIONS,
    priorityClass: k8s.K8S_PRIORITY_CLASS,
    workerPort,
    shutdownDelayMs,
    shutdownTimeoutMs,
    otlpPorts: otlpPorts(app.OTEL_EXPORTER_OTLP_ENDPOINT),
    identityProviderPorts: identityProviderPorts(app),
    appEnv: Object.fromEntries(Object.entries(appEnv).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))),
  };
}

function defaultOf(key: CarriedVar): unknown {
  const parsed = (EnvSchema.shape[key] as z.ZodType).safeParse(undefined);
  return parsed.success ? parsed.data : undefined;
}

/**
 * The carried app variables that are set, each validated by the app's schema and written back in
 * its normal form (`yes` → `true`, ` 20 ` → `20`).
 */
function readAppVars(
  env: Record<string, string | undefined>,
  issues: string[],
): Partial<Record<CarriedVar, string>> {
  const out: Partial<Record<CarriedVar, string>> = {};
  for (const key of CARRIED_APP_VARS) {
    const value = env[key];
    if (value === undefined || value === '') continue;
    const parsed = (EnvSchema.shape[key] as z.ZodType).safeParse(value);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) issues.push(`${key}: ${issue.message} (got ${quote(value)})`);
      continue;
    }
    out[key] = String(parsed.data);
  }
  const base = Number(out.WORKER_BACKOFF_BASE_MS ?? defaultOf('WORKER_BACKOFF_BASE_MS'));
  const max = Number(out.WORKER_BACKOFF_MAX_MS ?? defaultOf('WORKER_BACKOFF_MAX_MS'));
  if (max < base)
    issues.push(`WORKER_BACKOFF_MAX_MS: expected at least WORKER_BACKOFF_BASE_MS (${base}) (got ${max})`);
  if (out.WORKER_PORT === '0') {
    // The app may pick an ephemeral port; a pod's probes and NetworkPolicy need a fixed one.
    issues.push('WORKER_PORT: expected a fixed port from 1 to 65535 for Kubernetes probes (got 0)');
  }
  checkAuth(out, issues);
  const otlp = out.OTEL_EXPORTER_OTLP_ENDPOINT;
  if (otlp !== undefined) {
    const url = new URL(otlp);
    if (url.username || url.password) {
      // A ConfigMap is readable by anyone who may read the namespace's configuration.
      issues.push(
        'OTEL_EXPORTER_OTLP_ENDPOINT: expected a URL without user or password (they would land in a ConfigMap; send credentials with OTEL_EXPORTER_OTLP_HEADERS from a Secret)',
      );
    }
  }
  return out;
}

/**
 * The pods run with DATABASE_URL from the Secret, so AUTH_MODE defaults to jwt there too: the
 * issuer and audience must be given (or AUTH_MODE=none said explicitly), as `serve` requires.
 */
function checkAuth(app: Partial<Record<CarriedVar, string>>, issues: string[]): void {
  if ((app.AUTH_MODE ?? 'jwt') !== 'jwt') return;
  for (const name of ['AUTH_ISSUER', 'AUTH_AUDIENCE'] as const) {
    if (app[name] === undefined) {
      issues.push(
        `${name}: required with AUTH_MODE=jwt (the pods' default, since they get DATABASE_URL): ` +
          `${name === 'AUTH_ISSUER' ? "the tokens' issuer" : 'the audience tokens must name'}; or set AUTH_MODE=none`,
      );
    }
  }
  const jwks = app.AUTH_JWKS_URL;
  if (jwks !== undefined && /^https?:/.test(jwks)) {
    const url = new URL(jwks);
    if (url.username || url.password) {
      issues.push('AUTH_JWKS_URL: expected a URL without user or password (it would land in a ConfigMap)');
    }
  }
}

/** Where the keys come from: AUTH_JWKS_URL's port, or the issuer's (OpenID discovery); none for file://. */
function identityProviderPorts(app: Partial<Record<CarriedVar, string>>): number[] {
  if ((app.AUTH_MODE ?? 'jwt') !== 'jwt') return [];
  const source = app.AUTH_JWKS_URL ?? app.AUTH_ISSUER;
  if (source === undefined || source.startsWith('file:')) return [];
  let url: URL;
  try {
    url = new URL(source);
  } catch {
    return [443];
  }
  return [url.port ? Number(url.port) : url.protocol === 'http:' ? 80 : 443];
}

function otlpPorts(endpoint: string | undefined): number[] {
  const ports = new Set(OTLP_PORTS);
  if (endpoint !== undefined) {
    const url = new URL(endpoint);
    ports.add(url.port ? Number(url.port) : url.protocol === 'https:' ? 443 : 80);
  }
  return [...ports].sort((a, b) => a - b);
}
