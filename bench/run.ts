/**
 * Load benchmark for `orders serve` (and, optionally, a peer implementation of the same API).
 *
 *   npm run bench -- [options]            # compiles bench/ (bench/tsconfig.json), then runs this
 *
 * What it does: creates a fresh database `orders_bench_<ts>` on BENCH_DATABASE_URL, runs
 * `orders migrate up` against it, starts `orders serve` on a free port (LOG_LEVEL info, logs to
 * /dev/null unless --log-file), seeds orders through the API, then runs the scenarios with wrk
 * (bench/get.lua, post.lua, mixed.lua) or, when wrk is missing, autocannon:
 *
 *   get     GET /orders/{id} over the seeded ids
 *   post    POST /orders, a unique Idempotency-Key per request
 *   mixed   80 % get / 20 % post
 *   drain   100,000 pending OrderCreated events inserted in one statement into a database of their
 *           own, then the time until a server with the in-process worker has processed them all
 *
 * It prints one table (medians over --repeat runs) and writes every run with --json FILE.
 * It asserts nothing about speed. Every run is bounded in time; everything it started is stopped
 * and the databases it created are dropped at the end (unless --keep-db), also on Ctrl-C.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { OrderCreatedPayload } from '../src/messaging/events.js';
import { registerCleanup, runCleanups, runCleanupsOnSignals } from './lib/cleanup.js';
import { createDatabase } from './lib/database.js';
import { prepareJwt } from './lib/jwt.js';
import type { LoadTarget } from './lib/load.js';
import { describeRun, type RunMeta } from './lib/meta.js';
import { type BenchOptions, type HttpScenario, isHttpScenario, parseOptions } from './lib/options.js';
import { seedOrders } from './lib/orders.js';
import { type Run, report } from './lib/report.js';
import { backlogPayload, runDrain } from './lib/scenarios/drain.js';
import { runHttpScenario } from './lib/scenarios/http.js';
import { runInstructions } from './lib/scenarios/instructions.js';
import { lifecycleRunner } from './lib/scenarios/lifecycle.js';
import { runSoak } from './lib/scenarios/soak.js';
import { startBaseline, startOurs, startOursForHttp, startPeer, type Target } from './lib/servers.js';

type SeededTarget = Target & LoadTarget;

runCleanupsOnSignals();

/** The servers to load: --target alone, or ours on a fresh database, its variants and the peer. */
async function startTargets(
  options: BenchOptions,
  meta: RunMeta,
  stamp: string,
  httpScenarios: HttpScenario[],
  work: string,
): Promise<Target[]> {
  if (options.target) return [{ name: 'target', url: options.target }];
  const dbName = `orders_bench_${stamp}`;
  const dbUrl = await createDatabase(options, dbName);
  meta.database = dbName;
  if (httpScenarios.length === 0 && options.soak === 0) return [];
  const { target, worker } = await startOursForHttp(options, dbUrl);
  meta.httpWorker = worker;
  const targets: Target[] = [target];
  for (const v of options.variants) {
    const variantDbUrl = v.ownDb
      ? await createDatabase({ ...options, app: v.app ?? options.app }, `${dbName}_${v.name}`)
      : dbUrl;
    targets.push(
      await startOurs(options, variantDbUrl, {
        worker,
        name: v.name,
        extraEnv: v.env,
        app: v.app,
        cpuProf: options.cpuProf,
      }),
    );
  }
  if (options.jwt) {
    // Tokens outlive the whole run: its scenarios and a soak.
    const jwt = await prepareJwt(work, 6 * 3600);
    const ours = await startOurs(options, dbUrl, {
      worker,
      name: 'jwt',
      extraEnv: jwt.env,
      cpuProf: options.cpuProf,
    });
    targets.push({ ...ours, tokensFile: jwt.tokensFile, token: jwt.tokens[0] });
  }
  if (options.peerCmd) {
    // A database of its own: the peer's orders write outbox rows too, which our in-process worker
    // would otherwise deliver during ours' runs (the peer delivers nothing).
    const peerDbUrl = await createDatabase(options, `${dbName}_peer`);
    targets.push(await startPeer(options, peerDbUrl, options.peerCmd));
  } else if (options.compare) targets.push({ name: options.peerName, url: options.compare });
  if (options.baseline && httpScenarios.includes('get')) {
    targets.push(await startBaseline(options, dbUrl, target.name));
  }
  return targets;
}

/** Seeds --seed orders through each target; their ids go to a file per target in `work`. */
async function seedTargets(
  options: BenchOptions,
  targets: Target[],
  stamp: string,
  work: string,
): Promise<SeededTarget[]> {
  const seeded: SeededTarget[] = [];
  for (const target of targets) {
    if (target.seedFrom) {
      // Same database: it reads the orders seeded through the other target.
      seeded.push({ ...target, idsFile: join(work, `${target.seedFrom}.ids`) });
      continue;
    }
    process.stderr.write(`bench: seeding ${options.seed} orders through ${target.name} (${target.url})\n`);
    const ids = await seedOrders(target, options.seed, stamp);
    const idsFile = join(work, `${target.name}.ids`);
    writeFileSync(idsFile, `${ids.join('\n')}\n`);
    seeded.push({ ...target, idsFile });
  }
  return seeded;
}

