/**
 * The Grafana dashboard of the service, generated from code: render-k8s ships it as a ConfigMap
 * for Grafana's dashboard sidecar (K8S_GRAFANA_DASHBOARD=true), and deploy/grafana/orders-dashboard.json
 * is the same bytes for importing by hand (a unit test keeps the two equal).
 *
 * Written the way the dashboards of good exporters are (node-exporter's, the kube-prometheus
 * mixins): a `datasource` variable so that it works with any Prometheus, a `namespace` variable
 * read from the series themselves, every query filtered by it, an overview row of single numbers
 * on top and one row per subsystem below. Panels are data; their ids and positions are computed,
 * so adding one never means renumbering or re-placing the others.
 *
 * Every metric named here is one the service exports (test/integration/promql-metrics.test.ts
 * scrapes the API and the worker and checks). Labels `namespace` and `pod` are the ones the
 * Prometheus Operator's ServiceMonitor/PodMonitor add at scrape time.
 */

/** The last schema version of Grafana's classic (v1) dashboard JSON model. */
export const SCHEMA_VERSION = 42;
export const DASHBOARD_UID = 'orders';
export const DASHBOARD_TITLE = 'Orders service';
/** Grafana lays panels out on a grid 24 columns wide. */
const GRID_WIDTH = 24;
const ROW_HEIGHT = 1;

export interface DatasourceRef {
  type: 'prometheus';
  uid: string;
}

export interface GridPos {
  h: number;
  w: number;
  x: number;
  y: number;
}

export interface Target {
  datasource: DatasourceRef;
  editorMode: 'code';
  expr: string;
  legendFormat: string;
  range: true;
  refId: string;
}

export interface Threshold {
  color: string;
  value: number | null;
}

export interface FieldConfig {
  defaults: {
    unit: string;
    min?: number;
    decimals?: number;
    thresholds?: { mode: 'absolute'; steps: Threshold[] };
    custom?: Record<string, unknown>;
  };
  overrides: never[];
}

export interface GraphPanel {
  id: number;
  type: 'timeseries' | 'stat';
  title: string;
  description: string;
  gridPos: GridPos;
  datasource: DatasourceRef;
  targets: Target[];
  fieldConfig: FieldConfig;
  options: Record<string, unknown>;
}

export interface RowPanel {
  id: number;
  type: 'row';
  title: string;
  collapsed: false;
  gridPos: GridPos;
  panels: never[];
}

export type Panel = GraphPanel | RowPanel;

export interface DatasourceVariable {
  type: 'datasource';
  name: string;
  label: string;
  query: 'prometheus';
  current: Record<string, never>;
  hide: 0;
  refresh: 1;
  regex: '';
}

export interface QueryVariable {
  type: 'query';
  name: string;
  label: string;
  datasource: DatasourceRef;
  definition: string;
  /** The classic string form: every Grafana version since 7 reads it (and migrates it itself). */
  query: string;
  current: Record<string, never>;
  hide: 0;
  includeAll: false;
  multi: false;
  refresh: 2;
  regex: '';
  sort: 1;
}

export interface Dashboard {
  annotations: { list: Record<string, unknown>[] };
  description: string;
  editable: boolean;
  fiscalYearStartMonth: 0;
  graphTooltip: 1;
  links: never[];
  panels: Panel[];
  refresh: string;
  schemaVersion: number;
  tags: string[];
  templating: { list: (DatasourceVariable | QueryVariable)[] };
  time: { from: string; to: string };
  timepicker: Record<string, never>;
  timezone: string;
  title: string;
  uid: string;
  version: 1;
}

// ---- PromQL helpers: every selector carries the namespace filter -------------------------------

/** Grafana's variable syntax (the `datasource` variable below), not a JavaScript template. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable reference
export const DATASOURCE_UID = '${datasource}';
const DATASOURCE: DatasourceRef = { type: 'prometheus', uid: DATASOURCE_UID };
const RATE_WINDOW = '$__rate_interval';

/** `name{namespace="$namespace",…}`: the only way this file names a metric. */
export function selector(metric: string, ...matchers: string[]): string {
  return `${metric}{${['namespace="$namespace"', ...matchers].join(',')}}`;
}

/** Per-second rate of a counter (or a histogram's _count/_bucket) over Grafana's rate interval. */
function rate(metric: string, ...matchers: string[]): string {
  return `rate(${selector(metric, ...matchers)}[${RATE_WINDOW}])`;
}

function sumBy(labels: string[], inner: string): string {
  return labels.length ? `sum by (${labels.join(', ')}) (${inner})` : `sum(${inner})`;
}

