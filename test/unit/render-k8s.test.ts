/**
 * `orders render-k8s`: every object valid against the Kubernetes OpenAPI schema (kubernetes-models)
 * with no field Kubernetes does not know (@kubernetes/client-node's model metadata), the output
 * byte-identical to the golden file (UPDATE_GOLDEN=1 rewrites it), each production property
 * asserted on its own, and bad configuration refused with exit code 2.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { V1Container, V1Deployment, V1EnvVar, V1Job, V1PodSpec } from '@kubernetes/client-node';
import * as k8sClient from '@kubernetes/client-node';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { run } from '../../src/commands/render-k8s.js';
import { UsageError } from '../../src/commands/report.js';
import { ConfigError } from '../../src/config.js';
import { loadK8sConfig } from '../../src/k8s/config.js';
import { dashboardJson } from '../../src/k8s/dashboard.js';
import { parseImageReference } from '../../src/k8s/image.js';
import { type Manifest, renderManifests, toYaml } from '../../src/k8s/render.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GOLDEN = join(ROOT, 'test/unit/golden/render-k8s.yaml');
const IMAGE = 'registry.example.com/shop/orders:1.4.2';

/** The pods get DATABASE_URL, so AUTH_MODE defaults to jwt: every render names its issuer and audience. */
const AUTH = { AUTH_ISSUER: 'https://idp.example.com/', AUTH_AUDIENCE: 'orders' };

/** The golden configuration; the credentials in it must never reach the output. */
const GOLDEN_ENV = {
  K8S_IMAGE: IMAGE,
  LOG_LEVEL: 'info',
  DB_POOL_MAX: '20',
  // 2 × (10 + 3 surging) pods × 20 + 1 = 521 connections: as behind a PgBouncer accepting 600.
  K8S_DB_MAX_CONNECTIONS: '600',
  WORKER_CONCURRENCY: '8',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability:4318',
  DATABASE_URL: 'postgres://orders_service:s3cret@db.internal:5432/orders',
  MIGRATE_DATABASE_URL: 'postgres://orders_owner:0wn3r@db.internal:5432/orders',
  NATS_URL: 'nats://user:natspass@nats.internal:4222',
  ...AUTH,
};

function render(env: Record<string, string | undefined> = GOLDEN_ENV, flags = {}) {
  return renderManifests(loadK8sConfig(env, flags));
}

function parseStream(text: string): Manifest[] {
  return parseAllDocuments(text).map((doc) => {
    expect(doc.errors).toEqual([]);
    return doc.toJS() as Manifest;
  });
}

const objects = render();
const find = <T extends Manifest>(kind: string, name: string): T => {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`no ${kind}/${name} in the output`);
  return found as T;
};
const deployments = {
  api: find<V1Deployment>('Deployment', 'orders-api'),
  worker: find<V1Deployment>('Deployment', 'orders-worker'),
};
const job = objects.find((o): o is V1Job => o.kind === 'Job')!;
const podSpec = (d: V1Deployment | V1Job): V1PodSpec => d.spec!.template.spec!;
const container = (d: V1Deployment | V1Job): V1Container => podSpec(d).containers[0]!;
/** `PROTOCOL/port` of every rule's ports, in order. */
const ports = (rules: { ports?: k8sClient.V1NetworkPolicyPort[] }[] = []) =>
  rules.flatMap((r) => (r.ports ?? []).map((p) => `${p.protocol}/${p.port}`));
/** Each ingress rule as [its namespaces (comma-joined), its ports]. */
const ingressFrom = (policy: k8sClient.V1NetworkPolicy) =>
  (policy.spec!.ingress ?? []).map((rule) => {
    const peers = (rule as { from?: k8sClient.V1NetworkPolicyPeer[] }).from ?? [];
    const names = peers.flatMap((p) =>
      (p.namespaceSelector?.matchExpressions ?? []).flatMap((e) => {
        expect([e.key, e.operator]).toEqual(['kubernetes.io/metadata.name', 'In']);
        return e.values ?? [];
      }),
    );
    expect(peers.every((p) => p.podSelector === undefined && p.ipBlock === undefined)).toBe(true);
    return [names.join(','), ports([rule]).join(',')];
  });

// --- schema ----------------------------------------------------------------------------------

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  'v1/ServiceAccount': ServiceAccount,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy,
};

/** Client-node model classes by name, each with its attribute map (name → type). */
type ModelClass = { getAttributeTypeMap(): { baseName: string; type: string }[] };
const clientModels = k8sClient as unknown as Record<string, ModelClass | undefined>;
const SCALARS = new Set(['string', 'number', 'boolean', 'Date', 'IntOrString', 'any', 'object']);

/** Paths of every field the Kubernetes API would not know (a typo that validation lets through). */
function unknownFields(value: unknown, type: string, path: string): string[] {
  if (SCALARS.has(type) || type.startsWith('{ [key: string]: string')) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    return Array.isArray(value)
      ? value.flatMap((item, i) => unknownFields(item, array[1]!, `${path}/${i}`))
      : [path];
  }
  const model = clientModels[type];
  if (!model?.getAttributeTypeMap) throw new Error(`no model ${type} at ${path}`);
  const attributes = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value as object).flatMap(([key, child]) => {
    const childType = attributes.get(key);
    return childType === undefined ? [`${path}/${key}`] : unknownFields(child, childType, `${path}/${key}`);
  });
}

/**
 * Every option on: the built-in objects then include the dashboard ConfigMap and priority classes
 * (the custom resources are checked in render-k8s-crds.test.ts).
 */
