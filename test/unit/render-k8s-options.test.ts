/**
 * render-k8s's optional objects and the checks that refuse a configuration that cannot work:
 * KEDA's ScaledObject (K8S_AUTOSCALER=keda), the Prometheus Operator's ServiceMonitor and
 * PodMonitor, the Grafana dashboard ConfigMap, K8S_PRIORITY_CLASS, the connection budget
 * (K8S_DB_MAX_CONNECTIONS), the new variables' validation, and `kubectl kustomize` of `--out DIR`
 * building the same objects as the plain output.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {
  V1ConfigMap,
  V1Deployment,
  V1Job,
  V1Service,
  V2HorizontalPodAutoscaler,
} from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ConfigError } from '../../src/config.js';
import { loadK8sConfig } from '../../src/k8s/config.js';
import { connectionsAtScaleOut, K8S_DEFAULT_DB_POOL_MAX } from '../../src/k8s/connection-budget.js';
import { dashboardJson } from '../../src/k8s/dashboard.js';
import { dueBacklogQuery } from '../../src/k8s/keda.js';
import { loadRenderInputs, type Manifest, renderManifests, toFiles, toYaml } from '../../src/k8s/render.js';
import { readTemplate } from '../../src/k8s/template.js';
import { K8S_ALL_OPTIONS_ENV, K8S_BASE_ENV, renderK8s } from '../helpers/k8s-render.js';

const BASE = K8S_BASE_ENV;
const ALL_ON = K8S_ALL_OPTIONS_ENV;

type Env = Record<string, string | undefined>;

const render = (env: Env, flags = {}): Promise<Manifest[]> => renderK8s(env, flags);

function find<T>(objects: Manifest[], kind: string, name: string): T {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`no ${kind}/${name}`);
  return found as T;
}

function problems(env: Env): string[] {
  try {
    loadK8sConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.issues];
    throw error;
  }
  return [];
}

interface ScaledObject {
  spec: {
    scaleTargetRef: { apiVersion: string; kind: string; name: string; envSourceContainerName: string };
    minReplicaCount: number;
    maxReplicaCount: number;
    advanced: { horizontalPodAutoscalerConfig: { behavior: unknown } };
    triggers: { type: string; name: string; metricType?: string; metadata: Record<string, string> }[];
  };
}

describe('render-k8s: K8S_AUTOSCALER=keda', () => {
  it('replaces the worker HPA with a ScaledObject on the worker Deployment; the API keeps its HPA', async () => {
    const hpa = await render(BASE);
    const keda = await render({ ...BASE, K8S_AUTOSCALER: 'keda' });
    const kinds = (objects: Manifest[]) => objects.map((o) => `${o.kind}/${o.metadata?.name}`);
    expect(kinds(hpa)).toContain('HorizontalPodAutoscaler/orders-worker');
    expect(kinds(keda)).not.toContain('HorizontalPodAutoscaler/orders-worker');
    expect(kinds(keda)).toContain('HorizontalPodAutoscaler/orders-api');
    // Same place in apply order, so the two outputs differ only in that object.
    expect(kinds(keda)).toEqual(
      kinds(hpa).map((k) =>
        k === 'HorizontalPodAutoscaler/orders-worker' ? 'ScaledObject/orders-worker' : k,
      ),
    );
    const so = find<Manifest & ScaledObject>(keda, 'ScaledObject', 'orders-worker');
    expect(so.apiVersion).toBe('keda.sh/v1alpha1');
    const worker = find<V1Deployment>(keda, 'Deployment', 'orders-worker');
    const container = worker.spec!.template.spec!.containers[0]!;
    expect(so.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: 'orders-worker',
      envSourceContainerName: container.name,
    });
    expect([so.spec.minReplicaCount, so.spec.maxReplicaCount]).toEqual([2, 10]);
  });

  it('scales at the HPA’s pace: the same behavior block, from the one shared template', async () => {
    const keda = await render({ ...BASE, K8S_AUTOSCALER: 'keda' });
    const so = find<ScaledObject>(keda, 'ScaledObject', 'orders-worker');
    const api = find<V2HorizontalPodAutoscaler>(keda, 'HorizontalPodAutoscaler', 'orders-api');
    const shared = readTemplate('autoscaling-behavior.yaml');
    expect(so.spec.advanced.horizontalPodAutoscalerConfig.behavior).toEqual(shared);
    expect(api.spec!.behavior).toEqual(shared);
    expect(readFileSync(new URL('../../templates/k8s/hpa.yaml', import.meta.url), 'utf8')).toMatch(
      /^ {2}behavior: \$\{behavior\}$/m,
    );
  });

  it('triggers: postgresql on the due backlog from the container’s DATABASE_URL (a secretKeyRef), and cpu', async () => {
    const keda = await render({
      ...BASE,
      K8S_AUTOSCALER: 'keda',
      K8S_WORKER_TARGET_BACKLOG: '25',
      K8S_MAX_REPLICAS: '8',
      K8S_CPU_TARGET_PERCENT: '60',
    });
    const so = find<ScaledObject>(keda, 'ScaledObject', 'orders-worker');
    expect(so.spec.triggers).toEqual([
      {
        type: 'postgresql',
        name: 'due-backlog',
        metadata: {
          connectionFromEnv: 'DATABASE_URL',
          query: dueBacklogQuery(25, 8),
          targetQueryValue: '25',
          activationTargetQueryValue: '0',
        },
      },
      { type: 'cpu', name: 'cpu', metricType: 'Utilization', metadata: { value: '60' } },
    ]);
    expect(so.spec.triggers[0]!.metadata.query).toContain('LIMIT 200)');
    const worker = find<V1Deployment>(keda, 'Deployment', 'orders-worker');
    const env = worker.spec!.template.spec!.containers[0]!.env ?? [];
    expect(env.find((e) => e.name === 'DATABASE_URL')).toEqual({
      name: 'DATABASE_URL',
      valueFrom: { secretKeyRef: { name: 'orders-db', key: 'DATABASE_URL' } },
    });
    expect(toYaml(keda)).not.toMatch(/postgres:\/\//);
  });

  it('defaults: K8S_WORKER_TARGET_BACKLOG 100, capped at 100 × K8S_MAX_REPLICAS', async () => {
    const so = find<ScaledObject>(
      await render({ ...BASE, K8S_AUTOSCALER: 'KEDA ' }),
      'ScaledObject',
      'orders-worker',
    );
    expect(so.spec.triggers[0]!.metadata.targetQueryValue).toBe('100');
    expect(so.spec.triggers[0]!.metadata.query).toBe(dueBacklogQuery(100, 10));
    expect(so.spec.triggers[0]!.metadata.query).toContain('LIMIT 1000)');
  });
});

describe('render-k8s: K8S_PROMETHEUS_OPERATOR=true', () => {
  it('a ServiceMonitor for the API Service: its labels, its port name, /metrics', async () => {
    const objects = await render({ ...BASE, K8S_PROMETHEUS_OPERATOR: 'true' });
    const sm = find<Manifest & { spec: Record<string, unknown> }>(objects, 'ServiceMonitor', 'orders-api');
    const svc = find<V1Service>(objects, 'Service', 'orders-api');
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    const spec = sm.spec as {
      selector: { matchLabels: Record<string, string> };
      endpoints: { port: string; path: string; interval: string; scrapeTimeout: string }[];
    };
    expect(svc.metadata!.labels).toMatchObject(spec.selector.matchLabels);
    // Selects the API's Service only (labels that never change between releases).
    expect(spec.selector.matchLabels).toEqual(svc.spec!.selector);
    expect(spec.endpoints).toHaveLength(1);
    expect(svc.spec!.ports!.map((p) => p.name)).toContain(spec.endpoints[0]!.port);
    expect(spec.endpoints[0]).toMatchObject({ port: 'http', path: '/metrics' });
    const seconds = (d: string) => Number(/^(\d+)s$/.exec(d)?.[1]);
    expect(seconds(spec.endpoints[0]!.scrapeTimeout)).toBeLessThan(seconds(spec.endpoints[0]!.interval));
  });

  it('a PodMonitor for the worker pods (no Service), on their port named http', async () => {
    const objects = await render({ ...BASE, K8S_PROMETHEUS_OPERATOR: 'true' });
    const pm = find<Manifest & { spec: Record<string, unknown> }>(objects, 'PodMonitor', 'orders-worker');
    const spec = pm.spec as {
      selector: { matchLabels: Record<string, string> };
      podMetricsEndpoints: { port: string; path: string }[];
    };
    const labelsOf = (name: string) =>
      find<V1Deployment>(objects, 'Deployment', name).spec!.template.metadata!.labels!;
    const selects = (labels: Record<string, string>) =>
      Object.entries(spec.selector.matchLabels).every(([k, v]) => labels[k] === v);
    expect(selects(labelsOf('orders-worker'))).toBe(true);
    expect(selects(labelsOf('orders-api'))).toBe(false);
    const worker = find<V1Deployment>(objects, 'Deployment', 'orders-worker');
    const portNames = worker.spec!.template.spec!.containers[0]!.ports!.map((p) => p.name);
    expect(spec.podMetricsEndpoints).toEqual([expect.objectContaining({ port: 'http', path: '/metrics' })]);
    expect(portNames).toContain('http');
  });

  it('none of it by default, and the PrometheusRule stays behind K8S_PROMETHEUS_RULE', async () => {
    const kinds = (await render(BASE)).map((o) => o.kind);
    for (const kind of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule', 'ScaledObject']) {
      expect(kinds).not.toContain(kind);
    }
    const operatorOnly = (await render({ ...BASE, K8S_PROMETHEUS_OPERATOR: 'true' })).map((o) => o.kind);
    expect(operatorOnly).not.toContain('PrometheusRule');
  });
});

describe('render-k8s: K8S_GRAFANA_DASHBOARD=true', () => {
  it('a ConfigMap orders-dashboard labelled grafana_dashboard: "1", the dashboard JSON under orders.json', async () => {
    const objects = await render({ ...BASE, K8S_GRAFANA_DASHBOARD: 'true' });
    const cm = find<V1ConfigMap>(objects, 'ConfigMap', 'orders-dashboard');
    expect(cm.metadata!.labels).toMatchObject({ grafana_dashboard: '1', 'app.kubernetes.io/name': 'orders' });
    expect(cm.metadata!.namespace).toBe('orders');
    expect(Object.keys(cm.data ?? {})).toEqual(['orders.json']);
    expect(cm.data!['orders.json']).toBe(dashboardJson());
    expect(() => JSON.parse(cm.data!['orders.json']!)).not.toThrow();
    expect((await render(BASE)).some((o) => o.metadata?.name === 'orders-dashboard')).toBe(false);
  });

  it('the dashboard is loaded only when asked for, and rendering without it is a programming error', async () => {
    expect(await loadRenderInputs(loadK8sConfig(BASE))).toEqual({});
    expect(() => renderManifests(loadK8sConfig({ ...BASE, K8S_GRAFANA_DASHBOARD: 'true' }))).toThrow(
      /needs the dashboard JSON/,
    );
  });
});

describe('render-k8s: K8S_PRIORITY_CLASS', () => {
  it('sets priorityClassName on both Deployments and the migration Job, and nothing when unset', async () => {
    const pods = (objects: Manifest[]) =>
      objects
        .filter((o) => o.kind === 'Deployment' || o.kind === 'Job')
        .map((o) => (o as V1Deployment | V1Job).spec!.template.spec!);
    const set = pods(await render({ ...BASE, K8S_PRIORITY_CLASS: 'orders-critical' }));
    expect(set).toHaveLength(3);
    for (const pod of set) expect(pod.priorityClassName).toBe('orders-critical');
    for (const pod of pods(await render(BASE))) expect(pod).not.toHaveProperty('priorityClassName');
  });

  it.each([['Orders_High'], ['-high'], ['a'.repeat(254)]])(
    'refuses %j, naming K8S_PRIORITY_CLASS',
    (value) => {
      expect(problems({ ...BASE, K8S_PRIORITY_CLASS: value })).toEqual([
        expect.stringMatching(/^K8S_PRIORITY_CLASS: expected a PriorityClass name/),
      ]);
    },
  );
});

describe('render-k8s: connection budget (K8S_DB_MAX_CONNECTIONS)', () => {
  it('the defaults fit PostgreSQL’s default 100, so render-k8s writes its own DB_POOL_MAX', async () => {
    const config = loadK8sConfig(BASE);
    expect(config.dbMaxConnections).toBe(100);
    expect(config.appEnv.DB_POOL_MAX).toBe(String(K8S_DEFAULT_DB_POOL_MAX));
    const hpa = connectionsAtScaleOut({ maxReplicas: 10, poolMax: K8S_DEFAULT_DB_POOL_MAX, keda: false });
    expect(hpa).toEqual({ pods: 13, surge: 3, api: 39, worker: 39, migration: 1, keda: 0, total: 79 });
    const keda = connectionsAtScaleOut({ maxReplicas: 10, poolMax: K8S_DEFAULT_DB_POOL_MAX, keda: true });
    expect(keda.total).toBe(80);
    expect(keda.total).toBeLessThanOrEqual(100);
    // The surge is the Deployments' own maxSurge.
    const api = find<V1Deployment>(await render(ALL_ON), 'Deployment', 'orders-api');
    expect(api.spec!.strategy!.rollingUpdate!.maxSurge).toBe('25%');
  });

  it('refuses, with the arithmetic and the fixes, a configuration that exceeds it (the app’s own default pool of 10)', () => {
    const issues = problems({ ...BASE, DB_POOL_MAX: '10' });
    expect(issues).toHaveLength(1);
    expect(issues[0]).toBe(
      'K8S_DB_MAX_CONNECTIONS: 261 connections at full scale-out exceed 100: ' +
        'API 13 pods (K8S_MAX_REPLICAS 10 + 3 surging in a rollout) × DB_POOL_MAX 10 = 130 + ' +
        'worker 13 × 10 = 130 + migration Job 1 = 261. Fix one of: put PgBouncer (transaction pooling) in ' +
        'front of PostgreSQL and raise K8S_DB_MAX_CONNECTIONS to the client connections it accepts ' +
        '(max_client_conn); lower DB_POOL_MAX (at most 3 fits); lower K8S_MAX_REPLICAS (at most 3 fits)',
    );
  });

  it('counts KEDA’s scaler connection, and each fix it names really fits', () => {
    // 2 × 13 × 3 + 1 = 79 fits 79; KEDA's scaler makes it 80.
    expect(problems({ ...BASE, K8S_DB_MAX_CONNECTIONS: '79' })).toEqual([]);
    const [issue] = problems({ ...BASE, K8S_DB_MAX_CONNECTIONS: '79', K8S_AUTOSCALER: 'keda' });
    expect(issue).toMatch(/= 39 \+ worker 13 × 3 = 39 \+ migration Job 1 \+ KEDA postgresql scaler 1 = 80\./);
    const pool = Number(/at most (\d+) fits\); lower K8S_MAX/.exec(issue!)?.[1]);
    const replicas = Number(/K8S_MAX_REPLICAS \(at most (\d+) fits/.exec(issue!)?.[1]);
    const env = { ...BASE, K8S_DB_MAX_CONNECTIONS: '79', K8S_AUTOSCALER: 'keda' };
    expect(problems({ ...env, DB_POOL_MAX: String(pool) })).toEqual([]);
    expect(problems({ ...env, DB_POOL_MAX: String(pool + 1) })).toHaveLength(1);
    expect(problems({ ...env, K8S_MAX_REPLICAS: String(replicas) })).toEqual([]);
    expect(problems({ ...env, K8S_MAX_REPLICAS: String(replicas + 1) })).toHaveLength(1);
  });

  it('raising K8S_DB_MAX_CONNECTIONS (behind PgBouncer) accepts the larger pools', () => {
    expect(problems({ ...BASE, DB_POOL_MAX: '10', K8S_DB_MAX_CONNECTIONS: '261' })).toEqual([]);
    expect(
      loadK8sConfig({ ...BASE, DB_POOL_MAX: '10', K8S_DB_MAX_CONNECTIONS: '261' }).appEnv.DB_POOL_MAX,
    ).toBe('10');
  });
});

describe('render-k8s: the new variables', () => {
  it('reports every bad value at once, each naming its variable and what it expects', () => {
    const issues = problems({
      ...BASE,
      K8S_PROMETHEUS_OPERATOR: 'sometimes',
      K8S_GRAFANA_DASHBOARD: 'y',
      K8S_AUTOSCALER: 'vpa',
      K8S_WORKER_TARGET_BACKLOG: '0',
      K8S_INGRESS_FROM: 'ingress-nginx,Bad_NS',
      K8S_METRICS_FROM: 'monitoring,,x',
      K8S_EGRESS_CIDRS: '10.0.0.0/8,10.1.2.3/8,fc00::/7,300.0.0.0/8',
      K8S_DB_MAX_CONNECTIONS: 'lots',
      K8S_PRIORITY_CLASS: 'High',
    });
    expect(issues.map((i) => i.split(':')[0])).toEqual([
      'K8S_PROMETHEUS_OPERATOR',
      'K8S_GRAFANA_DASHBOARD',
      'K8S_AUTOSCALER',
      'K8S_WORKER_TARGET_BACKLOG',
      'K8S_INGRESS_FROM',
      'K8S_METRICS_FROM',
      'K8S_EGRESS_CIDRS',
      'K8S_EGRESS_CIDRS',
      'K8S_DB_MAX_CONNECTIONS',
      'K8S_PRIORITY_CLASS',
    ]);
    const text = issues.join('\n');
    expect(text).toContain('K8S_AUTOSCALER: expected hpa or keda (got "vpa")');
    expect(text).toContain('"Bad_NS" is not one');
    expect(text).toContain('no empty item');
    expect(text).toContain('"10.1.2.3/8" has host bits set (the network is 10.0.0.0/8)');
    expect(text).toContain('"300.0.0.0/8" has an invalid IPv4 address');
  });

  it('refuses the metadata address itself as an egress block', () => {
    for (const value of ['169.254.169.254/32', 'FD00:EC2::254/128']) {
      expect(problems({ ...BASE, K8S_EGRESS_CIDRS: value })).toEqual([
        expect.stringMatching(/^K8S_EGRESS_CIDRS: .* is the cloud metadata address/),
      ]);
    }
  });

  it('defaults: hpa, backlog 100, own namespace in, monitoring for metrics, the private ranges out, 100 connections', () => {
    const config = loadK8sConfig(BASE, { namespace: 'shop' });
    expect(config).toMatchObject({
      autoscaler: 'hpa',
      workerTargetBacklog: 100,
      ingressFrom: ['shop'],
      metricsFrom: ['monitoring'],
      dbMaxConnections: 100,
      prometheusOperator: false,
      grafanaDashboard: false,
      priorityClass: undefined,
    });
    expect(config.egress.map((b) => b.cidr)).toEqual([
      '10.0.0.0/8',
      '172.16.0.0/12',
      '192.168.0.0/16',
      '100.64.0.0/10',
      'fc00::/7',
    ]);
  });
});

// --- Kustomize --------------------------------------------------------------------------------

const KUBECTL = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p));

/** Objects in a canonical order: kustomize sorts by kind (legacy order), render-k8s by apply order. */
function canonical(objects: unknown[]): string[] {
  return objects.map((o) => JSON.stringify(sortKeys(o))).sort();
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}

describe.skipIf(!KUBECTL)(
  `render-k8s --out: kubectl kustomize (${KUBECTL ?? 'kubectl not installed: skipped'})`,
  () => {
    it.each([
      ['defaults', BASE],
      ['every option on', ALL_ON],
    ])('builds exactly the objects of the plain output (%s)', async (_, env) => {
      const objects = await render(env);
      const plain = parseAllDocuments(toYaml(objects)).map((d) => d.toJS());
      const dir = mkdtempSync(join(tmpdir(), 'orders-kustomize-'));
      try {
        for (const file of toFiles(objects)) writeFileSync(join(dir, file.name), file.content);
        expect(readdirSync(dir)).toContain('kustomization.yaml');
        const built = spawnSync(KUBECTL!, ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 });
        expect(built.stderr).toBe('');
        expect(built.status).toBe(0);
        const docs = parseAllDocuments(built.stdout);
        for (const d of docs) expect(d.errors).toEqual([]);
        const fromKustomize = docs.map((d) => d.toJS());
        expect(fromKustomize).toHaveLength(plain.length);
        // Kustomize reorders by kind, so compare as sorted lists of objects.
        expect(canonical(fromKustomize)).toEqual(canonical(plain));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
