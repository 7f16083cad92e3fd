/**
 * Every PromQL expression the project ships (the Grafana dashboard and the PrometheusRule in
 * templates/k8s/prometheus-rule.yaml) names only metrics the service really exports, and only
 * labels those metrics carry. The truth is a scrape: `/metrics` of the API (`serve --no-worker`
 * with AUTH_MODE=jwt, as the Kubernetes API Deployment runs it) and of the worker's probe server
 * (`orders worker` with the partner simulation), each with prom-client's default metrics and the
 * pool gauges as the commands wire them, after one order round trip so labelled series exist.
 * Runs on PostgreSQL or the embedded PGlite.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevKeyPair, generateDevKeyPair, signDevToken } from '../../src/auth/dev-keys.js';
import { createKeyStore } from '../../src/auth/key-store.js';
import { createTokenVerifier } from '../../src/auth/verifier.js';
import { loadConfig } from '../../src/config.js';
import { buildDashboard, type GraphPanel, NAMESPACE_QUERY } from '../../src/k8s/dashboard.js';
import { readTemplate } from '../../src/k8s/template.js';
import { createInProcessSimulator, type PartnerSimulator } from '../../src/messaging/partner-simulator.js';
import { createMetrics } from '../../src/platform/metrics.js';
import { sleep } from '../../src/platform/shutdown.js';
import { createAuthentication } from '../../src/server/plugins/authentication.js';
import { createWorker, type Worker, workerOptionsFromConfig } from '../../src/worker/index.js';
import { closeProbeServer, createProbeServer, listenProbeServer } from '../../src/worker/probe-server.js';
import { buildTestApp, postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase, testLogger } from '../helpers/db.js';
import {
  type Exposition,
  mergeExpositions,
  metricNames,
  parseExposition,
  parsePromql,
} from '../helpers/promql.js';

/** Labels Prometheus attaches at scrape time (target labels of the ServiceMonitor/PodMonitor). */
const TARGET_LABELS = new Set(['namespace', 'pod', 'job', 'instance', 'container', 'service', 'endpoint']);

interface Shipped {
  where: string;
  expr: string;
}

/** Metrics an expression names that neither the exposition nor a recording rule provides. */
function unknownMetrics(expr: string, exported: Exposition, recorded: Set<string>): string[] {
  return metricNames(expr).filter((name) => !exported.names.has(name) && !recorded.has(name));
}

/**
 * Labels an expression uses that the series do not carry: each matcher's label on its own
 * metric, each grouping label on at least one metric the expression reads. Target labels are
 * always there; recorded series are not checked (their labels are whatever their rule keeps).
 */
function unknownLabels(expr: string, exported: Exposition, recorded: Set<string>): string[] {
  const { selectors, groupingLabels } = parsePromql(expr);
  const problems: string[] = [];
  const labelsOf = (metric: string) => exported.labels.get(metric) ?? new Set<string>();
  for (const { metric, matchers } of selectors) {
    if (!metric || recorded.has(metric)) continue;
    for (const { label } of matchers) {
      if (!TARGET_LABELS.has(label) && !labelsOf(metric).has(label)) problems.push(`${metric}{${label}}`);
    }
  }
  const read = selectors.map((s) => s.metric).filter((m): m is string => !!m);
  if (read.some((m) => recorded.has(m))) return problems;
  for (const label of groupingLabels) {
    if (!TARGET_LABELS.has(label) && !read.some((m) => labelsOf(m).has(label)))
      problems.push(`by (${label})`);
  }
  return problems;
}