/** The q-quantile of a histogram, aggregated over pods (and `by`, if given) by its buckets. */
function quantile(q: number, histogram: string, by: string[] = []): string {
  return `histogram_quantile(${q}, ${sumBy([...by, 'le'], rate(`${histogram}_bucket`))})`;
}

/** Share of the requests answered 5xx (0..1). */
function serverErrorShare(by: string[] = []): string {
  const all = sumBy(by, rate('http_request_duration_seconds_count'));
  const failed = sumBy(by, rate('http_request_duration_seconds_count', 'status_code=~"5.."'));
  return `${failed} / ${all}`;
}

// ---- panel specifications ------------------------------------------------------------------

interface Query {
  expr: string;
  legend: string;
}

interface PanelSpec {
  type: 'timeseries' | 'stat';
  title: string;
  description: string;
  unit: string;
  queries: Query[];
  w: number;
  h: number;
  /** Stat panels: the value from which the number turns red. */
  redFrom?: number;
  stacked?: boolean;
}

interface Section {
  title: string;
  panels: PanelSpec[];
}

const q = (expr: string, legend = ''): Query => ({ expr, legend });

/** A graph over time, half the width unless told. */
export function timeseries(
  title: string,
  description: string,
  unit: string,
  queries: Query[],
  layout: { w?: number; h?: number; stacked?: boolean } = {},
): PanelSpec {
  return {
    type: 'timeseries',
    title,
    description,
    unit,
    queries,
    w: layout.w ?? 12,
    h: layout.h ?? 8,
    stacked: layout.stacked,
  };
}

/** One number (the last value), for the overview row. */
export function stat(
  title: string,
  description: string,
  unit: string,
  expr: string,
  redFrom?: number,
): PanelSpec {
  return { type: 'stat', title, description, unit, queries: [q(expr)], w: 4, h: 4, redFrom };
}

const LATENCY_QUANTILES = [0.5, 0.95, 0.99];

function quantileQueries(histogram: string): Query[] {
  return LATENCY_QUANTILES.map((p) => q(quantile(p, histogram), `p${Math.round(p * 100)}`));
}

/**
 * The outbox gauges are read from the database by every process that runs a worker, so each
 * reports the same number: `max`, never `sum`, across pods.
 */
const outbox = (status: string) => `max(${selector('orders_outbox_events', `status="${status}"`)})`;
const OLDEST_PENDING = `max(${selector('orders_outbox_oldest_pending_age_seconds')})`;