/** Every repeat: each target's HTTP scenarios, then (once per repeat) the drain. */
async function runRepeats(
  options: BenchOptions,
  targets: SeededTarget[],
  httpScenarios: HttpScenario[],
  stamp: string,
  backlog: OrderCreatedPayload | undefined,
  lifecycle: ReturnType<typeof lifecycleRunner> | undefined,
): Promise<Run[]> {
  const runs: Run[] = [];
  let drainDbUrl: string | undefined;
  for (let repeat = 1; repeat <= options.repeat; repeat++) {
    // ABBA order: odd repeats run the targets in order, even repeats in reverse, so a drift over
    // the run (tables growing, a neighbour starting) does not always favour the same target.
    for (const target of repeat % 2 === 1 ? targets : [...targets].reverse()) {
      for (const scenario of httpScenarios) {
        if (target.scenarios && !target.scenarios.includes(scenario)) continue;
        process.stderr.write(`bench: repeat ${repeat}/${options.repeat}: ${target.name} ${scenario} ... `);
        const pids = targets.flatMap((t) => (t.proc?.pid ? [t.proc.pid] : []));
        const r = await runHttpScenario(options, target, scenario, repeat, pids);
        if (target.proc && !target.proc.running()) {
          const { code, signal } = await target.proc.exited;
          throw new Error(
            `${target.name} exited during the ${scenario} run (code ${code}, signal ${signal}): ` +
              (target.proc.stderr().trim().slice(-2000) || '(nothing on stderr)'),
          );
        }
        process.stderr.write(`${r.reqPerSec} req/s, p99 ${r.p99Ms} ms, ${r.errors} errors\n`);
        runs.push(r);
      }
    }
    if (backlog) {
      drainDbUrl ??= await createDatabase(options, `orders_bench_${stamp}_drain`);
      process.stderr.write(
        `bench: repeat ${repeat}/${options.repeat}: ours drain ${options.drainEvents} ... `,
      );
      const r = await runDrain(options, drainDbUrl, repeat, backlog);
      process.stderr.write('skipped' in r ? `skipped: ${r.skipped}\n` : `${r.eventsPerSec} events/s\n`);
      runs.push(r);
      if ('skipped' in r) break; // the worker will not appear between repeats
    }
    if (lifecycle) runs.push(...(await lifecycle(repeat)));
  }
  return runs;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const work = mkdtempSync(join(tmpdir(), 'orders-bench-'));
  registerCleanup(() => rmSync(work, { recursive: true, force: true }));
  const httpScenarios = options.scenarios.filter(isHttpScenario);
  const wantDrain = options.scenarios.includes('drain');
  const meta = describeRun(options);
  // Checked against the event contract before any database is created.
  const backlog = wantDrain && !options.target ? backlogPayload() : undefined;

  const targets = await startTargets(options, meta, stamp, httpScenarios, work);
  if (wantDrain && options.target) {
    console.error('bench: drain needs our server and its database: skipped with --target');
  }
  const seeded = await seedTargets(options, targets, stamp, work);
  if (options.scenarios.includes('lifecycle') && options.target) {
    console.error('bench: lifecycle needs our server and its database: skipped with --target');
  }
  const lifecycle =
    options.scenarios.includes('lifecycle') && !options.target
      ? lifecycleRunner(options, (variant) =>
          variant
            ? createDatabase(
                { ...options, app: variant.app ?? options.app },
                `orders_bench_${stamp}_lifecycle_${variant.name}`,
              )
            : createDatabase(options, `orders_bench_${stamp}_lifecycle`),
        )
      : undefined;
  const runs = await runRepeats(options, seeded, httpScenarios, stamp, backlog, lifecycle);
  if (options.instructions) {
    runs.push(
      ...(await runInstructions(
        seeded.filter((t) => !t.scenarios || t.scenarios.includes('get')),
        work,
      )),
    );
  }
  // --soak: ours, its variants and jwt (not the peer nor the bare baseline), one after the other.
  const ourNames = new Set(['ours', 'jwt', ...options.variants.map((v) => v.name)]);
  for (const target of options.soak > 0 ? seeded.filter((t) => t.proc && ourNames.has(t.name)) : []) {
    process.stderr.write(`bench: soak ${target.name}: ${options.soak} min of mixed load\n`);
    runs.push(await runSoak(options, target));
  }
  for (const target of targets) {
    if (target.proc) await target.proc.stop();
  }
  report(options, meta, runs);
}

try {
  await main();
} catch (error) {
  console.error(`bench: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await runCleanups();
}