/** Every string value under an `expr` key, with where it was, and every `record` name. */
function rulesOf(node: unknown, path = 'spec'): { exprs: Shipped[]; records: string[] } {
  const exprs: Shipped[] = [];
  const records: string[] = [];
  const walk = (value: unknown, at: string) => {
    if (Array.isArray(value)) {
      for (const [i, item] of value.entries()) walk(item, `${at}[${i}]`);
    } else if (value && typeof value === 'object') {
      const entries = Object.entries(value);
      const named =
        (value as { alert?: string; record?: string }).alert ?? (value as { record?: string }).record;
      for (const [key, child] of entries) {
        if (key === 'expr' && typeof child === 'string') exprs.push({ where: `${named ?? at}`, expr: child });
        else if (key === 'record' && typeof child === 'string') records.push(child);
        else walk(child, `${at}.${key}`);
      }
    }
  };
  walk(node, path);
  return { exprs, records };
}

function dashboardExprs(): Shipped[] {
  return buildDashboard()
    .panels.filter((p): p is GraphPanel => p.type !== 'row')
    .flatMap((panel) => panel.targets.map((t) => ({ where: `${panel.title} ${t.refId}`, expr: t.expr })));
}

describe('PromQL metric-name extraction', () => {
  const exported = parseExposition(
    [
      '# HELP http_request_duration_seconds d',
      '# TYPE http_request_duration_seconds histogram',
      'http_request_duration_seconds_bucket{le="0.1",method="POST",route="/orders",status_code="201"} 1',
      'http_request_duration_seconds_count{method="POST",route="/orders",status_code="201"} 1',
      '# TYPE orders_status_transitions_total counter',
      'orders_status_transitions_total{from="pending",to="confirmed"} 1',
      '# TYPE orders_auth_failures_total counter',
    ].join('\n'),
  );

  it('finds metrics, not functions, keywords, grouping labels, matcher values, strings or durations', () => {
    expect(
      metricNames(
        'sum by (route, le) (rate(http_request_duration_seconds_bucket{namespace="$namespace",route=~"/orders|sum_total"}[$__rate_interval] offset 1h30m))',
      ),
    ).toEqual(['http_request_duration_seconds_bucket']);
    expect(
      metricNames(
        'histogram_quantile(0.99, sum(rate(x_bucket{le!="+Inf"}[5m:30s])) by (le)) > bool 1e-3 and on (pod) group_left(reason) y_total unless ignoring (x) z @ start()',
      ),
    ).toEqual(['x_bucket', 'y_total', 'z']);
    expect(
      metricNames('label_replace(up, "dst", "$1", "src", "(.*)") or vector(0) # sum(hidden_total)'),
    ).toEqual(['up']);
    expect(metricNames('{__name__="named_total",job="a"} / count without (pod) (other)')).toEqual([
      'named_total',
      'other',
    ]);
    expect(metricNames('orders:post_errors:ratio_rate1h > (14.4 * 0.001)')).toEqual([
      'orders:post_errors:ratio_rate1h',
    ]);
  });

  it('reads grouping labels and matchers', () => {
    const refs = parsePromql(
      'sum by (route) (rate(a_total{namespace="ns", status_code=~"5.."}[5m])) / ignoring(x) b',
    );
    expect(refs.groupingLabels).toEqual(['route', 'x']);
    expect(refs.selectors).toEqual([
      {
        metric: 'a_total',
        matchers: [
          { label: 'namespace', op: '=', value: 'ns' },
          { label: 'status_code', op: '=~', value: '5..' },
        ],
      },
      { metric: 'b', matchers: [] },
    ]);
  });

  it('expands a histogram into _bucket, _count and _sum, and counts a labelled metric without samples', () => {
    expect([...exported.names].sort()).toEqual([
      'http_request_duration_seconds_bucket',
      'http_request_duration_seconds_count',
      'http_request_duration_seconds_sum',
      'orders_auth_failures_total',
      'orders_status_transitions_total',
    ]);
    expect([...exported.labels.get('http_request_duration_seconds_bucket')!].sort()).toEqual([
      'le',
      'method',
      'route',
      'status_code',
    ]);
  });

  it('reports a misspelt metric, an unrecorded rule name and a label the metric does not have', () => {
    const recorded = new Set(['orders:post_errors:ratio_rate5m']);
    expect(
      unknownMetrics(
        'sum(rate(orders_status_transition_total[5m])) + http_request_duration_seconds',
        exported,
        recorded,
      ),
    ).toEqual(['http_request_duration_seconds', 'orders_status_transition_total']);
    expect(unknownMetrics('orders:post_errors:ratio_rate1h > 0', exported, recorded)).toEqual([
      'orders:post_errors:ratio_rate1h',
    ]);
    expect(unknownMetrics('orders:post_errors:ratio_rate5m > 0', exported, recorded)).toEqual([]);
    expect(
      unknownLabels(
        'sum by (route, statuscode) (rate(http_request_duration_seconds_count{namespace="n",pod="p",path="/x"}[5m]))',
        exported,
        recorded,
      ),
    ).toEqual(['http_request_duration_seconds_count{path}', 'by (statuscode)']);
  });
});