function sections(): Section[] {
  return [
    {
      title: 'Overview',
      panels: [
        stat(
          'Request rate',
          'HTTP requests per second, all routes',
          'reqps',
          sumBy([], rate('http_request_duration_seconds_count')),
        ),
        stat(
          '5xx share',
          'Share of HTTP requests answered with a 5xx (SLO: 0.1%)',
          'percentunit',
          serverErrorShare(),
          0.001,
        ),
        stat(
          'p95 latency',
          'HTTP latency, 95th percentile, all routes',
          's',
          quantile(0.95, 'http_request_duration_seconds'),
          0.1,
        ),
        stat('Outbox pending', 'Events committed and not yet processed', 'short', outbox('pending'), 1000),
        stat(
          'Oldest pending event',
          'How long the longest-waiting due event has waited',
          's',
          OLDEST_PENDING,
          300,
        ),
        stat(
          'Dead events',
          'Events that exhausted their attempts: `orders events list --status dead`',
          'short',
          outbox('dead'),
          1,
        ),
      ],
    },
    {
      title: 'HTTP API',
      panels: [
        timeseries('Requests by route', 'Requests per second by route template', 'reqps', [
          q(sumBy(['route'], rate('http_request_duration_seconds_count')), '{{route}}'),
        ]),
        timeseries('5xx share by route', 'Share of requests answered with a 5xx, by route', 'percentunit', [
          q(serverErrorShare(['route']), '{{route}}'),
        ]),
        timeseries(
          'Latency p50 / p95 / p99',
          'HTTP request duration quantiles over all routes',
          's',
          quantileQueries('http_request_duration_seconds'),
        ),
        timeseries('p95 latency by route', 'HTTP request duration, 95th percentile, by route', 's', [
          q(quantile(0.95, 'http_request_duration_seconds', ['route']), '{{route}}'),
        ]),
        timeseries(
          'Responses by status code',
          'Requests per second by status code',
          'reqps',
          [q(sumBy(['status_code'], rate('http_request_duration_seconds_count')), '{{status_code}}')],
          { stacked: true },
        ),
        timeseries(
          'Authentication failures by reason',
          'Requests refused by authentication or authorization (missing, invalid, expired, insufficient_scope, jwks_unavailable)',
          'reqps',
          [q(sumBy(['reason'], rate('orders_auth_failures_total')), '{{reason}}')],
        ),
      ],
    },
    {
      title: 'Events and outbox',
      panels: [
        timeseries(
          'Outbox depth by status',
          'Outbox events pending, processing and dead',
          'short',
          [q(`max by (status) (${selector('orders_outbox_events')})`, '{{status}}')],
          { w: 8 },
        ),
        timeseries(
          'Oldest pending event',
          'Seconds the longest-waiting due event has waited',
          's',
          [q(OLDEST_PENDING, 'oldest pending')],
          { w: 8 },
        ),
        timeseries(
          'Event delivery latency',
          'From an event being committed to its successful processing: p50 / p95 / p99 (SLO: 99% within 5 s)',
          's',
          quantileQueries('orders_event_delivery_seconds'),
          { w: 8 },
        ),
        timeseries(
          'Outbox events handled by outcome',
          'Events handled by the worker per second: processed, retried, dead',
          'ops',
          [q(sumBy(['type', 'outcome'], rate('orders_events_handled_total')), '{{type}} {{outcome}}')],
          { w: 12 },
        ),
        timeseries(
          'Consumed events by outcome',
          "Catalog's and Payments' events per second: applied, unchanged, duplicate, retried, dead",
          'ops',
          [q(sumBy(['type', 'outcome'], rate('orders_inbound_events_total')), '{{type}} {{outcome}}')],
          { w: 12 },
        ),
      ],
    },
    {
      title: 'Orders',
      panels: [
        timeseries(
          'Orders created',
          'New orders per second (Idempotency-Key replays not counted)',
          'ops',
          [q(sumBy([], rate('orders_created_total')), 'created')],
          { w: 8 },
        ),
        timeseries(
          'Status transitions',
          'Order status changes per second, by the status before and after',
          'ops',
          [q(sumBy(['from', 'to'], rate('orders_status_transitions_total')), '{{from}} → {{to}}')],
          { w: 8 },
        ),
        timeseries(
          'Idempotency outcomes',
          'Requests carrying an Idempotency-Key, by outcome: created, replayed, conflict, mismatch',
          'ops',
          [q(sumBy(['outcome'], rate('orders_idempotency_outcomes_total')), '{{outcome}}')],
          { w: 8 },
        ),
      ],
    },
    {
      title: 'Database pool',
      panels: [
        timeseries(
          'Pool usage by pod',
          'Connections checked out over the pool size, per pod',
          'percentunit',
          [
            q(
              `${sumBy(['pod'], selector('db_pool_connections_in_use'))} / ${sumBy(['pod'], selector('db_pool_connections_max'))}`,
              '{{pod}}',
            ),
          ],
          { w: 8 },
        ),
        timeseries(
          'Connections',
          'Connections in use and idle, and the pools’ limit, over all pods',
          'short',
          [
            q(sumBy([], selector('db_pool_connections_in_use')), 'in use'),
            q(sumBy([], selector('db_pool_connections_idle')), 'idle'),
            q(sumBy([], selector('db_pool_connections_max')), 'max'),
          ],
          { w: 8 },
        ),
        timeseries(
          'Callers waiting for a connection',
          'Queries queued for a pool connection, per pod',
          'short',
          [q(sumBy(['pod'], selector('db_pool_waiting_requests')), '{{pod}}')],
          { w: 8 },
        ),
      ],
    },
    {
      title: 'Node.js runtime',
      panels: [
        timeseries(
          'Event loop lag p99',
          'Event loop delay, 99th percentile, per pod',
          's',
          [q(`max by (pod) (${selector('nodejs_eventloop_lag_p99_seconds')})`, '{{pod}}')],
          { w: 6 },
        ),
        timeseries(
          'Heap used',
          'V8 heap used and its current size, per pod',
          'bytes',
          [
            q(sumBy(['pod'], selector('nodejs_heap_size_used_bytes')), '{{pod}} used'),
            q(sumBy(['pod'], selector('nodejs_heap_size_total_bytes')), '{{pod}} size'),
          ],
          { w: 6 },
        ),
        timeseries(
          'Resident memory',
          'Resident set size per pod (compare with the container limit)',
          'bytes',
          [q(sumBy(['pod'], selector('process_resident_memory_bytes')), '{{pod}}')],
          { w: 6 },
        ),
        timeseries(
          'CPU',
          'CPU seconds per second, per pod',
          'short',
          [q(sumBy(['pod'], rate('process_cpu_seconds_total')), '{{pod}}')],
          { w: 6 },
        ),
      ],
    },
  ];
}

