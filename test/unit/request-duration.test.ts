/**
 * The request-duration histogram is read by prom-client's registry like one of its own: for the
 * same observations it must expose the very lines prom-client's Histogram exposes, in both text
 * formats and through the AggregatorRegistry that `serve --processes N` uses.
 */
import { AggregatorRegistry, Histogram, Registry, type RegistryContentType } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { RequestDurationHistogram } from '../../src/platform/request-duration.js';

const BUCKETS = [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const NAME = 'http_request_duration_seconds';
const HELP = 'HTTP request duration by method, route template and status code';

type Observation = [method: string, route: string, status: number, seconds: number];

// Every bucket's edges (exactly on a bound counts in it, as `le` says), beyond the last bound,
// zero, labels that need escaping, and series first seen after others of their route and method
// (the lines come in the order series were first observed, not grouped).
const OBSERVATIONS: Observation[] = [
  ...BUCKETS.flatMap((bound): Observation[] => [
    ['GET', '/orders/:id', 200, bound],
    ['GET', '/orders/:id', 200, bound * 1.0001],
  ]),
  ['GET', '/orders/:id', 200, 0],
  ['GET', '/orders/:id', 200, 60],
  ['GET', '/orders/:id', 404, 0.003],
  ['POST', '/orders', 201, 0.012],
  ['POST', '/orders', 201, 0.0125],
  ['GET', 'unmatched', 404, 0.0004],
  ['GET', '/a "quoted"\\route\n', 500, 0.7],
  ['GET', '/orders/:id', 503, 0.02],
  ['POST', '/orders/:id', 405, 0.001],
  ['POST', '/orders', 201, 0.3],
];

function both(contentType?: RegistryContentType) {
  const oursRegistry = new Registry<RegistryContentType>();
  const theirsRegistry = new Registry<RegistryContentType>();
  if (contentType) {
    oursRegistry.setContentType(contentType);
    theirsRegistry.setContentType(contentType);
  }
  const ours = new RequestDurationHistogram(NAME, HELP, BUCKETS, oursRegistry);
  const theirs = new Histogram({
    name: NAME,
    help: HELP,
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: BUCKETS,
    registers: [theirsRegistry],
  });
  for (const [method, route, status, seconds] of OBSERVATIONS) {
    ours.observe(method, route, status, seconds);
    theirs.observe({ method, route, status_code: String(status) }, seconds);
  }
  return { ours, oursRegistry, theirsRegistry };
}

describe('the request-duration histogram', () => {
  it("exposes prom-client's Histogram's very lines (Prometheus text)", async () => {
    const { oursRegistry, theirsRegistry } = both();
    const text = await oursRegistry.metrics();
    expect(text).toBe(await theirsRegistry.metrics());
    expect(text).toContain(`${NAME}_bucket{le="0.002",method="GET",route="/orders/:id",status_code="200"} 2`);
    expect(text).toContain(`${NAME}_bucket{le="+Inf",method="GET",route="/orders/:id",status_code="200"} 26`);
    expect(text).toContain(`${NAME}_count{method="POST",route="/orders",status_code="201"} 3`);
  });

  it('and in OpenMetrics', async () => {
    const { oursRegistry, theirsRegistry } = both(Registry.OPENMETRICS_CONTENT_TYPE);
    expect(await oursRegistry.metrics()).toBe(await theirsRegistry.metrics());
  });

  it('sums across processes as prom-client sums its own', async () => {
    const a = both();
    const b = both();
    const ours = await AggregatorRegistry.aggregate([
      await a.oursRegistry.getMetricsAsJSON(),
      await b.oursRegistry.getMetricsAsJSON(),
    ]).metrics();
    const theirs = await AggregatorRegistry.aggregate([
      await a.theirsRegistry.getMetricsAsJSON(),
      await b.theirsRegistry.getMetricsAsJSON(),
    ]).metrics();
    expect(ours).toBe(theirs);
    expect(ours).toContain(`${NAME}_count{method="GET",route="unmatched",status_code="404"} 2`);
  });

  it('ignores a duration that is not a number, and resets with the registry', async () => {
    const { ours, oursRegistry } = both();
    ours.observe('GET', '/orders/:id', 200, Number.NaN);
    expect(await oursRegistry.metrics()).toContain(
      `${NAME}_count{method="GET",route="/orders/:id",status_code="200"} 26`,
    );
    oursRegistry.resetMetrics();
    expect(await oursRegistry.metrics()).toBe(`# HELP ${NAME} ${HELP}\n# TYPE ${NAME} histogram\n`);
  });

  it('refuses bounds that do not ascend', () => {
    expect(() => new RequestDurationHistogram(NAME, HELP, [0.1, 0.05], new Registry())).toThrow(/ascend/);
  });
});