describe('the dashboard and the alerting rules name only what the service exports', () => {
  let tdb: TestDatabase;
  let api: FastifyInstance;
  let worker: Worker | undefined;
  let partners: PartnerSimulator | undefined;
  let probe: Server | undefined;
  let keys: DevKeyPair;
  let exported: Exposition;
  let apiText: string;
  let workerText: string;

  const ISSUER = 'https://idp.metrics.test';
  const AUDIENCE = 'orders';
  const bearer = async () => ({
    authorization: `Bearer ${await signDevToken({
      privateJwk: keys.privateJwk,
      subject: validOrder().customerId,
      scope: 'orders:read orders:write',
      issuer: ISSUER,
      audience: AUDIENCE,
      ttlSeconds: 300,
    })}`,
  });

  /** `orders serve --no-worker` with AUTH_MODE=jwt: default metrics, pool gauges, the JWT hooks. */
  async function startApi(): Promise<FastifyInstance> {
    keys = await generateDevKeyPair('ES256');
    const metrics = createMetrics();
    metrics.trackPool(() => tdb.db.stats());
    const verifier = createTokenVerifier({
      issuer: ISSUER,
      audience: AUDIENCE,
      clockToleranceS: 30,
      keys: createKeyStore({ load: async () => keys.jwks }).resolve,
    });
    const { app } = await buildTestApp(tdb, { metrics, auth: createAuthentication({ verifier, metrics }) });
    return app;
  }

  /** `orders worker`: default metrics, pool gauges, outbox gauges, its probe server; the partners simulated. */
  async function startWorker(): Promise<string> {
    const metrics = createMetrics();
    metrics.trackPool(() => tdb.db.stats());
    partners = createInProcessSimulator(
      { delayMs: 20, stockRejectRate: 0, paymentFailRate: 0 },
      {
        natsUrl: undefined,
        logger: testLogger,
        receive: (message, options) => worker!.receive(message, options),
      },
    );
    worker = createWorker({
      db: tdb.db,
      logger: testLogger,
      metrics,
      publisher: null,
      partners,
      options: workerOptionsFromConfig(loadConfig({}), {
        pollIntervalMs: 20,
        maxIdlePollIntervalMs: 50,
        housekeepingIntervalMs: 0,
      }),
    });
    probe = createProbeServer({
      logger: testLogger,
      metrics,
      isShuttingDown: () => false,
      readiness: async () => true,
      stalled: () => worker!.stalled(),
    });
    await listenProbeServer(probe, 0, '127.0.0.1');
    await worker.start();
    return `http://127.0.0.1:${(probe.address() as AddressInfo).port}/metrics`;
  }

  /** Scrapes the worker until the round trip's labelled series are there (or 20 s pass). */
  async function scrapeWorkerAfterRoundTrip(url: string): Promise<string> {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const text = await (await fetch(url)).text();
      const done = [
        'orders_status_transitions_total{',
        'orders_inbound_events_total{',
        'orders_event_delivery_seconds_count{',
      ];
      if (done.every((prefix) => text.includes(prefix)) || Date.now() > deadline) return text;
      await sleep(50);
    }
  }

  beforeAll(async () => {
    tdb = await createTestDatabase();
    api = await startApi();
    const workerMetricsUrl = await startWorker();

    // The round trip: a refusal (auth failure), an order with an Idempotency-Key, a read.
    expect((await postOrder(api, validOrder())).statusCode).toBe(401);
    const headers = { ...(await bearer()), 'idempotency-key': `promql-${Date.now()}` };
    const created = await postOrder(api, validOrder(), headers);
    expect(created.statusCode).toBe(201);
    const { id } = created.json() as { id: string };
    expect(
      (await api.inject({ method: 'GET', url: `/orders/${id}`, headers: await bearer() })).statusCode,
    ).toBe(200);

    workerText = await scrapeWorkerAfterRoundTrip(workerMetricsUrl);
    apiText = (await api.inject({ method: 'GET', url: '/metrics' })).body;
    exported = mergeExpositions(parseExposition(apiText), parseExposition(workerText));
  });

  afterAll(async () => {
    await worker?.stop({ timeoutMs: 2_000 });
    await partners?.stop();
    if (probe) await closeProbeServer(probe);
    await api?.close();
    await tdb?.drop();
  });

  it('scraped the service metrics, the pool and outbox gauges and the Node.js defaults, with labelled series', () => {
    for (const name of [
      'http_request_duration_seconds_bucket',
      'orders_created_total',
      'orders_idempotency_outcomes_total',
      'orders_status_transitions_total',
      'orders_auth_failures_total',
      'orders_events_handled_total',
      'orders_inbound_events_total',
      'orders_event_delivery_seconds_bucket',
      'orders_outbox_events',
      'orders_outbox_oldest_pending_age_seconds',
      'db_pool_connections_in_use',
      'db_pool_connections_max',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
      'process_resident_memory_bytes',
      'process_cpu_seconds_total',
    ]) {
      expect(exported.names, name).toContain(name);
    }
    expect([...exported.labels.get('orders_status_transitions_total')!].sort()).toEqual(['from', 'to']);
    expect(exported.labels.get('orders_auth_failures_total')).toContain('reason');
    // The worker's outbox gauges come from the worker; the HTTP histogram from the API.
    expect(workerText).toContain('# TYPE orders_outbox_events gauge');
    expect(apiText).toContain('# TYPE http_request_duration_seconds histogram');
    console.log(
      `[promql-metrics] exported series names (${exported.names.size}): ${[...exported.names].sort().join(' ')}`,
    );
  });

  it('the dashboard names only exported metrics and labels', () => {
    const shipped = dashboardExprs();
    expect(shipped.length).toBeGreaterThan(20);
    const none = new Set<string>();
    const problems = shipped.flatMap(({ where, expr }) =>
      [...unknownMetrics(expr, exported, none), ...unknownLabels(expr, exported, none)].map(
        (p) => `${where}: ${p}`,
      ),
    );
    expect(problems).toEqual([]);
    const variable = /^label_values\((\w+), (\w+)\)$/.exec(NAMESPACE_QUERY);
    expect(exported.names).toContain(variable?.[1]);
    console.log(
      `[promql-metrics] dashboard metrics: ${[...new Set(shipped.flatMap((s) => metricNames(s.expr)))].sort().join(' ')}`,
    );
  });

  it('the PrometheusRule names only exported metrics and labels, and recording rules it records itself', () => {
    const { exprs, records } = rulesOf(readTemplate('prometheus-rule.yaml'));
    expect(exprs.length).toBeGreaterThan(5);
    const recorded = new Set(records);
    const problems = exprs.flatMap(({ where, expr }) =>
      [...unknownMetrics(expr, exported, recorded), ...unknownLabels(expr, exported, recorded)].map(
        (p) => `${where}: ${p}`,
      ),
    );
    expect(problems).toEqual([]);
    console.log(
      `[promql-metrics] rule metrics: ${[...new Set(exprs.flatMap((e) => metricNames(e.expr)))].sort().join(' ')}`,
    );
  });
});