// ---- layout and JSON -------------------------------------------------------------------------

const REF_IDS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';

function targets(queries: Query[]): Target[] {
  return queries.map((query, i) => ({
    datasource: DATASOURCE,
    editorMode: 'code',
    expr: query.expr,
    legendFormat: query.legend,
    range: true,
    refId: REF_IDS[i]!,
  }));
}

function fieldConfig(spec: PanelSpec): FieldConfig {
  if (spec.type === 'stat') {
    const steps: Threshold[] = [{ color: 'green', value: null }];
    if (spec.redFrom !== undefined) steps.push({ color: 'red', value: spec.redFrom });
    return { defaults: { unit: spec.unit, thresholds: { mode: 'absolute', steps } }, overrides: [] };
  }
  return {
    defaults: {
      unit: spec.unit,
      min: 0,
      custom: {
        drawStyle: 'line',
        fillOpacity: spec.stacked ? 30 : 10,
        lineWidth: 1,
        showPoints: 'never',
        spanNulls: false,
        stacking: { group: 'A', mode: spec.stacked ? 'normal' : 'none' },
      },
    },
    overrides: [],
  };
}

function panelOptions(spec: PanelSpec): Record<string, unknown> {
  if (spec.type === 'stat') {
    return {
      colorMode: 'value',
      graphMode: 'area',
      justifyMode: 'auto',
      orientation: 'auto',
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      textMode: 'auto',
    };
  }
  return {
    legend: { calcs: [], displayMode: 'list', placement: 'bottom', showLegend: true },
    tooltip: { mode: 'multi', sort: 'desc' },
  };
}

/**
 * Places each section as a row header followed by its panels, left to right, wrapping to a new
 * line when the next panel would pass the grid's width. Ids count up in reading order.
 */
function layout(all: Section[]): Panel[] {
  const panels: Panel[] = [];
  let y = 0;
  for (const section of all) {
    panels.push({
      id: panels.length + 1,
      type: 'row',
      title: section.title,
      collapsed: false,
      gridPos: { h: ROW_HEIGHT, w: GRID_WIDTH, x: 0, y },
      panels: [],
    });
    y += ROW_HEIGHT;
    let x = 0;
    let lineHeight = 0;
    for (const spec of section.panels) {
      if (x + spec.w > GRID_WIDTH) {
        y += lineHeight;
        x = 0;
        lineHeight = 0;
      }
      panels.push({
        id: panels.length + 1,
        type: spec.type,
        title: spec.title,
        description: spec.description,
        gridPos: { h: spec.h, w: spec.w, x, y },
        datasource: DATASOURCE,
        targets: targets(spec.queries),
        fieldConfig: fieldConfig(spec),
        options: panelOptions(spec),
      });
      x += spec.w;
      lineHeight = Math.max(lineHeight, spec.h);
    }
    y += lineHeight;
  }
  return panels;
}

/** The series that names every namespace running the service: every process exports it from the start. */
export const NAMESPACE_QUERY = 'label_values(orders_created_total, namespace)';

function variables(): Dashboard['templating']['list'] {
  return [
    {
      type: 'datasource',
      name: 'datasource',
      label: 'Data source',
      query: 'prometheus',
      current: {},
      hide: 0,
      refresh: 1,
      regex: '',
    },
    {
      type: 'query',
      name: 'namespace',
      label: 'Namespace',
      datasource: DATASOURCE,
      definition: NAMESPACE_QUERY,
      query: NAMESPACE_QUERY,
      current: {},
      hide: 0,
      includeAll: false,
      multi: false,
      refresh: 2,
      regex: '',
      sort: 1,
    },
  ];
}

/** The dashboard as a typed object (Grafana's classic JSON model). */
export function buildDashboard(): Dashboard {
  return {
    annotations: {
      list: [
        {
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        },
      ],
    },
    description:
      'The orders service: HTTP API, outbox and events, orders, database pool and Node.js runtime. Generated by src/k8s/dashboard.ts.',
    editable: true,
    fiscalYearStartMonth: 0,
    graphTooltip: 1,
    links: [],
    panels: layout(sections()),
    refresh: '30s',
    schemaVersion: SCHEMA_VERSION,
    tags: ['orders'],
    templating: { list: variables() },
    time: { from: 'now-6h', to: 'now' },
    timepicker: {},
    timezone: 'utc',
    title: DASHBOARD_TITLE,
    uid: DASHBOARD_UID,
    version: 1,
  };
}

/** The dashboard as committed and shipped: 2-space JSON and a trailing newline, the same bytes every time. */
export function dashboardJson(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}