const withOptions = renderManifests(
  loadK8sConfig({
    ...GOLDEN_ENV,
    K8S_AUTOSCALER: 'keda',
    K8S_PROMETHEUS_OPERATOR: 'true',
    K8S_PROMETHEUS_RULE: 'true',
    K8S_GRAFANA_DASHBOARD: 'true',
    K8S_PRIORITY_CLASS: 'orders-critical',
  }),
  { dashboardJson: dashboardJson() },
).filter((o) => MODELS[`${o.apiVersion}/${o.kind}`] !== undefined);
const schemaCases = [
  ...objects.map((o) => [`${o.kind}/${o.metadata?.name}`, o] as const),
  ...withOptions.map((o) => [`${o.kind}/${o.metadata?.name} (every option on)`, o] as const),
];

describe('render-k8s: schema', () => {
  it('emits the expected objects in apply order', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata?.name}`)).toEqual([
      'ServiceAccount/orders',
      'ConfigMap/orders-config',
      'NetworkPolicy/orders',
      'NetworkPolicy/orders-api',
      'NetworkPolicy/orders-worker',
      `Job/${job.metadata!.name}`,
      'Deployment/orders-api',
      'Deployment/orders-worker',
      'Service/orders-api',
      'HorizontalPodAutoscaler/orders-api',
      'HorizontalPodAutoscaler/orders-worker',
      'PodDisruptionBudget/orders-api',
      'PodDisruptionBudget/orders-worker',
    ]);
  });

  it.each(schemaCases)('%s validates against the Kubernetes schema', (_, object) => {
    const Model = MODELS[`${object.apiVersion}/${object.kind}`];
    expect(Model, `a kubernetes-models class for ${object.apiVersion} ${object.kind}`).toBeDefined();
    expect(() => new Model!(structuredClone(object) as never).validate()).not.toThrow();
  });

  it.each(schemaCases)('%s has no field unknown to Kubernetes', (_, object) => {
    const version = object.apiVersion!.split('/').at(-1)!;
    const type = `${version[0]!.toUpperCase()}${version.slice(1)}${object.kind}`;
    expect(unknownFields(object, type, '')).toEqual([]);
  });

  it('the validation would catch a broken object (so the tests above can fail)', () => {
    const broken = structuredClone(deployments.api) as unknown as {
      spec: { template: { spec: { containers: unknown } } };
    };
    broken.spec.template.spec.containers = 'api';
    expect(() => new Deployment(broken as never).validate()).toThrow();
    const typo = structuredClone(deployments.api);
    (container(typo) as unknown as Record<string, unknown>).readinesProbe = {};
    expect(unknownFields(typo, 'V1Deployment', '')).toEqual([
      '/spec/template/spec/containers/0/readinesProbe',
    ]);
  });
});

// --- output ----------------------------------------------------------------------------------

describe('render-k8s: output', () => {
  it('matches the golden file (UPDATE_GOLDEN=1 rewrites it)', () => {
    const text = toYaml(render());
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, text);
    expect(text).toBe(readFileSync(GOLDEN, 'utf8'));
  });

  it('is deterministic: the same input gives the same bytes, whatever the order of the environment', () => {
    const once = toYaml(render());
    const reversed = Object.fromEntries(Object.entries(GOLDEN_ENV).reverse());
    expect(toYaml(render())).toBe(once);
    expect(toYaml(render(reversed))).toBe(once);
  });

  it('parses back into the same objects (one YAML document per object, no anchors)', () => {
    const text = toYaml(objects);
    expect(text).not.toMatch(/[&*]a\d+\b/);
    expect(parseStream(text)).toEqual(JSON.parse(JSON.stringify(objects)));
  });

  it('never loads @kubernetes/client-node at run time (type-only imports)', () => {
    for (const file of [
      'src/k8s/render.ts',
      'src/k8s/template.ts',
      'src/k8s/config.ts',
      'src/k8s/cidr.ts',
      'src/k8s/keda.ts',
      'src/k8s/connection-budget.ts',
      'src/commands/render-k8s.ts',
    ]) {
      const source = readFileSync(join(ROOT, file), 'utf8');
      const imports = source.match(/^import\s[^;]*?from\s+'@kubernetes\/client-node';/gm) ?? [];
      for (const statement of imports) expect(statement).toMatch(/^import type /);
      expect(source).not.toMatch(/import\(\s*'@kubernetes\/client-node'/);
    }
    const built = join(ROOT, 'dist/k8s/render.js');
    if (existsSync(built)) {
      expect(readFileSync(built, 'utf8')).not.toMatch(/(from\s*|import\(\s*)['"]@kubernetes\/client-node/);
    }
  });
});

// --- credentials -----------------------------------------------------------------------------

describe('render-k8s: credentials only as secretKeyRef', () => {
  const text = toYaml(objects);

  it('no value anywhere carries a connection string or a password from the environment', () => {
    expect(text).not.toContain('postgres://');
    expect(text).not.toContain('nats://');
    for (const secret of ['s3cret', '0wn3r', 'natspass']) expect(text).not.toContain(secret);
  });

  it('the pods read DATABASE_URL, MIGRATE_DATABASE_URL and NATS_URL from the Secret', () => {
    const envOf = (c: V1Container) => new Map((c.env ?? []).map((e) => [e.name, e]));
    for (const d of Object.values(deployments)) {
      const env = envOf(container(d));
      expect(env.get('DATABASE_URL')?.valueFrom?.secretKeyRef).toEqual({
        name: 'orders-db',
        key: 'DATABASE_URL',
      });
      expect(env.get('NATS_URL')?.valueFrom?.secretKeyRef).toEqual({
        name: 'orders-db',
        key: 'NATS_URL',
        optional: true,
      });
      expect(env.has('MIGRATE_DATABASE_URL')).toBe(false);
    }
    const jobEnv = envOf(container(job));
    expect(jobEnv.get('MIGRATE_DATABASE_URL')?.valueFrom?.secretKeyRef).toEqual({
      name: 'orders-db',
      key: 'MIGRATE_DATABASE_URL',
    });
    expect(jobEnv.has('DATABASE_URL')).toBe(false);
  });

  it('every env entry with a credential-like name uses valueFrom, and no plain value looks like a URL with a user', () => {
    const all: V1EnvVar[] = [...Object.values(deployments), job].flatMap((d) => container(d).env ?? []);
    for (const e of all) {
      if (/URL|SECRET|PASSWORD|TOKEN|KEY/i.test(e.name)) expect(e.value, e.name).toBeUndefined();
      if (e.value !== undefined) expect(e.value).not.toMatch(/:\/\/[^/]*@/);
    }
    const data = find<k8sClient.V1ConfigMap>('ConfigMap', 'orders-config').data ?? {};
    for (const [key, value] of Object.entries(data)) {
      expect(['DATABASE_URL', 'MIGRATE_DATABASE_URL', 'NATS_URL']).not.toContain(key);
      expect(value).not.toMatch(/:\/\/[^/]*@/);
    }
  });

  it('K8S_DATABASE_SECRET names the Secret', () => {
    const renamed = render({ ...GOLDEN_ENV, K8S_DATABASE_SECRET: 'orders-prod-db' });
    const refs = JSON.stringify(renamed).match(/"secretKeyRef":\{"name":"[^"]+"/g) ?? [];
    expect(refs.length).toBe(5);
    for (const ref of refs) expect(ref).toContain('"orders-prod-db"');
  });
});

// --- properties, one by one ------------------------------------------------------------------

describe('render-k8s: production properties', () => {
  it('ServiceAccount mounts no token, and every pod uses it without a token', () => {
    expect(find<k8sClient.V1ServiceAccount>('ServiceAccount', 'orders').automountServiceAccountToken).toBe(
      false,
    );
    for (const d of [deployments.api, deployments.worker, job]) {
      expect(podSpec(d).serviceAccountName).toBe('orders');
      expect(podSpec(d).automountServiceAccountToken).toBe(false);
    }
  });

  it('ConfigMap carries the non-secret variables, normalised, with the shutdown delay defaulting to 5000', () => {
    const data = find<k8sClient.V1ConfigMap>('ConfigMap', 'orders-config').data;
    expect(data).toEqual({
      AUTH_AUDIENCE: 'orders',
      AUTH_ISSUER: 'https://idp.example.com/',
      DB_POOL_MAX: '20',
      LOG_LEVEL: 'info',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector.observability:4318',
      SHUTDOWN_DELAY_MS: '5000',
      SHUTDOWN_TIMEOUT_MS: '25000',
      WORKER_CONCURRENCY: '8',
      WORKER_PORT: '8081',
    });
    const config = loadK8sConfig({
      ...AUTH,
      K8S_IMAGE: IMAGE,
      WORKER_ENABLED: 'yes',
      IDEMPOTENCY_TTL_HOURS: ' 0.50 ',
      NOTIFY_FAILURE_RATE: '0.1',
    });
    expect(config.appEnv).toMatchObject({
      WORKER_ENABLED: 'true',
      IDEMPOTENCY_TTL_HOURS: '0.5',
      NOTIFY_FAILURE_RATE: '0.1',
    });
    for (const d of [deployments.api, deployments.worker, job]) {
      expect(container(d).envFrom).toEqual([{ configMapRef: { name: 'orders-config' } }]);
    }
  });

  it('a ConfigMap change rolls the Deployments (checksum annotation)', () => {
    const changed = render({ ...GOLDEN_ENV, LOG_LEVEL: 'debug' });
    const checksum = (d: Manifest) =>
      (d as V1Deployment).spec!.template.metadata!.annotations!['checksum/config'];
    const changedApi = changed.find((o) => o.kind === 'Deployment' && o.metadata?.name === 'orders-api')!;
    expect(checksum(changedApi)).not.toBe(checksum(deployments.api));
    expect(checksum(deployments.api)).toMatch(/^[0-9a-f]{64}$/);
  });

  it('API: `serve --no-worker` on 8080; worker: `worker` with health and metrics on WORKER_PORT', () => {
    expect(container(deployments.api).args).toEqual(['serve', '--no-worker']);
    expect(container(deployments.api).ports).toEqual([
      { name: 'http', containerPort: 8080, protocol: 'TCP' },
    ]);
    expect(container(deployments.api).env).toContainEqual({ name: 'PORT', value: '8080' });
    expect(container(deployments.worker).args).toEqual(['worker']);
    expect(container(deployments.worker).ports).toEqual([
      { name: 'http', containerPort: 8081, protocol: 'TCP' },
    ]);
    expect(container(deployments.api).command).toBeUndefined();
  });

  it('no Deployment sets replicas: the HPA owns it', () => {
    for (const d of Object.values(deployments)) expect(d.spec).not.toHaveProperty('replicas');
  });

  it('probes: startup and liveness on /healthz, readiness on /readyz, all three different', () => {
    for (const d of Object.values(deployments)) {
      const c = container(d);
      expect(c.startupProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
      expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
      const probes = [c.startupProbe, c.readinessProbe, c.livenessProbe].map((p) => JSON.stringify(p));
      expect(new Set(probes).size).toBe(3);
      // Liveness gives up later than readiness: a slow dependency makes a pod unready, not restarted.
      const budget = (p: k8sClient.V1Probe) => (p.periodSeconds ?? 10) * (p.failureThreshold ?? 3);
      expect(budget(c.livenessProbe!)).toBeGreaterThan(budget(c.readinessProbe!));
    }
  });

  it('requests and limits for cpu, memory and ephemeral-storage on every container', () => {
    for (const d of [deployments.api, deployments.worker, job]) {
      const { requests, limits } = container(d).resources ?? {};
      for (const resource of ['cpu', 'memory', 'ephemeral-storage']) {
        expect(requests?.[resource], `${d.metadata?.name} requests.${resource}`).toBeDefined();
        expect(limits?.[resource], `${d.metadata?.name} limits.${resource}`).toBeDefined();
      }
    }
  });

  it('non-root (UID/GID >= 10000), read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp', () => {
    for (const d of [deployments.api, deployments.worker, job]) {
      const pod = podSpec(d).securityContext!;
      expect(pod.runAsNonRoot).toBe(true);
      expect(pod.runAsUser).toBeGreaterThanOrEqual(10000);
      expect(pod.runAsGroup).toBeGreaterThanOrEqual(10000);
      expect(pod.seccompProfile).toEqual({ type: 'RuntimeDefault' });
      const c = container(d).securityContext!;
      expect(c.runAsNonRoot).toBe(true);
      expect(c.runAsUser).toBeGreaterThanOrEqual(10000);
      expect(c.readOnlyRootFilesystem).toBe(true);
      expect(c.allowPrivilegeEscalation).toBe(false);
      expect(c.privileged).toBe(false);
      expect(c.capabilities).toEqual({ drop: ['ALL'] });
      expect(c.seccompProfile).toEqual({ type: 'RuntimeDefault' });
    }
  });

  it('a writable emptyDir at /tmp', () => {
    for (const d of [deployments.api, deployments.worker, job]) {
      expect(container(d).volumeMounts).toEqual([{ name: 'tmp', mountPath: '/tmp' }]);
      expect(podSpec(d).volumes).toEqual([{ name: 'tmp', emptyDir: { sizeLimit: '64Mi' } }]);
    }
  });

  it('RollingUpdate never drops below capacity (maxUnavailable 0, maxSurge 25%)', () => {
    for (const d of Object.values(deployments)) {
      expect(d.spec!.strategy).toEqual({
        type: 'RollingUpdate',
        rollingUpdate: { maxUnavailable: 0, maxSurge: '25%' },
      });
      expect(d.spec!.revisionHistoryLimit).toBeGreaterThan(0);
      expect(d.spec!.revisionHistoryLimit).toBeLessThanOrEqual(10);
    }
  });

  it('shutdown: the app drains itself (SHUTDOWN_DELAY_MS), no preStop hook, grace period above delay + timeout', () => {
    for (const d of Object.values(deployments)) {
      expect(container(d).lifecycle).toBeUndefined();
      expect(podSpec(d).terminationGracePeriodSeconds).toBe(35);
    }
    const custom = render({ ...GOLDEN_ENV, SHUTDOWN_DELAY_MS: '10000', SHUTDOWN_TIMEOUT_MS: '50500' });
    const grace = (custom.find((o) => o.kind === 'Deployment') as V1Deployment).spec!.template.spec!
      .terminationGracePeriodSeconds!;
    expect(grace).toBeGreaterThan((10_000 + 50_500) / 1000);
    expect((custom[1] as k8sClient.V1ConfigMap).data).toMatchObject({
      SHUTDOWN_DELAY_MS: '10000',
      SHUTDOWN_TIMEOUT_MS: '50500',
    });
  });

  it('spreads pods over zones and nodes, and prefers different nodes', () => {
    for (const [component, d] of Object.entries(deployments)) {
      const spec = podSpec(d);
      const keys = spec.topologySpreadConstraints?.map((t) => t.topologyKey);
      expect(keys).toEqual(['topology.kubernetes.io/zone', 'kubernetes.io/hostname']);
      for (const t of spec.topologySpreadConstraints ?? []) {
        expect(t.maxSkew).toBe(1);
        expect(t.labelSelector?.matchLabels).toEqual(d.spec!.selector.matchLabels);
        expect(t.labelSelector?.matchLabels?.['app.kubernetes.io/component']).toBe(component);
      }
      expect(
        spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0]?.podAffinityTerm
          .topologyKey,
      ).toBe('kubernetes.io/hostname');
    }
  });

  it('image pinned, pulled Always (the registry checks the pull credentials on every start)', () => {
    for (const d of [deployments.api, deployments.worker, job]) {
      expect(container(d).image).toBe(IMAGE);
      expect(container(d).imagePullPolicy).toBe('Always');
    }
  });

  it('app.kubernetes.io labels everywhere; selectors are the stable subset of the pod labels', () => {
    for (const o of objects) {
      expect(o.metadata?.labels).toMatchObject({
        'app.kubernetes.io/name': 'orders',
        'app.kubernetes.io/instance': 'orders',
        'app.kubernetes.io/part-of': 'orders',
        'app.kubernetes.io/version': '1.4.2',
        'app.kubernetes.io/managed-by': 'orders-render-k8s',
      });
      expect(o.metadata?.namespace).toBe('orders');
    }
    for (const d of [...Object.values(deployments)]) {
      const selector = d.spec!.selector.matchLabels!;
      expect(Object.keys(selector).sort()).toEqual([
        'app.kubernetes.io/component',
        'app.kubernetes.io/instance',
        'app.kubernetes.io/name',
      ]);
      expect(d.spec!.template.metadata!.labels).toMatchObject(selector);
    }
  });

  it('Prometheus scrape annotations on the pods, on each one’s own port', () => {
    for (const [d, port] of [
      [deployments.api, '8080'],
      [deployments.worker, '8081'],
    ] as const) {
      expect(d.spec!.template.metadata!.annotations).toMatchObject({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': port,
        'prometheus.io/path': '/metrics',
      });
    }
  });

  it('Service: the API pods only, port 80 to the named port', () => {
    const svc = find<k8sClient.V1Service>('Service', 'orders-api');
    expect(svc.spec!.selector).toEqual(deployments.api.spec!.selector.matchLabels);
    expect(svc.spec!.ports).toEqual([
      { name: 'http', port: 80, targetPort: 'http', protocol: 'TCP', appProtocol: 'http' },
    ]);
  });

  it('an autoscaling/v2 HPA with behavior for each Deployment', () => {
    for (const name of ['orders-api', 'orders-worker']) {
      const hpa = find<k8sClient.V2HorizontalPodAutoscaler>('HorizontalPodAutoscaler', name);
      expect(hpa.apiVersion).toBe('autoscaling/v2');
      expect(hpa.spec!.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'Deployment', name });
      expect(hpa.spec!.minReplicas).toBe(2);
      expect(hpa.spec!.maxReplicas).toBe(10);
      expect(hpa.spec!.metrics?.[0]?.resource).toEqual({
        name: 'cpu',
        target: { type: 'Utilization', averageUtilization: 70 },
      });
      expect(hpa.spec!.behavior?.scaleDown?.stabilizationWindowSeconds).toBeGreaterThanOrEqual(60);
      expect(hpa.spec!.behavior?.scaleUp?.policies?.length).toBeGreaterThan(0);
    }
    const custom = render({
      ...GOLDEN_ENV,
      K8S_MIN_REPLICAS: '3',
      K8S_MAX_REPLICAS: '30',
      K8S_CPU_TARGET_PERCENT: '55',
      K8S_DB_MAX_CONNECTIONS: '2000',
    });
    const hpa = custom.find(
      (o) => o.kind === 'HorizontalPodAutoscaler',
    ) as k8sClient.V2HorizontalPodAutoscaler;
    expect([
      hpa.spec!.minReplicas,
      hpa.spec!.maxReplicas,
      hpa.spec!.metrics?.[0]?.resource?.target.averageUtilization,
    ]).toEqual([3, 30, 55]);
  });

  it('a policy/v1 PodDisruptionBudget for each Deployment, selecting its pods', () => {
    for (const [component, d] of Object.entries(deployments)) {
      const pdb = find<k8sClient.V1PodDisruptionBudget>('PodDisruptionBudget', `orders-${component}`);
      expect(pdb.apiVersion).toBe('policy/v1');
      expect(pdb.spec!.selector!.matchLabels).toEqual(d.spec!.selector.matchLabels);
      expect(pdb.spec!.maxUnavailable).toBe(1);
    }
  });

  it('NetworkPolicy: a default for every orders pod, no ingress; egress DNS to kube-system, the rest to the private ranges', () => {
    const np = find<k8sClient.V1NetworkPolicy>('NetworkPolicy', 'orders');
    expect(np.spec!.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(np.spec!.ingress).toBeUndefined();
    expect(np.spec!.podSelector!.matchLabels).toEqual({
      'app.kubernetes.io/name': 'orders',
      'app.kubernetes.io/instance': 'orders',
    });
    for (const d of [deployments.api, deployments.worker, job]) {
      expect(d.spec!.template.metadata!.labels).toMatchObject(np.spec!.podSelector!.matchLabels!);
    }
    const [dns, rest, ...others] = np.spec!.egress ?? [];
    expect(others).toEqual([]);
    expect(ports([dns!])).toEqual(['UDP/53', 'TCP/53']);
    expect(dns!.to).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } } },
    ]);
    expect(ports([rest!])).toEqual(['TCP/5432', 'TCP/4222', 'TCP/4317', 'TCP/4318', 'TCP/443']);
    expect(rest!.to).toEqual([
      { ipBlock: { cidr: '10.0.0.0/8' } },
      { ipBlock: { cidr: '172.16.0.0/12' } },
      { ipBlock: { cidr: '192.168.0.0/16' } },
      { ipBlock: { cidr: '100.64.0.0/10' } },
      { ipBlock: { cidr: 'fc00::/7', except: ['fd00:ec2::254/128'] } },
    ]);
    // Every egress rule names both where and which ports: nothing is open to everything.
    for (const rule of np.spec!.egress ?? []) {
      expect(rule.ports?.length).toBeGreaterThan(0);
      expect(rule.to?.length).toBeGreaterThan(0);
    }
    const custom = render({
      ...GOLDEN_ENV,
      OTEL_EXPORTER_OTLP_ENDPOINT: 'https://otlp.example.com',
      AUTH_JWKS_URL: 'https://keys.example.com/jwks',
    });
    const customNp = custom.find((o) => o.kind === 'NetworkPolicy') as k8sClient.V1NetworkPolicy;
    // 443 for both the collector and the keys: listed once.
    expect(ports(customNp.spec!.egress)).toEqual([
      'UDP/53',
      'TCP/53',
      'TCP/5432',
      'TCP/4222',
      'TCP/443',
      'TCP/4317',
      'TCP/4318',
    ]);
  });

  it('NetworkPolicy: the API port from K8S_INGRESS_FROM (default: its own namespace) and K8S_METRICS_FROM; the worker port from K8S_METRICS_FROM only', () => {
    const api = find<k8sClient.V1NetworkPolicy>('NetworkPolicy', 'orders-api');
    const worker = find<k8sClient.V1NetworkPolicy>('NetworkPolicy', 'orders-worker');
    expect(api.spec!.podSelector!.matchLabels).toEqual(deployments.api.spec!.selector.matchLabels);
    expect(worker.spec!.podSelector!.matchLabels).toEqual(deployments.worker.spec!.selector.matchLabels);
    expect(api.spec!.policyTypes).toEqual(['Ingress']);
    expect(worker.spec!.policyTypes).toEqual(['Ingress']);
    expect(ingressFrom(api)).toEqual([
      ['orders', 'TCP/8080'],
      ['monitoring', 'TCP/8080'],
    ]);
    expect(ingressFrom(worker)).toEqual([['monitoring', 'TCP/8081']]);
    // The migration Job's pods match no ingress policy: the default one admits nothing.
    const jobLabels = job.spec!.template.metadata!.labels!;
    for (const policy of [api, worker]) {
      const selected = Object.entries(policy.spec!.podSelector!.matchLabels!).every(
        ([k, v]) => jobLabels[k] === v,
      );
      expect(selected).toBe(false);
    }

    const custom = render(
      {
        ...GOLDEN_ENV,
        K8S_INGRESS_FROM: 'ingress-nginx, shop ,ingress-nginx',
        K8S_METRICS_FROM: 'prometheus,observability',
      },
      { namespace: 'shop' },
    );
    const np = (name: string) =>
      custom.find(
        (o) => o.kind === 'NetworkPolicy' && o.metadata?.name === name,
      ) as k8sClient.V1NetworkPolicy;
    expect(ingressFrom(np('orders-api'))).toEqual([
      ['ingress-nginx,shop', 'TCP/8080'],
      ['observability,prometheus', 'TCP/8080'],
    ]);
    expect(ingressFrom(np('orders-worker'))).toEqual([['observability,prometheus', 'TCP/8081']]);
    // Without K8S_INGRESS_FROM the API admits its own namespace, whichever --namespace names.
    const own = render(GOLDEN_ENV, { namespace: 'shop-eu' }).find(
      (o) => o.kind === 'NetworkPolicy' && o.metadata?.name === 'orders-api',
    ) as k8sClient.V1NetworkPolicy;
    expect(ingressFrom(own)[0]).toEqual(['shop-eu', 'TCP/8080']);
  });

  it('K8S_EGRESS_CIDRS: canonical blocks, each once, the metadata address excepted wherever it falls', () => {
    const custom = render({
      ...GOLDEN_ENV,
      K8S_EGRESS_CIDRS: '169.254.0.0/16, 10.20.0.0/16,FD00::/8,10.20.0.0/16,0.0.0.0/0',
    });
    const np = custom.find((o) => o.kind === 'NetworkPolicy') as k8sClient.V1NetworkPolicy;
    expect(np.spec!.egress![1]!.to).toEqual([
      { ipBlock: { cidr: '169.254.0.0/16', except: ['169.254.169.254/32'] } },
      { ipBlock: { cidr: '10.20.0.0/16' } },
      { ipBlock: { cidr: 'fd00::/8', except: ['fd00:ec2::254/128'] } },
      { ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.169.254/32'] } },
    ]);
  });

  it('WORKER_PORT must be a fixed port (the app alone may take 0, an ephemeral one)', () => {
    expect(() => loadK8sConfig({ K8S_IMAGE: IMAGE, WORKER_PORT: '0' })).toThrow(
      /WORKER_PORT: expected a fixed port/,
    );
    const same = render({ ...GOLDEN_ENV, WORKER_PORT: '8080' });
    const np = same.find(
      (o) => o.kind === 'NetworkPolicy' && o.metadata?.name === 'orders-worker',
    ) as k8sClient.V1NetworkPolicy;
    expect(ingressFrom(np)).toEqual([['monitoring', 'TCP/8080']]);
  });

  it('WORKER_PORT moves the worker port, its probes, annotations and NetworkPolicy together', () => {
    const custom = render({ ...GOLDEN_ENV, WORKER_PORT: '9091' });
    const worker = custom.find(
      (o) => o.metadata?.name === 'orders-worker' && o.kind === 'Deployment',
    ) as V1Deployment;
    expect(container(worker).ports?.[0]?.containerPort).toBe(9091);
    expect(worker.spec!.template.metadata!.annotations!['prometheus.io/port']).toBe('9091');
    expect((custom[1] as k8sClient.V1ConfigMap).data!.WORKER_PORT).toBe('9091');
  });

  it('migration Job: `migrate up`, bounded, cleaned up, named per image', () => {
    expect(container(job).args).toEqual(['migrate', 'up']);
    expect(job.spec!.backoffLimit).toBeGreaterThan(0);
    expect(job.spec!.activeDeadlineSeconds).toBeGreaterThan(0);
    expect(job.spec!.ttlSecondsAfterFinished).toBeGreaterThan(0);
    expect(podSpec(job).restartPolicy).toBe('Never');
    expect(job.metadata!.name).toMatch(/^orders-migrate-[0-9a-f]{10}$/);
    const other = render({ ...GOLDEN_ENV, K8S_IMAGE: 'registry.example.com/shop/orders:1.4.3' }).find(
      (o) => o.kind === 'Job',
    );
    expect(other!.metadata!.name).not.toBe(job.metadata!.name);
    const sameImage = render({ ...GOLDEN_ENV, LOG_LEVEL: 'debug' }).find((o) => o.kind === 'Job');
    expect(sameImage!.metadata!.name).toBe(job.metadata!.name);
  });

  it('--namespace and K8S_NAMESPACE set every namespace (the flag wins)', () => {
    const fromEnv = render({ ...GOLDEN_ENV, K8S_NAMESPACE: 'shop' });
    expect(new Set(fromEnv.map((o) => o.metadata?.namespace))).toEqual(new Set(['shop']));
    const fromFlag = render({ ...GOLDEN_ENV, K8S_NAMESPACE: 'shop' }, { namespace: 'shop-eu' });
    expect(new Set(fromFlag.map((o) => o.metadata?.namespace))).toEqual(new Set(['shop-eu']));
  });

  it('K8S_PROMETHEUS_RULE=true adds a PrometheusRule', () => {
    expect(objects.some((o) => o.kind === 'PrometheusRule')).toBe(false);
    const withRule = render({ ...GOLDEN_ENV, K8S_PROMETHEUS_RULE: 'true' });
    const rule = withRule.at(-1) as Manifest & {
      spec: { groups: { rules: { alert?: string; record?: string; expr: string }[] }[] };
    };
    expect(rule.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(rule.kind).toBe('PrometheusRule');
    const rules = rule.spec.groups.flatMap((g) => g.rules);
    const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
    // Every expression reads this namespace's series, directly or through a recording rule.
    for (const r of rules) {
      const usesRecorded = [...recorded].some((name) => r.expr.includes(name));
      expect(r.expr.includes('namespace="orders"') || usesRecorded, r.alert ?? r.record).toBe(true);
    }
    // Multi-window burn-rate alerts on the availability SLO.
    const alerts = rules.flatMap((r) => (r.alert ? [r.alert] : []));
    expect(alerts).toEqual(
      expect.arrayContaining(['OrdersAvailabilityFastBurn', 'OrdersAvailabilitySlowBurn']),
    );
  });
});

// --- image references and configuration errors ------------------------------------------------

describe('render-k8s: configuration', () => {
  const DIGEST = `sha256:${'0123456789abcdef'.repeat(4)}`;

  it.each([
    'orders:1.4.2',
    'registry.example.com/shop/orders:1.4.2',
    'host:5000/orders:2024.11.25-abc123',
    'localhost:5000/orders:v1',
    `orders@${DIGEST}`,
    `host:5000/shop/orders@${DIGEST}`,
    `registry.example.com/orders:1.4.2@${DIGEST}`,
    '[::1]:5000/orders:1',
  ])('accepts %s', (image) => {
    expect(parseImageReference(image)).toMatchObject({ ok: true });
  });

  it.each([
    ['orders', /no tag/],
    ['host:5000/orders', /no tag/],
    ['registry.example.com/shop/orders', /no tag/],
    ['orders:latest', /latest/],
    ['host:5000/orders:latest', /latest/],
    ['orders:LATEST', /latest/],
    [`orders:latest@${DIGEST}`, /latest/],
    ['orders@sha256:abc', /digest/],
    [`orders@md5:${'a'.repeat(32)}`, /digest/],
    ['Orders:1.0', /not a valid image reference/],
    ['orders:1.0 ', /not a valid image reference/],
    ['orders:', /not a valid image reference/],
    ['', /not a valid image reference/],
  ])('refuses %j', (image, why) => {
    const parsed = parseImageReference(image);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.problem).toMatch(why);
  });

  it('labels the version by tag, else by a digest prefix', () => {
    expect(loadK8sConfig({ ...AUTH, K8S_IMAGE: `orders@${DIGEST}` }).imageVersion).toBe(
      'sha256-0123456789ab',
    );
    expect(loadK8sConfig({ ...AUTH, K8S_IMAGE: `orders:${'v'.repeat(100)}` }).imageVersion).toHaveLength(63);
  });

  it('reports every invalid variable at once, each naming the variable or flag and what it expects', () => {
    let error: unknown;
    try {
      loadK8sConfig(
        {
          ...AUTH,
          K8S_IMAGE: 'orders:latest',
          K8S_NAMESPACE: 'Shop_EU',
          K8S_MIN_REPLICAS: '0',
          K8S_MAX_REPLICAS: 'ten',
          K8S_CPU_TARGET_PERCENT: '150',
          K8S_DATABASE_SECRET: 'Orders DB',
          K8S_PROMETHEUS_RULE: 'maybe',
          LOG_LEVEL: 'loud',
          DB_POOL_MAX: '0',
          WORKER_PORT: '70000',
          IDEMPOTENCY_TTL_HOURS: '-1',
          OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url',
          DATABASE_URL: 'not checked here: the pods read it from the Secret',
        },
        {},
      );
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const issues = (error as ConfigError).issues;
    const named = issues.map((i) => i.split(':')[0]);
    expect(named).toEqual([
      'K8S_NAMESPACE',
      'K8S_IMAGE',
      'K8S_MIN_REPLICAS',
      'K8S_MAX_REPLICAS',
      'K8S_CPU_TARGET_PERCENT',
      'K8S_DATABASE_SECRET',
      'K8S_PROMETHEUS_RULE',
      'LOG_LEVEL',
      'DB_POOL_MAX',
      'WORKER_PORT',
      'IDEMPOTENCY_TTL_HOURS',
      'OTEL_EXPORTER_OTLP_ENDPOINT',
    ]);
    for (const issue of issues) expect(issue).toMatch(/expected|uses the mutable tag|Invalid/);
  });

  it('names the flag when the flag carries the bad value, and both when the image is missing', () => {
    expect(() => loadK8sConfig({}, { image: 'orders', namespace: 'Bad' })).toThrow(
      /--namespace: expected[\s\S]*--image: "orders" has no tag/,
    );
    expect(() => loadK8sConfig({})).toThrow(/K8S_IMAGE \(or --image\): required/);
    expect(() =>
      loadK8sConfig({ ...AUTH, K8S_IMAGE: 'orders:latest' }, { image: 'orders:1.0' }),
    ).not.toThrow();
  });

  it('cross-checks replicas and backoff, and refuses an OTLP endpoint with credentials', () => {
    expect(() => loadK8sConfig({ K8S_IMAGE: IMAGE, K8S_MIN_REPLICAS: '5', K8S_MAX_REPLICAS: '3' })).toThrow(
      /K8S_MAX_REPLICAS: expected at least K8S_MIN_REPLICAS \(5\)/,
    );
    expect(() => loadK8sConfig({ K8S_IMAGE: IMAGE, WORKER_BACKOFF_MAX_MS: '10' })).toThrow(
      /WORKER_BACKOFF_MAX_MS/,
    );
    expect(() =>
      loadK8sConfig({ K8S_IMAGE: IMAGE, OTEL_EXPORTER_OTLP_ENDPOINT: 'https://u:p@otlp.example.com' }),
    ).toThrow(/OTEL_EXPORTER_OTLP_ENDPOINT: expected a URL without user or password/);
  });

  it('requires the issuer and audience unless AUTH_MODE=none, and opens egress to the keys only with jwt', () => {
    expect(() => loadK8sConfig({ K8S_IMAGE: IMAGE })).toThrow(
      /AUTH_ISSUER: required[\s\S]*AUTH_AUDIENCE: required/,
    );
    expect(() => loadK8sConfig({ K8S_IMAGE: IMAGE, AUTH_MODE: 'jwt', AUTH_ISSUER: 'https://idp' })).toThrow(
      /AUTH_AUDIENCE: required/,
    );
    const open = loadK8sConfig({ K8S_IMAGE: IMAGE, AUTH_MODE: 'none' });
    expect(open.appEnv.AUTH_MODE).toBe('none');
    expect(open.identityProviderPorts).toEqual([]);
    const fromFile = loadK8sConfig({ ...AUTH, K8S_IMAGE: IMAGE, AUTH_JWKS_URL: 'file:///keys/jwks.json' });
    expect(fromFile.identityProviderPorts).toEqual([]);
    const custom = loadK8sConfig({
      ...AUTH,
      K8S_IMAGE: IMAGE,
      AUTH_JWKS_URL: 'https://keys.example.com:8443/jwks',
    });
    expect(custom.identityProviderPorts).toEqual([8443]);
    expect(() =>
      loadK8sConfig({ ...AUTH, K8S_IMAGE: IMAGE, AUTH_JWKS_URL: 'https://u:p@keys.example.com/jwks' }),
    ).toThrow(/AUTH_JWKS_URL: expected a URL without user or password/);
  });

  it('treats empty variables as unset', () => {
    const config = loadK8sConfig({
      ...AUTH,
      K8S_IMAGE: IMAGE,
      K8S_NAMESPACE: '',
      LOG_LEVEL: '',
      K8S_MIN_REPLICAS: '',
    });
    expect(config.namespace).toBe('orders');
    expect(config.minReplicas).toBe(2);
    expect(config.appEnv).not.toHaveProperty('LOG_LEVEL');
  });
});

// --- the command -----------------------------------------------------------------------------

describe('render-k8s: the command', () => {
  const saved = { ...process.env };
  let stdout = '';
  beforeEach(() => {
    for (const key of Object.keys(process.env)) {
      if (key.startsWith('K8S_') || key in GOLDEN_ENV || /^(WORKER_|SHUTDOWN_|OTEL_)/.test(key))
        delete process.env[key];
    }
    Object.assign(process.env, GOLDEN_ENV);
    stdout = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout += String(chunk);
      return true;
    });
  });
  afterEach(() => {
    vi.restoreAllMocks();
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  });

  it('run() prints the golden YAML for the golden environment and returns 0', async () => {
    expect(await run({})).toBe(0);
    expect(stdout).toBe(readFileSync(GOLDEN, 'utf8'));
  });

  it('run() throws UsageError (exit 2) for an untagged or :latest image', async () => {
    await expect(run({ image: 'registry.example.com/orders' })).rejects.toThrow(UsageError);
    await expect(run({ image: 'host:5000/orders' })).rejects.toThrow(/has no tag/);
    await expect(run({ image: 'orders:latest' })).rejects.toThrow(
      /--image: "orders:latest" uses the mutable tag/,
    );
    delete process.env.K8S_IMAGE;
    await expect(run({})).rejects.toThrow(/K8S_IMAGE \(or --image\): required/);
    expect(stdout).toBe('');
  });

  it('--out DIR writes one NN-kind-name.yaml per object and a kustomization.yaml, and replaces only its own earlier files', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orders-k8s-'));
    try {
      writeFileSync(join(dir, 'README.md'), 'mine\n');
      expect(await run({ out: dir })).toBe(0);
      const first = readdirSync(dir).sort();
      expect(first).toContain('01-serviceaccount-orders.yaml');
      expect(first).toContain('07-deployment-orders-api.yaml');
      expect(first).toContain('README.md');
      const manifests = first.filter((f) => /^\d\d-/.test(f));
      expect(manifests).toHaveLength(objects.length);
      const together = manifests.flatMap((f) => parseStream(readFileSync(join(dir, f), 'utf8')));
      expect(together).toEqual(parseStream(readFileSync(GOLDEN, 'utf8')));
      const kustomization = readFileSync(join(dir, 'kustomization.yaml'), 'utf8');
      expect(kustomization.startsWith('# Generated by `orders render-k8s`')).toBe(true);
      expect(parseStream(kustomization)).toEqual([
        { apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization', resources: manifests },
      ]);

      // A new image renames the Job: the old Job file must not linger beside the new one.
      expect(await run({ out: dir, image: 'registry.example.com/shop/orders:1.4.3' })).toBe(0);
      const second = readdirSync(dir);
      expect(second.filter((f) => f.includes('-job-'))).toHaveLength(1);
      const listed = (
        parseStream(readFileSync(join(dir, 'kustomization.yaml'), 'utf8'))[0] as unknown as {
          resources: string[];
        }
      ).resources;
      expect(listed.sort()).toEqual(second.filter((f) => /^\d\d-/.test(f)).sort());
      expect(readFileSync(join(dir, 'README.md'), 'utf8')).toBe('mine\n');
      expect(stdout).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--out refuses a directory holding a kustomization.yaml it did not write, and leaves it alone', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orders-k8s-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), 'resources: []\n');
      await expect(run({ out: dir })).rejects.toThrow(/kustomization\.yaml that render-k8s did not write/);
      expect(readdirSync(dir)).toEqual(['kustomization.yaml']);
      expect(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')).toBe('resources: []\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--out refuses a path that is a file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'orders-k8s-'));
    try {
      writeFileSync(join(dir, 'file'), '');
      await expect(run({ out: join(dir, 'file') })).rejects.toThrow(UsageError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('render-k8s: the built binary', () => {
  const bin = join(ROOT, 'bin/orders.js');
  const spawn = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [bin, 'render-k8s', ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      encoding: 'utf8',
      timeout: 20_000,
    });

  it.skipIf(!existsSync(join(ROOT, 'dist/cli.js')))('exits 2 for an untagged image, naming --image', () => {
    const result = spawn(['--image', 'x']);
    expect(result.status).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/--image: "x" has no tag/);
  });

  it.skipIf(!existsSync(join(ROOT, 'dist/cli.js')))('prints the same bytes as the golden file', () => {
    const result = spawn([], GOLDEN_ENV);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
    expect(result.stdout).toBe(readFileSync(GOLDEN, 'utf8'));
  });
});
