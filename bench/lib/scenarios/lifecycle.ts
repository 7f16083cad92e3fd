/**
 * lifecycle: orders created through POST under load, confirmed through NATS. The bench plays
 * Catalog and Payments itself: for every OrderCreated it publishes StockReserved, then
 * PaymentCaptured (the project's own builder, `decideAnswers`, and publisher, so the messages are
 * byte for byte what `orders partners simulate` sends), and times each order from its
 * PaymentCaptured acknowledged by JetStream to its OrderConfirmed received.
 *
 * Each run starts a fresh server (ours, then each --variant) with NATS_URL, the in-process worker
 * on and SIMULATE_PARTNERS=false, on a database of its own that is emptied first, and with the
 * streams purged. NATS is a private `nats-server -js` the bench starts (its own streams, so a test
 * suite's never collide), or --nats-url. The orders come from --connections lanes, each posting
 * its next order once its last one is confirmed (the lifecycle's own pace, with a bounded number
 * under way), or at a fixed --lifecycle-rate (open loop: latency at a given load).
 */
import { setMaxListeners } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CloudEvent,
  DEFAULT_STREAM,
  DEFAULT_SUBJECT_PREFIX,
  ORDER_CONFIRMED,
  ORDER_CREATED,
  STREAMS,
  subjectFor,
} from '../../../src/messaging/events.js';
import {
  createNatsPublisher,
  ensureStream,
  type NatsPublisher,
} from '../../../src/messaging/nats-publisher.js';
import { decideAnswers, natsDelivery, SimulatedOrder } from '../../../src/messaging/partner-simulator.js';
import { createLogger } from '../../../src/platform/logger.js';
import { registerCleanup } from '../cleanup.js';
import { type CpuShares, cpuDelta, procCpu, rssMiB, sampleCpu } from '../cpu.js';
import { withClient } from '../database.js';
import type { BenchOptions, Variant } from '../options.js';
import { benchOrder } from '../orders.js';
import { freePort, startProcess } from '../processes.js';
import { waitForQuiet } from '../quiet-wait.js';
import { round } from '../round.js';
import { type OurServer, startOurs, WorkerUnavailableError } from '../servers.js';
import type { SkippedRun } from './drain.js';

export interface LifecycleRun extends CpuShares {
  target: string;
  scenario: 'lifecycle';
  repeat: number;
  /** POST /orders answered 201 per second over the measured window. */
  postedPerSec: number;
  /** OrderConfirmed received per second over the measured window. */
  confirmedPerSec: number;
  confirmed: number;
  /** PaymentCaptured acknowledged → OrderConfirmed received, over the orders paid in the window. */
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  /** Orders in the database not confirmed when the grace period ended (0 when the lifecycle kept up). */
  unconfirmed: number;
  /** Seconds after the load stopped until every order was confirmed (null: not within the grace). */
  catchUpSeconds: number | null;
  postErrors: number;
  natsCpuPct: number | null;
  natsCpuMsPerReq: number | null;
  rssMiB: number | null;
  /** --quiet-wait: the rest of the machine's CPU % before the run. */
  neighbourCpuPctBefore: number | null;
  /** How the POSTs were sent: lanes (closed loop over the lifecycle), or paced at --lifecycle-rate. */
  load: string;
}

type Nats = typeof import('@nats-io/transport-node');
type NatsConnection = Awaited<ReturnType<Nats['connect']>>;

/** The lifecycle's NATS: a private nats-server started here (with its pid), or --nats-url. */
interface LifecycleNats {
  url: string;
  pid: number | undefined;
}

export async function lifecycleNats(options: BenchOptions): Promise<LifecycleNats> {
  if (options.natsUrl) return { url: options.natsUrl, pid: undefined };
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), 'orders-bench-nats-'));
  registerCleanup(() => rmSync(storeDir, { recursive: true, force: true }));
  const proc = startProcess(
    options.natsServer,
    ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir],
    {
      env: process.env,
      label: `nats-server (port ${port})`,
    },
  );
  const url = `nats://127.0.0.1:${port}`;
  const nats = await import('@nats-io/transport-node');
  for (let attempt = 0; attempt < 50; attempt++) {
    if (!proc.running()) break;
    try {
      const nc = await nats.connect({ servers: url, timeout: 1_000 });
      await nc.close();
      return { url, pid: proc.pid };
    } catch {
      await sleep(200);
    }
  }
  await proc.stop();
  throw new Error(
    `${options.natsServer} did not start: ${proc.stderr().trim().slice(-1000) || '(no output)'}`,
  );
}

