/**
 * The Grafana dashboard: the committed deploy/grafana/orders-dashboard.json is exactly what the
 * code generates (UPDATE_GOLDEN=1 rewrites it), the layout is sound (unique ids, panels inside the
 * grid and never overlapping) and every query reads only series of the selected namespace.
 * That the metrics exist is test/integration/promql-metrics.test.ts's job.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  buildDashboard,
  DASHBOARD_UID,
  DATASOURCE_UID,
  dashboardJson,
  type GraphPanel,
  type GridPos,
  NAMESPACE_QUERY,
  SCHEMA_VERSION,
} from '../../src/k8s/dashboard.js';
import { parsePromql } from '../helpers/promql.js';

const GOLDEN = new URL('../../deploy/grafana/orders-dashboard.json', import.meta.url);
const dashboard = buildDashboard();
const graphs = dashboard.panels.filter((p): p is GraphPanel => p.type !== 'row');
const targets = graphs.flatMap((panel) => panel.targets.map((target) => ({ panel: panel.title, ...target })));

function overlaps(a: GridPos, b: GridPos): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

describe('Grafana dashboard', () => {
  it('matches the committed file (UPDATE_GOLDEN=1 rewrites it)', () => {
    const text = dashboardJson();
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(GOLDEN, text);
    expect(text).toBe(readFileSync(GOLDEN, 'utf8'));
  });

  it('is stable 2-space JSON with a trailing newline, the same bytes on every call', () => {
    const text = dashboardJson();
    expect(text.endsWith('}\n')).toBe(true);
    expect(text).toBe(`${JSON.stringify(JSON.parse(text), null, 2)}\n`);
    expect(dashboardJson()).toBe(text);
  });

  it('has the uid, a current schema version, a prometheus datasource variable and a namespace variable', () => {
    expect(dashboard.uid).toBe(DASHBOARD_UID);
    expect(dashboard.uid).toBe('orders');
    expect(dashboard.schemaVersion).toBe(SCHEMA_VERSION);
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(39);
    expect(dashboard.title).toBeTruthy();
    const [datasource, namespace] = dashboard.templating.list;
    expect(datasource).toMatchObject({ type: 'datasource', name: 'datasource', query: 'prometheus' });
    expect(namespace).toMatchObject({
      type: 'query',
      name: 'namespace',
      definition: NAMESPACE_QUERY,
      datasource: { type: 'prometheus', uid: DATASOURCE_UID },
    });
    expect(DATASOURCE_UID).toBe(['$', '{datasource}'].join(''));
    expect(NAMESPACE_QUERY).toMatch(/^label_values\([a-z_]+, namespace\)$/);
  });

  it('gives every panel a unique id and a place inside the 24-column grid, no two overlapping', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { gridPos, title } of dashboard.panels) {
      expect(gridPos.x, title).toBeGreaterThanOrEqual(0);
      expect(gridPos.w, title).toBeGreaterThan(0);
      expect(gridPos.h, title).toBeGreaterThan(0);
      expect(gridPos.x + gridPos.w, title).toBeLessThanOrEqual(24);
    }
    for (const [i, a] of dashboard.panels.entries()) {
      for (const b of dashboard.panels.slice(i + 1)) {
        expect(overlaps(a.gridPos, b.gridPos), `${a.title} overlaps ${b.title}`).toBe(false);
      }
    }
  });

  it('the overlap check itself catches two panels on the same cells', () => {
    expect(overlaps({ x: 0, y: 0, w: 12, h: 8 }, { x: 6, y: 4, w: 12, h: 8 })).toBe(true);
    expect(overlaps({ x: 0, y: 0, w: 12, h: 8 }, { x: 12, y: 0, w: 12, h: 8 })).toBe(false);
  });

  it('has the rows and panels the issue asks for', () => {
    const rows = dashboard.panels.filter((p) => p.type === 'row').map((p) => p.title);
    expect(rows).toEqual([
      'Overview',
      'HTTP API',
      'Events and outbox',
      'Orders',
      'Database pool',
      'Node.js runtime',
    ]);
    const exprs = targets.map((t) => t.expr).join('\n');
    for (const metric of [
      'http_request_duration_seconds_count',
      'http_request_duration_seconds_bucket',
      'orders_outbox_events',
      'orders_outbox_oldest_pending_age_seconds',
      'orders_event_delivery_seconds_bucket',
      'orders_inbound_events_total',
      'orders_status_transitions_total',
      'orders_idempotency_outcomes_total',
      'orders_auth_failures_total',
      'db_pool_connections_in_use',
      'db_pool_connections_max',
      'db_pool_waiting_requests',
      'nodejs_eventloop_lag_p99_seconds',
      'process_resident_memory_bytes',
    ]) {
      expect(exprs, metric).toContain(`${metric}{`);
    }
    for (const quantile of ['0.5', '0.95', '0.99'])
      expect(exprs).toContain(`histogram_quantile(${quantile},`);
  });

  it('gives every target an expression, a refId and the datasource variable', () => {
    expect(targets.length).toBeGreaterThan(20);
    for (const panel of graphs) {
      expect(panel.targets.length, panel.title).toBeGreaterThan(0);
      expect(new Set(panel.targets.map((t) => t.refId)).size, panel.title).toBe(panel.targets.length);
      for (const target of panel.targets) {
        expect(target.expr.trim(), panel.title).not.toBe('');
        expect(target.datasource).toEqual({ type: 'prometheus', uid: DATASOURCE_UID });
      }
    }
  });

  it('filters every selector of every query by namespace="$namespace"', () => {
    for (const target of targets) {
      const { selectors } = parsePromql(target.expr);
      expect(selectors.length, target.panel).toBeGreaterThan(0);
      for (const selector of selectors) {
        expect(selector.metric, target.expr).toBeDefined();
        expect(selector.matchers, `${target.panel}: ${target.expr}`).toContainEqual({
          label: 'namespace',
          op: '=',
          value: '$namespace',
        });
      }
    }
  });

  it('the namespace check itself catches a selector without the filter', () => {
    const { selectors } = parsePromql(
      'sum(rate(a_total{namespace="$namespace"}[5m])) / sum(rate(b_total{route="/orders"}[5m]))',
    );
    const unfiltered = selectors.filter((s) => !s.matchers.some((m) => m.label === 'namespace'));
    expect(unfiltered.map((s) => s.metric)).toEqual(['b_total']);
  });
});