/**
 * Empties the lifecycle database (every table but the migrations') and, on the bench's private
 * NATS only, purges the streams (answers left from an earlier run would hit a missing order).
 */
async function resetState(dbUrl: string, nc: NatsConnection, purge: boolean): Promise<void> {
  await withClient(dbUrl, async (c) => {
    const { rows } = await c.query<{ name: string }>(
      "SELECT quote_ident(tablename) AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'pgmigrations'",
    );
    if (rows.length > 0) await c.query(`TRUNCATE ${rows.map((r) => r.name).join(', ')}`);
  });
  if (!purge) return;
  const { jetstreamManager } = await import('@nats-io/jetstream');
  const jsm = await jetstreamManager(nc);
  for (const name of Object.keys(STREAMS)) {
    await jsm.streams.purge(name).catch(() => undefined); // not created yet
  }
}

/** A message's JSON body; undefined (then refused by the CloudEvent schema) when it is not JSON. */
function readJson(m: { json(): unknown }): unknown {
  try {
    return m.json();
  } catch {
    return undefined;
  }
}

/** Catalog and Payments played by the bench, with the times it records. */
interface Partners {
  /** Order id → when its PaymentCaptured was acknowledged (performance.now() ms). */
  paidAt: Map<string, number>;
  /** Order id → when its OrderConfirmed was received. */
  confirmedAt: Map<string, number>;
  failures: string[];
  /** Resolves true once the order's OrderConfirmed has arrived, false after `timeoutMs`. */
  confirmation(orderId: string, timeoutMs: number): Promise<boolean>;
  stop(): Promise<void>;
}

/**
 * Two ordered JetStream consumers (new messages only): OrderCreated, answered with StockReserved
 * then PaymentCaptured (each awaited until JetStream acknowledges it), and OrderConfirmed.
 */
async function playPartners(nc: NatsConnection, natsUrl: string): Promise<Partners> {
  const [nats, jsModule] = await Promise.all([
    import('@nats-io/transport-node'),
    import('@nats-io/jetstream'),
  ]);
  const logger = createLogger('warn', { destination: process.stderr, name: 'bench-partners' });
  const jsm = await jsModule.jetstreamManager(nc);
  const js = jsModule.jetstream(nc);
  const created = subjectFor(DEFAULT_SUBJECT_PREFIX, ORDER_CREATED);
  const confirmed = subjectFor(DEFAULT_SUBJECT_PREFIX, ORDER_CONFIRMED);
  const stream = await ensureStream(
    jsm,
    nats,
    created,
    { name: DEFAULT_STREAM, subjects: STREAMS.ORDERS_EVENTS },
    logger,
  );
  const publisher: NatsPublisher = createNatsPublisher({
    url: natsUrl,
    logger,
    connectionName: 'orders-bench',
  });
  const deliver = natsDelivery(publisher);
  const stopping = new AbortController();
  // Every answer in flight listens on it (hundreds at once under load).
  setMaxListeners(0, stopping.signal);
  const waiting = new Map<string, () => void>();
  const partners: Partners = {
    paidAt: new Map(),
    confirmedAt: new Map(),
    failures: [],
    confirmation(orderId, timeoutMs) {
      if (partners.confirmedAt.has(orderId)) return Promise.resolve(true);
      return new Promise((resolveWait) => {
        const timer = setTimeout(() => {
          waiting.delete(orderId);
          resolveWait(false);
        }, timeoutMs);
        waiting.set(orderId, () => {
          clearTimeout(timer);
          resolveWait(true);
        });
      });
    },
    stop: async () => {},
  };
  const inFlight = new Set<Promise<void>>();
  const fail = (what: string) => {
    if (partners.failures.length < 20) partners.failures.push(what);
  };

  async function answer(data: unknown): Promise<void> {
    const event = CloudEvent.safeParse(data);
    const order = event.success ? SimulatedOrder.safeParse(event.data.data) : undefined;
    if (!order?.success) return fail('an OrderCreated without an order');
    const [stock, payment] = decideAnswers(
      order.data,
      { stockRejectRate: 0, paymentFailRate: 0 },
      Math.random,
    );
    try {
      await deliver(stock, stopping.signal);
      await deliver(payment, stopping.signal);
      partners.paidAt.set(order.data.id, performance.now());
    } catch (error) {
      if (!stopping.signal.aborted)
        fail(`publishing the answers to ${order.data.id}: ${(error as Error).message}`);
    }
  }

  const createdMessages = await (
    await js.consumers.get(stream, { filter_subjects: created, deliver_policy: jsModule.DeliverPolicy.New })
  ).consume();
  const confirmedMessages = await (
    await js.consumers.get(stream, {
      filter_subjects: confirmed,
      deliver_policy: jsModule.DeliverPolicy.New,
    })
  ).consume();
  const reading = [
    (async () => {
      for await (const m of createdMessages) {
        const work = answer(readJson(m));
        inFlight.add(work);
        void work.finally(() => inFlight.delete(work));
      }
    })(),
    (async () => {
      for await (const m of confirmedMessages) {
        const at = performance.now();
        const event = CloudEvent.safeParse(readJson(m));
        if (event.success && event.data.subject) {
          partners.confirmedAt.set(event.data.subject, at);
          waiting.get(event.data.subject)?.();
          waiting.delete(event.data.subject);
        } else fail('an OrderConfirmed without an order id (CloudEvents subject)');
      }
    })(),
  ];
  partners.stop = async () => {
    stopping.abort();
    await Promise.all([createdMessages.close(), confirmedMessages.close()]);
    await Promise.allSettled([...reading, ...inFlight]);
    await publisher.close();
  };
  return partners;
}

interface PostLoad {
  requests: number;
  seconds: number;
  errors: number;
  generatorCpu: number;
}

/** Creates one order; its id, or undefined when the answer was not 201. */
async function postOrder(url: string, key: string, n: number): Promise<string | undefined> {
  try {
    const res = await fetch(`${url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify(benchOrder(n)),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await res.json().catch(() => ({}))) as { id?: unknown };
    return res.status === 201 && typeof body.id === 'string' ? body.id : undefined;
  } catch {
    return undefined;
  }
}

/** How long a lane waits for its order's confirmation before it gives up on it and posts the next. */
const LANE_CONFIRM_TIMEOUT_MS = 30_000;

/**
 * POSTs for `seconds`: paced at --lifecycle-rate (open loop), or else in --connections lanes,
 * each posting its next order once the last is confirmed (closed over the whole lifecycle: as
 * many orders a second as the lifecycle completes, with at most --connections under way).
 */
async function postLoad(
  options: BenchOptions,
  partners: Partners,
  url: string,
  seconds: number,
  runId: string,
): Promise<PostLoad> {
  if (options.lifecycleRate > 0) return pacedPosts(url, options.lifecycleRate, seconds, runId);
  const started = performance.now();
  const deadline = started + seconds * 1000;
  let next = 0;
  let ok = 0;
  let errors = 0;
  async function lane(): Promise<void> {
    while (performance.now() < deadline) {
      const n = next++;
      const id = await postOrder(url, `${runId}-${n}`, n);
      if (id === undefined) {
        errors++;
        await sleep(10); // a server refusing orders must not become a tight loop
        continue;
      }
      ok++;
      await partners.confirmation(id, LANE_CONFIRM_TIMEOUT_MS);
    }
  }
  await Promise.all(Array.from({ length: options.connections }, lane));
  return { requests: ok, seconds: (performance.now() - started) / 1000, errors, generatorCpu: 0 };
}

/** `rate` POSTs a second from this process, each sent on time whatever the answers before it (open loop). */
async function pacedPosts(url: string, rate: number, seconds: number, runId: string): Promise<PostLoad> {
  const started = performance.now();
  const total = Math.round(rate * seconds);
  const sent: Promise<void>[] = [];
  let ok = 0;
  let errors = 0;
  for (let n = 0; n < total; n++) {
    const due = started + (n * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    sent.push(
      postOrder(url, `${runId}-${n}`, n).then((id) => {
        if (id === undefined) errors++;
        else ok++;
      }),
    );
  }
  await Promise.all(sent);
  // The bench's own CPU is counted whole (below), the partners' with the POSTs'.
  return { requests: ok, seconds: (performance.now() - started) / 1000, errors, generatorCpu: 0 };
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))], 2);
}

const NOT_CONFIRMED_SQL = "SELECT count(*)::int AS n FROM orders WHERE status <> 'confirmed'";

/** Waits up to `graceS` seconds for every order to be confirmed; returns what is left and when it got there. */
async function awaitConfirmations(
  dbUrl: string,
  server: OurServer,
  graceS: number,
): Promise<{ unconfirmed: number; catchUpSeconds: number | null }> {
  return withClient(dbUrl, async (c) => {
    const started = performance.now();
    const deadline = started + graceS * 1000;
    for (;;) {
      const { rows } = await c.query<{ n: number }>(NOT_CONFIRMED_SQL);
      const unconfirmed = rows[0].n;
      if (unconfirmed === 0)
        return { unconfirmed, catchUpSeconds: round((performance.now() - started) / 1000, 1) };
      if (performance.now() > deadline || !server.proc.running())
        return { unconfirmed, catchUpSeconds: null };
      await sleep(250);
    }
  });
}

/** One lifecycle run against ours (or a variant): start it, load it, wait for the stragglers, stop it. */
export async function runLifecycle(
  options: BenchOptions,
  dbUrl: string,
  { url: natsUrl, pid: natsPid }: LifecycleNats,
  variant: Variant,
  repeat: number,
): Promise<LifecycleRun | SkippedRun> {
  const nats = await import('@nats-io/transport-node');
  const nc = await nats.connect({ servers: natsUrl, name: 'orders-bench', timeout: 5_000 });
  try {
    await resetState(dbUrl, nc, options.natsUrl === undefined);
    let server: OurServer;
    try {
      server = await startOurs(options, dbUrl, {
        worker: true,
        cpuProf: options.cpuProf,
        name: variant.name,
        app: variant.app,
        extraEnv: { ...variant.env, NATS_URL: natsUrl, SIMULATE_PARTNERS: 'false', WORKER_ENABLED: 'true' },
      });
    } catch (error) {
      if (error instanceof WorkerUnavailableError) {
        return { target: variant.name, scenario: 'lifecycle', repeat, skipped: 'worker unavailable' };
      }
      throw error;
    }
    const partners = await playPartners(nc, natsUrl);
    try {
      const runId = `${Date.now().toString(36)}-${variant.name}-lifecycle-${repeat}`;
      const neighbours = await waitForQuiet(options, server.proc.pid ? [server.proc.pid] : []);
      if (options.warmup > 0) await postLoad(options, partners, server.url, options.warmup, `${runId}-warm`);
      const benchCpuBefore = process.cpuUsage();
      const before = sampleCpu(server.proc.pid);
      const natsBefore = procCpu(natsPid);
      const t0 = performance.now();
      const loading = postLoad(options, partners, server.url, options.duration, runId);
      // The window ends when the load does: lanes then only wait for their last order.
      await sleep(options.duration * 1000);
      const t1 = performance.now();
      const after = sampleCpu(server.proc.pid);
      const natsAfter = procCpu(natsPid);
      const benchCpu = process.cpuUsage(benchCpuBefore);
      const rss = rssMiB(server.proc.pid);
      const load = await loading;
      const grace = await awaitConfirmations(dbUrl, server, options.lifecycleGrace);
      if (!server.proc.running()) {
        throw new Error(
          `${variant.name} exited during the lifecycle run: ${server.proc.stderr().trim().slice(-2000)}`,
        );
      }
      // Let the last OrderConfirmed messages reach the bench's consumer.
      await sleep(500);
      const inWindow = [...partners.confirmedAt.values()].filter((at) => at >= t0 && at <= t1).length;
      const latencies: number[] = [];
      for (const [id, paid] of partners.paidAt) {
        const done = partners.confirmedAt.get(id);
        if (paid >= t0 && paid <= t1 && done !== undefined) latencies.push(Math.max(0, done - paid));
      }
      latencies.sort((a, b) => a - b);
      const seconds = (t1 - t0) / 1000;
      const natsCpu = natsBefore === null || natsAfter === null ? null : natsAfter - natsBefore;
      if (partners.failures.length > 0) {
        process.stderr.write(`(partner failures: ${partners.failures.slice(0, 3).join('; ')}) `);
      }
      return {
        target: variant.name,
        scenario: 'lifecycle',
        repeat,
        postedPerSec: round(load.requests / seconds, 1),
        confirmedPerSec: round(inWindow / seconds, 1),
        confirmed: inWindow,
        p50Ms: percentile(latencies, 0.5),
        p95Ms: percentile(latencies, 0.95),
        p99Ms: percentile(latencies, 0.99),
        maxMs: latencies.length ? round(latencies[latencies.length - 1], 2) : null,
        unconfirmed: grace.unconfirmed,
        catchUpSeconds: grace.catchUpSeconds,
        postErrors: load.errors,
        // The private nats-server (part of "other" in the CPU table): % of one core, µs per order.
        natsCpuPct: natsCpu === null ? null : round((natsCpu / seconds) * 100, 1),
        natsCpuMsPerReq: natsCpu === null || inWindow === 0 ? null : round((natsCpu * 1000) / inWindow, 3),
        neighbourCpuPctBefore: neighbours,
        rssMiB: rss,
        load:
          options.lifecycleRate > 0
            ? `paced ${options.lifecycleRate}/s`
            : `${options.connections} lanes, each posting its next order once the last is confirmed`,
        // Per confirmed order; the bench's own CPU (the partners and the POSTs) is the generator's.
        ...cpuDelta(before, after, inWindow, load.generatorCpu + (benchCpu.user + benchCpu.system) / 1e6),
      };
    } finally {
      await partners.stop();
      await server.proc.stop();
    }
  } finally {
    await nc.close();
  }
}

/**
 * The lifecycle runs of one repeat: ours, then each variant (reversed on even repeats, as the HTTP
 * targets are), on a database and a NATS made once, on first use.
 */
export function lifecycleRunner(
  options: BenchOptions,
  createDb: (variant?: Variant) => Promise<string>,
): (repeat: number) => Promise<(LifecycleRun | SkippedRun)[]> {
  let setup: Promise<{ dbUrl: string; nats: LifecycleNats }> | undefined;
  // Variants with @db=own: a database each, made on first use.
  const ownDbs = new Map<string, Promise<string>>();
  const ownDb = (variant: Variant) => {
    const made = ownDbs.get(variant.name);
    if (made) return made;
    const db = createDb(variant);
    ownDbs.set(variant.name, db);
    return db;
  };
  const targets: Variant[] = [{ name: 'ours', env: {}, app: undefined, ownDb: false }, ...options.variants];
  return async (repeat) => {
    if (!options.natsUrl && !existsSync(options.natsServer)) {
      const skipped = `no nats-server (${options.natsServer}): install it, or give --nats-server or --nats-url`;
      return targets.map((t) => ({ target: t.name, scenario: 'lifecycle', repeat, skipped }));
    }
    setup ??= (async () => ({ dbUrl: await createDb(), nats: await lifecycleNats(options) }))();
    const { dbUrl, nats } = await setup;
    const runs: (LifecycleRun | SkippedRun)[] = [];
    for (const variant of repeat % 2 === 1 ? targets : [...targets].reverse()) {
      process.stderr.write(`bench: repeat ${repeat}/${options.repeat}: ${variant.name} lifecycle ... `);
      const variantDbUrl = variant.ownDb ? await ownDb(variant) : dbUrl;
      const r = await runLifecycle(options, variantDbUrl, nats, variant, repeat);
      process.stderr.write(
        'skipped' in r
          ? `skipped: ${r.skipped}\n`
          : `${r.confirmedPerSec} confirmed/s, p99 ${r.p99Ms} ms, ${r.unconfirmed} unconfirmed\n`,
      );
      runs.push(r);
    }
    return runs;
  };
}
