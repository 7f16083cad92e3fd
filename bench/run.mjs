#!/usr/bin/env node
/**
 * Load benchmark for `orders serve` (and, optionally, a peer implementation of the same API).
 *
 *   npm run bench -- [options]            # or: node bench/run.mjs [options]
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
import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const BENCH_DIR = join(ROOT, 'bench');
const CLK_TCK = 100; // /proc/<pid>/stat and /proc/stat count in USER_HZ, 100 on Linux
const HTTP_SCENARIOS = ['get', 'post', 'mixed'];
const ALL_SCENARIOS = [...HTTP_SCENARIOS, 'drain'];

const USAGE = `usage: node bench/run.mjs [options]

  --duration S        seconds per measured scenario run (default 8)
  --warmup S          seconds of unmeasured load before each run (default 2; 0 = none)
  --connections C     concurrent connections (default 50)
  --threads T         wrk threads (default 2)
  --scenarios LIST    comma-separated: get,post,mixed,drain (default all)
  --repeat K          repeat every scenario K times and report medians (default 1)
  --seed N            orders created through the API before the runs, read by get/mixed (default 2000)
  --json FILE         write options, every run and the medians as JSON
  --tool wrk|autocannon   load generator (default: wrk when installed, else autocannon)
  --target URL        measure an already-running server instead of spawning ours (no drain)
  --compare URL       also measure this already-running server, interleaved with ours
  --peer-cmd CMD      spawn CMD (via sh -c) as the comparison server, with DATABASE_URL of the bench
                      database, PORT, HOST=127.0.0.1, DB_POOL_MAX and LOG_LEVEL in its environment
  --peer-name NAME    label of the comparison target (default "peer")
  --variant 'NAME:VAR=VALUE;VAR=VALUE'
                      (repeatable) also run our server with these extra environment variables, as
                      target NAME, interleaved with the others on the same database; e.g.
                      --variant 'pool20:DB_POOL_MAX=20' --variant 'warn:LOG_LEVEL=warn'
                      --variant 'async:PGOPTIONS=-c synchronous_commit=off' (an experiment only);
                      the pseudo-variable @app=DIR runs another build (e.g. a patched snapshot)
  --worker auto|on|off    in-process worker for the HTTP scenarios (default auto: on when it starts)
  --pool-max N        DB_POOL_MAX for the servers (default: $DB_POOL_MAX, else the service default)
  --log-level L       LOG_LEVEL for the servers (default info, as in production)
  --log-file FILE     send our server's stdout (its logs) here instead of /dev/null
  --cpu-prof DIR      run our server under node --cpu-prof; the .cpuprofile lands in DIR at exit
                      (summarise it with node bench/cpuprofile-summary.mjs DIR)
  --drain-events N    events inserted for the drain scenario (default 100000)
  --drain-timeout S   give up on a drain after S seconds (default 300)
  --app DIR           run bin/orders.js from this checkout (e.g. a built snapshot of a commit) instead
                      of this repository's working tree
  --quiet-wait S      before each measured run, wait up to S seconds until the rest of the machine
                      (everything but our servers and PostgreSQL) uses less than --quiet-cpu % of
                      one core over a second; for shared machines (default 0: do not wait)
  --quiet-cpu P       the threshold for --quiet-wait (default 20)
  --keep-db           do not drop the bench databases at the end
  -h, --help

environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres): where the
bench databases are created; DB_POOL_MAX, as --pool-max.

examples:
  npm run bench -- --repeat 3 --duration 8 --connections 50 --json bench/results/run.json
  npm run bench -- --peer-cmd /tmp/gopeer/gopeer --peer-name go --repeat 3 --scenarios get,post,mixed
  node bench/run.mjs --target http://127.0.0.1:8090 --scenarios get,post`;

// ---------------------------------------------------------------------------------------------
// options

function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string', default: '8' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '50' },
      threads: { type: 'string', default: '2' },
      scenarios: { type: 'string', default: ALL_SCENARIOS.join(',') },
      repeat: { type: 'string', default: '1' },
      seed: { type: 'string', default: '2000' },
      json: { type: 'string' },
      tool: { type: 'string' },
      target: { type: 'string' },
      compare: { type: 'string' },
      'peer-cmd': { type: 'string' },
      'peer-name': { type: 'string', default: 'peer' },
      variant: { type: 'string', multiple: true, default: [] },
      worker: { type: 'string', default: 'auto' },
      'pool-max': { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'log-file': { type: 'string' },
      'cpu-prof': { type: 'string' },
      'drain-events': { type: 'string', default: '100000' },
      'drain-timeout': { type: 'string', default: '300' },
      'quiet-wait': { type: 'string', default: '0' },
      'quiet-cpu': { type: 'string', default: '20' },
      app: { type: 'string' },
      'keep-db': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const problems = [];
  const int = (name, min, max) => {
    const raw = values[name];
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`--${name} expects a whole number from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      return min;
    }
    return Number(raw);
  };
  const scenarios = values.scenarios
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of scenarios) {
    if (!ALL_SCENARIOS.includes(s)) problems.push(`--scenarios: unknown scenario "${s}" (${ALL_SCENARIOS})`);
  }
  if (scenarios.length === 0) problems.push('--scenarios: name at least one scenario');
  const tool = values.tool ?? (hasWrk() ? 'wrk' : 'autocannon');
  if (!['wrk', 'autocannon'].includes(tool)) problems.push('--tool expects wrk or autocannon');
  if (tool === 'wrk' && !hasWrk()) problems.push('--tool wrk: wrk is not installed (apt-get install wrk)');
  if (!['auto', 'on', 'off'].includes(values.worker)) problems.push('--worker expects auto, on or off');
  for (const name of ['target', 'compare']) {
    if (values[name] !== undefined && !isLoopbackUrl(values[name])) {
      problems.push(`--${name} expects an http:// URL on this machine (127.0.0.0/8, localhost or [::1])`);
    }
  }
  if (values.target && (values.compare || values['peer-cmd'])) {
    problems.push('--target measures one external server; use --compare or --peer-cmd without it');
  }
  if (values.compare && values['peer-cmd']) problems.push('use either --compare or --peer-cmd, not both');
  const variants = values.variant.map((spec) => {
    const colon = spec.indexOf(':');
    const name = colon > 0 ? spec.slice(0, colon) : '';
    const env = {};
    for (const pair of spec
      .slice(colon + 1)
      .split(';')
      .filter(Boolean)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) problems.push(`--variant ${JSON.stringify(spec)}: "${pair}" is not VAR=VALUE`);
      else env[pair.slice(0, eq).trim()] = pair.slice(eq + 1);
    }
    // @app=DIR: this variant runs another build (e.g. a snapshot with a patch applied).
    const app = env['@app'] === undefined ? undefined : resolve(env['@app']);
    delete env['@app'];
    if (app && !existsSync(join(app, 'dist', 'cli.js')))
      problems.push(`--variant ${name}: no build in ${app}`);
    if (!/^[\w.-]+$/.test(name) || ['ours', 'target', values['peer-name']].includes(name)) {
      problems.push(
        `--variant ${JSON.stringify(spec)}: expected a new NAME (letters, digits, . _ -) before ':'`,
      );
    }
    return { name, env, app };
  });
  if (values.target && variants.length > 0) problems.push('--variant runs our server; not with --target');
  const poolMax = values['pool-max'] ?? process.env.DB_POOL_MAX;
  if (poolMax !== undefined && !/^\d+$/.test(poolMax)) {
    problems.push('--pool-max / DB_POOL_MAX expects a whole number');
  }
  const options = {
    duration: int('duration', 1, 600),
    warmup: int('warmup', 0, 600),
    connections: int('connections', 1, 10_000),
    threads: int('threads', 1, 64),
    repeat: int('repeat', 1, 100),
    seed: int('seed', 1, 1_000_000),
    drainEvents: int('drain-events', 1, 10_000_000),
    drainTimeout: int('drain-timeout', 1, 3600),
    quietWait: int('quiet-wait', 0, 3600),
    quietCpu: int('quiet-cpu', 1, 10_000),
    scenarios,
    tool,
    json: values.json,
    target: values.target?.replace(/\/+$/, ''),
    compare: values.compare?.replace(/\/+$/, ''),
    peerCmd: values['peer-cmd'],
    peerName: values['peer-name'],
    variants,
    worker: values.worker,
    poolMax,
    logLevel: values['log-level'],
    logFile: values['log-file'],
    cpuProf: values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined,
    keepDb: values['keep-db'],
    app: resolve(values.app ?? ROOT),
    baseUrl: process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  };
  if (
    !existsSync(join(options.app, 'bin', 'orders.js')) ||
    !existsSync(join(options.app, 'dist', 'cli.js'))
  ) {
    problems.push(
      `--app: no built orders in ${options.app} (bin/orders.js and dist/cli.js; run npm run build)`,
    );
  }
  if (problems.length > 0) {
    console.error(`bench: ${problems.join('\n       ')}\n\n${USAGE}`);
    process.exit(2);
  }
  return options;
}

function hasWrk() {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    // wrk --version prints its banner and exits 1; only ENOENT means it is missing.
    return error.code !== 'ENOENT';
  }
}

function isLoopbackUrl(value) {
  try {
    const u = new URL(value);
    return (
      u.protocol === 'http:' &&
      (u.hostname === 'localhost' || u.hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(u.hostname))
    );
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// processes, cleanup

const cleanups = [];
let cleaningUp = false;

async function cleanup() {
  if (cleaningUp) return;
  cleaningUp = true;
  while (cleanups.length > 0) {
    const fn = cleanups.pop();
    try {
      await fn();
    } catch (error) {
      console.error(`bench: cleanup: ${error.message}`);
    }
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    console.error(`\nbench: ${signal}: stopping servers and dropping databases`);
    cleanup().finally(() => process.exit(130));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/** A child process with its exit as a promise and its stderr kept (last 64 KiB) for messages. */
function startProcess(command, args, { env, stdoutFile, label, cwd = ROOT }) {
  const out = stdoutFile ? openSync(stdoutFile, 'a') : openSync('/dev/null', 'w');
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', out, 'pipe'], detached: false });
  closeSync(out);
  let stderr = '';
  child.stderr.on('data', (chunk) => {
    stderr = (stderr + chunk.toString()).slice(-65_536);
  });
  const exited = new Promise((resolveExit) => {
    child.once('exit', (code, signal) => resolveExit({ code, signal }));
    child.once('error', (error) => resolveExit({ code: -1, signal: null, error }));
  });
  const proc = {
    label,
    child,
    pid: child.pid,
    exited,
    stderr: () => stderr,
    running: () => child.exitCode === null && child.signalCode === null,
    async stop(timeoutMs = 15_000) {
      if (!proc.running()) return exited;
      child.kill('SIGTERM');
      const done = await Promise.race([exited, sleep(timeoutMs).then(() => undefined)]);
      if (done) return done;
      console.error(`bench: ${label} ignored SIGTERM for ${timeoutMs} ms: killing it`);
      child.kill('SIGKILL');
      return exited;
    },
  };
  cleanups.push(() => proc.stop());
  return proc;
}

/** Polls url until it answers 200, the process exits, or timeoutMs passes. */
async function waitHttpOk(url, proc, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && !proc.running()) return { ok: false, exited: true };
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await res.arrayBuffer();
      if (res.status === 200) return { ok: true };
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  return { ok: false, exited: false };
}

// ---------------------------------------------------------------------------------------------
// databases

function databaseUrl(base, name) {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

async function withClient(url, fn) {
  const client = new pg.Client({ connectionString: url, application_name: 'orders-bench' });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

async function createDatabase(options, name) {
  await withClient(options.baseUrl, (c) => c.query(`CREATE DATABASE "${name}"`));
  benchDatabases.add(name);
  if (!options.keepDb) {
    cleanups.push(() =>
      withClient(options.baseUrl, (c) => c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`)),
    );
  }
  const url = databaseUrl(options.baseUrl, name);
  const migrate = startProcess(process.execPath, ['bin/orders.js', 'migrate', 'up'], {
    env: { ...process.env, DATABASE_URL: url, MIGRATE_DATABASE_URL: url, LOG_LEVEL: 'warn' },
    label: 'orders migrate up',
    cwd: options.app,
  });
  const result = await Promise.race([migrate.exited, sleep(120_000).then(() => ({ code: 'timeout' }))]);
  if (result.code !== 0) {
    await migrate.stop();
    throw new Error(`orders migrate up failed (${result.code}): ${migrate.stderr().trim()}`);
  }
  return url;
}

// ---------------------------------------------------------------------------------------------
// servers

async function startOurs(options, dbUrl, { worker, cpuProf, name = 'ours', extraEnv = {}, app }) {
  const port = await freePort();
  const env = {
    ...process.env,
    DATABASE_URL: dbUrl,
    LOG_LEVEL: options.logLevel,
    SHUTDOWN_TIMEOUT_MS: '10000',
    NODE_ENV: 'production',
  };
  delete env.NODE_OPTIONS;
  if (options.poolMax !== undefined) env.DB_POOL_MAX = options.poolMax;
  Object.assign(env, extraEnv);
  const nodeArgs = cpuProf ? ['--cpu-prof', `--cpu-prof-dir=${cpuProf}`] : [];
  const args = [...nodeArgs, 'bin/orders.js', 'serve', '--port', String(port), '--host', '127.0.0.1'];
  if (!worker) args.push('--no-worker');
  const proc = startProcess(process.execPath, args, {
    env,
    stdoutFile: options.logFile,
    label: `orders serve ${name} (port ${port})`,
    cwd: app ?? options.app,
  });
  const url = `http://127.0.0.1:${port}`;
  const ready = await waitHttpOk(`${url}/readyz`, proc);
  if (!ready.ok) {
    await proc.stop();
    if (cpuProf && existsSync(cpuProf)) {
      // A start that failed still writes a profile at exit: keep only the server that ran.
      for (const f of readdirSync(cpuProf)) if (f.includes(`.${proc.pid}.`)) rmSync(join(cpuProf, f));
    }
    const message = proc.stderr().trim() || '(no output)';
    const error = new Error(`orders serve did not become ready: ${message}`);
    error.workerUnavailable = /worker is not implemented/i.test(message);
    throw error;
  }
  return { name, url, proc, node: true };
}

/** Starts ours for the HTTP scenarios, with the worker when it can (returns whether it did). */
async function startOursForHttp(options, dbUrl) {
  if (options.worker !== 'off') {
    try {
      return {
        target: await startOurs(options, dbUrl, { worker: true, cpuProf: options.cpuProf }),
        worker: true,
      };
    } catch (error) {
      if (options.worker === 'on' || !error.workerUnavailable) throw error;
      console.error('bench: the in-process worker is unavailable; HTTP scenarios run with --no-worker');
    }
  }
  return {
    target: await startOurs(options, dbUrl, { worker: false, cpuProf: options.cpuProf }),
    worker: false,
  };
}

async function startPeer(options, dbUrl) {
  const port = await freePort();
  const env = { ...process.env, DATABASE_URL: dbUrl, PORT: String(port), HOST: '127.0.0.1' };
  env.LOG_LEVEL = options.logLevel;
  if (options.poolMax !== undefined) env.DB_POOL_MAX = options.poolMax;
  // exec: the shell becomes the server, so its pid (RSS, CPU) is the server's.
  const proc = startProcess('sh', ['-c', `exec ${options.peerCmd}`], {
    env,
    label: `${options.peerName} (port ${port})`,
  });
  const url = `http://127.0.0.1:${port}`;
  const ready = await waitHttpOk(`${url}/readyz`, proc);
  if (!ready.ok) {
    await proc.stop();
    throw new Error(`${options.peerName} did not become ready: ${proc.stderr().trim() || '(no output)'}`);
  }
  return { name: options.peerName, url, proc };
}

// ---------------------------------------------------------------------------------------------
// measurements: RSS, CPU time of the server and of PostgreSQL, machine utilisation

function rssMiB(pid) {
  if (!pid) return null;
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Math.round(Number(match[1]) / 102.4) / 10 : null;
  } catch {
    return null;
  }
}

/** utime + stime of one process, in seconds (null when unknown). */
function procCpu(pid) {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/**
 * CPU seconds per PostgreSQL process that works for the bench: the cluster's own processes
 * (postmaster, walwriter, checkpointer, ...) and backends or autovacuum workers of the bench
 * databases (PostgreSQL puts the database name into each backend's process title). Backends of
 * other databases, e.g. a neighbour's test suite on the same server, are left out.
 */
const benchDatabases = new Set();
const PG_AUX =
  /^postgres: (?:\S+: )?(checkpointer|background writer|walwriter|autovacuum launcher|logical replication launcher|stats collector|archiver|startup|walreceiver|walsender)/;

function postgresCpu() {
  const perPid = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (comm !== 'postgres') continue;
      const title = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const ours =
        !title.startsWith('postgres: ') || // the postmaster itself (its path and arguments)
        PG_AUX.test(title) ||
        title.split(' ').some((word) => benchDatabases.has(word));
      if (!ours) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      perPid.set(entry, (Number(fields[11]) + Number(fields[12])) / CLK_TCK);
    } catch {
      // the process ended meanwhile
    }
  }
  return perPid;
}

/** CPU used between two postgresCpu() samples; a process that started in between counts whole. */
function postgresCpuDelta(before, after) {
  let total = 0;
  for (const [pid, seconds] of after) total += Math.max(0, seconds - (before.get(pid) ?? 0));
  return total;
}

/** Machine-wide jiffies from /proc/stat: busy, iowait, total. */
function machineCpu() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, iowait, total: busy + idle + iowait, system: system + irq + softirq };
}

/**
 * The server process's kernel-mode CPU seconds, and its main thread's scheduler statistics from
 * /proc/<pid>/task/<pid>/schedstat: seconds on a CPU and seconds runnable but waiting for one
 * (time the event loop was ready to run while the cores were busy with something else).
 */
function serverSched(pid) {
  if (!pid) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const [onCpu, waiting] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8')
      .split(' ')
      .map(Number);
    return { system: Number(fields[12]) / CLK_TCK, mainOnCpu: onCpu / 1e9, mainWaiting: waiting / 1e9 };
  } catch {
    return null;
  }
}

/** `node`: the server is ours (Node), whose main thread is the event loop the loop columns describe. */
function sampleCpu(pid, node = true) {
  return {
    at: process.hrtime.bigint(),
    server: procCpu(pid),
    sched: serverSched(pid),
    node,
    postgres: postgresCpu(),
    machine: machineCpu(),
  };
}

function cpuDelta(before, after, requests, generatorCpu = 0) {
  const wall = Number(after.at - before.at) / 1e9;
  const m = {
    busy: after.machine.busy - before.machine.busy,
    iowait: after.machine.iowait - before.machine.iowait,
    total: after.machine.total - before.machine.total,
    system: after.machine.system - before.machine.system,
  };
  const server = before.server === null || after.server === null ? null : after.server - before.server;
  const postgres = postgresCpuDelta(before.postgres, after.postgres);
  const perReq = (seconds) => (seconds === null || !requests ? null : round((seconds * 1000) / requests, 3));
  const sched =
    before.sched && after.sched
      ? {
          system: after.sched.system - before.sched.system,
          onCpu: after.sched.mainOnCpu - before.sched.mainOnCpu,
          waiting: after.sched.mainWaiting - before.sched.mainWaiting,
        }
      : null;
  return {
    // Share of the server's CPU time spent in the kernel (syscalls: sockets, loopback TCP, ...).
    serverKernelSharePct: sched && server ? round((sched.system / server) * 100, 1) : null,
    // The main thread (event loop): % of wall time on a CPU, and % runnable but kept off the CPU.
    serverMainOnCpuPct: sched && after.node ? round((sched.onCpu / wall) * 100, 1) : null,
    serverMainRunqWaitPct: sched && after.node ? round((sched.waiting / wall) * 100, 1) : null,
    serverCpuPct: server === null ? null : round((server / wall) * 100, 1),
    postgresCpuPct: round((postgres / wall) * 100, 1),
    serverCpuMsPerReq: perReq(server),
    postgresCpuMsPerReq: perReq(postgres),
    generatorCpuPct: round((generatorCpu / wall) * 100, 1),
    // Everything else that ran: the kernel's softirq work for loopback TCP, and other processes on
    // the machine (a busy neighbour shows up here and makes the run suspect).
    otherCpuPct: m.total
      ? round(
          ((m.busy / m.total) * cpus().length -
            (server ?? 0) / wall -
            postgres / wall -
            generatorCpu / wall) *
            100,
          1,
        )
      : null,
    machineBusyPct: m.total ? round((m.busy / m.total) * 100, 1) : null,
    machineSystemPct: m.total ? round((m.system / m.total) * 100, 1) : null,
    machineIowaitPct: m.total ? round((m.iowait / m.total) * 100, 1) : null,
  };
}

function round(value, digits = 0) {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

// ---------------------------------------------------------------------------------------------
// load generation

const ORDER_BODY = (n) =>
  JSON.stringify({
    customerId: `c-${n % 1000}`,
    currency: 'EUR',
    items: [
      { sku: 'SKU-1', quantity: 2, unitPrice: 1999 },
      { sku: 'SKU-2', quantity: 1, unitPrice: 500 },
    ],
  });

/** Creates `count` orders through the API (16 at a time) and returns their ids. */
async function seed(target, count, stamp) {
  const ids = [];
  let next = 0;
  const failures = [];
  async function lane() {
    while (next < count && failures.length < 10) {
      const n = next++;
      try {
        const res = await fetch(`${target.url}/orders`, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            'idempotency-key': `seed-${stamp}-${target.name}-${n}`,
          },
          body: ORDER_BODY(n),
          signal: AbortSignal.timeout(10_000),
        });
        const body = await res.json();
        if (res.status === 201 && typeof body.id === 'string') ids.push(body.id);
        else failures.push(`HTTP ${res.status}`);
      } catch (error) {
        failures.push(error.message);
      }
    }
  }
  await Promise.all(Array.from({ length: 16 }, lane));
  if (failures.length > 0)
    throw new Error(`seeding ${target.name} failed: ${failures.slice(0, 3).join('; ')}`);
  return ids;
}

function runWrk(options, target, scenario, seconds, runId) {
  const script = join(BENCH_DIR, `${scenario}.lua`);
  const scriptArgs =
    scenario === 'get' ? [target.idsFile] : scenario === 'post' ? [runId] : [target.idsFile, runId];
  const args = [
    `-t${Math.min(options.threads, options.connections)}`,
    `-c${options.connections}`,
    `-d${seconds}s`,
    '--timeout',
    '10s',
    '-s',
    script,
    target.url,
    '--',
    ...scriptArgs,
  ];
  return new Promise((resolveRun, reject) => {
    const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    // wrk's own CPU time: sampled while it runs (the last sample is at most 100 ms before its end).
    let generatorCpu = 0;
    const sampler = setInterval(() => {
      generatorCpu = procCpu(child.pid) ?? generatorCpu;
    }, 100);
    let out = '';
    let err = '';
    child.stdout.on('data', (c) => {
      out += c;
    });
    child.stderr.on('data', (c) => {
      err += c;
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    child.once('exit', (code) => {
      clearTimeout(killer);
      clearInterval(sampler);
      const line = out.split('\n').find((l) => l.startsWith('WRK_RESULT '));
      if (code !== 0 || !line) {
        reject(new Error(`wrk exited ${code}: ${err.trim() || out.trim()}`));
        return;
      }
      const r = JSON.parse(line.slice('WRK_RESULT '.length));
      resolveRun({
        requests: r.requests,
        seconds: r.durationUs / 1e6,
        p50: r.p50Us / 1000,
        p95: r.p95Us / 1000,
        p99: r.p99Us / 1000,
        max: r.maxUs / 1000,
        non2xx: r.statusErrors,
        socketErrors: r.connectErrors + r.readErrors + r.writeErrors + r.timeouts,
        generatorCpu,
      });
    });
  });
}

async function runAutocannon(options, target, scenario, seconds, runId) {
  const { default: autocannon } = await import('autocannon');
  const ids = scenario === 'post' ? [] : readFileSync(target.idsFile, 'utf8').split('\n').filter(Boolean);
  let counter = 0;
  const get = (req) => ({ ...req, method: 'GET', path: `/orders/${ids[(Math.random() * ids.length) | 0]}` });
  const post = (req) => {
    counter++;
    return {
      ...req,
      method: 'POST',
      path: '/orders',
      headers: { 'content-type': 'application/json', 'idempotency-key': `${runId}-${counter}` },
      body: ORDER_BODY(counter),
    };
  };
  // Every fifth request is a POST (post() advances the counter itself).
  const mixed = (req) => {
    if (counter % 5 === 4) return post(req);
    counter++;
    return get(req);
  };
  const setupRequest = scenario === 'get' ? get : scenario === 'post' ? post : mixed;
  const latencies = [];
  const instance = autocannon({
    url: target.url,
    connections: options.connections,
    duration: seconds,
    timeout: 10,
    requests: [{ setupRequest }],
  });
  instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
  const cpuBefore = process.cpuUsage();
  const result = await instance;
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  const pct = (p) =>
    latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : 0;
  return {
    requests: result.requests.total,
    seconds: result.duration,
    p50: pct(0.5),
    p95: pct(0.95),
    p99: pct(0.99),
    max: latencies.at(-1) ?? 0,
    non2xx: result.non2xx,
    socketErrors: result.errors + result.timeouts,
    generatorCpu: (cpu.user + cpu.system) / 1e6,
  };
}

/** CPU % of one core used over `ms` by everything except the given pids and the bench's PostgreSQL. */
async function neighbourCpu(pids, ms = 1000) {
  const sample = () => ({
    at: process.hrtime.bigint(),
    machine: machineCpu(),
    pg: postgresCpu(),
    ours: pids.map(procCpu),
  });
  const a = sample();
  await sleep(ms);
  const b = sample();
  const wall = Number(b.at - a.at) / 1e9;
  const busy = ((b.machine.busy - a.machine.busy) / (b.machine.total - a.machine.total)) * cpus().length;
  let known = postgresCpuDelta(a.pg, b.pg);
  b.ours.forEach((v, i) => {
    known += v === null || a.ours[i] === null ? 0 : v - a.ours[i];
  });
  return (busy - known / wall) * 100;
}

/** Waits (bounded by --quiet-wait) for the neighbours to calm down; returns their last CPU %. */
async function waitForQuiet(options, pids) {
  if (options.quietWait === 0) return null;
  const deadline = Date.now() + options.quietWait * 1000;
  let other = await neighbourCpu(pids);
  while (other > options.quietCpu && Date.now() < deadline) other = await neighbourCpu(pids);
  if (other > options.quietCpu) process.stderr.write(`(busy neighbours: ${round(other)} % of a core) `);
  return round(other, 1);
}

async function runHttpScenario(options, target, scenario, repeat, allPids = []) {
  const run = options.tool === 'wrk' ? runWrk : runAutocannon;
  const runId = `${Date.now().toString(36)}-${target.name}-${scenario}-${repeat}`;
  const neighboursBefore = await waitForQuiet(options, allPids);
  if (options.warmup > 0) await run(options, target, scenario, options.warmup, `${runId}-warm`);
  const load1 = loadavg()[0];
  const before = sampleCpu(target.proc?.pid, target.node === true);
  const r = await run(options, target, scenario, options.duration, runId);
  const after = sampleCpu(target.proc?.pid, target.node === true);
  return {
    target: target.name,
    scenario,
    repeat,
    reqPerSec: round(r.requests / r.seconds, 1),
    requests: r.requests,
    p50Ms: round(r.p50, 2),
    p95Ms: round(r.p95, 2),
    p99Ms: round(r.p99, 2),
    maxMs: round(r.max, 2),
    errors: r.non2xx + r.socketErrors,
    non2xx: r.non2xx,
    socketErrors: r.socketErrors,
    rssMiB: rssMiB(target.proc?.pid),
    loadavg1Before: round(load1, 2),
    neighbourCpuPctBefore: neighboursBefore,
    ...cpuDelta(before, after, r.requests, r.generatorCpu),
  };
}

// ---------------------------------------------------------------------------------------------
// drain: N pending OrderCreated events, one in-process worker, time until all are processed

const INSERT_BACKLOG_SQL = `
WITH o AS (
  INSERT INTO orders (id, customer_id, currency, total, created_at)
  SELECT gen_random_uuid(), 'c-' || (g % 1000), 'EUR', 4498, now()
  FROM generate_series(1, $1::int) AS g
  RETURNING id, customer_id, total, created_at
), i AS (
  INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price)
  SELECT o.id, l.line_no, l.sku, l.quantity, l.unit_price
  FROM o, (VALUES (0::smallint, 'SKU-1', 2, 1999::bigint), (1::smallint, 'SKU-2', 1, 500::bigint))
       AS l (line_no, sku, quantity, unit_price)
)
INSERT INTO outbox_events (id, aggregate_type, aggregate_id, type, payload, created_at, available_at)
SELECT gen_random_uuid(), 'order', o.id, 'OrderCreated',
       jsonb_build_object(
         'id', o.id, 'customerId', o.customer_id, 'status', 'pending', 'currency', 'EUR',
         'items', jsonb_build_array(
           jsonb_build_object('sku', 'SKU-1', 'quantity', 2, 'unitPrice', 1999),
           jsonb_build_object('sku', 'SKU-2', 'quantity', 1, 'unitPrice', 500)),
         'total', o.total,
         'createdAt', to_char(o.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
       o.created_at, o.created_at
FROM o`;

async function runDrain(options, drainDbUrl, repeat) {
  await withClient(drainDbUrl, (c) =>
    c.query('TRUNCATE outbox_events, notifications, order_items, orders, idempotency_keys'),
  );
  let server;
  try {
    server = await startOurs(options, drainDbUrl, { worker: true, cpuProf: undefined });
  } catch (error) {
    if (error.workerUnavailable) return { skipped: 'worker unavailable' };
    throw error;
  }
  try {
    return await withClient(drainDbUrl, async (c) => {
      await c.query(INSERT_BACKLOG_SQL, [options.drainEvents]);
      const before = sampleCpu(server.proc.pid);
      const started = process.hrtime.bigint();
      const deadline = Date.now() + options.drainTimeout * 1000;
      let remaining = options.drainEvents;
      let dead = 0;
      while (Date.now() < deadline && server.proc.running()) {
        const { rows } = await c.query(
          `SELECT count(*) FILTER (WHERE status <> 'processed')::int AS remaining,
                  count(*) FILTER (WHERE status = 'dead')::int AS dead FROM outbox_events`,
        );
        remaining = rows[0].remaining;
        dead = rows[0].dead;
        if (remaining === 0) break;
        await sleep(250);
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const after = sampleCpu(server.proc.pid);
      const processed = options.drainEvents - remaining;
      return {
        target: 'ours',
        scenario: 'drain',
        repeat,
        events: options.drainEvents,
        processed,
        dead,
        complete: remaining === 0,
        seconds: round(seconds, 2),
        eventsPerSec: round(processed / seconds, 1),
        rssMiB: rssMiB(server.proc.pid),
        ...cpuDelta(before, after, processed),
        note: remaining === 0 ? undefined : `not finished: ${remaining} left after ${round(seconds, 1)} s`,
      };
    });
  } finally {
    await server.proc.stop();
  }
}

// ---------------------------------------------------------------------------------------------
// report

function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

const MEDIAN_FIELDS = [
  'reqPerSec',
  'p50Ms',
  'p95Ms',
  'p99Ms',
  'maxMs',
  'errors',
  'rssMiB',
  'serverCpuPct',
  'postgresCpuPct',
  'serverCpuMsPerReq',
  'serverKernelSharePct',
  'serverMainOnCpuPct',
  'serverMainRunqWaitPct',
  'postgresCpuMsPerReq',
  'generatorCpuPct',
  'otherCpuPct',
  'machineBusyPct',
  'machineSystemPct',
  'machineIowaitPct',
  'eventsPerSec',
  'seconds',
];

function summarise(runs) {
  const groups = new Map();
  for (const r of runs) {
    const key = `${r.target}\u0000${r.scenario}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(r);
  }
  return [...groups.values()].map((rs) => {
    const row = { target: rs[0].target, scenario: rs[0].scenario, runs: rs.length };
    if (rs.every((r) => r.skipped)) return { ...row, skipped: rs[0].skipped };
    const measured = rs.filter((r) => !r.skipped);
    for (const f of MEDIAN_FIELDS) {
      const m = median(measured.map((r) => r[f]));
      if (m !== null) row[f] = round(m, 2);
    }
    return row;
  });
}

const RESULT_COLUMNS = [
  ['target', (r) => r.target],
  ['scenario', (r) => r.scenario],
  ['req/s', (r) => r.reqPerSec],
  ['p50 ms', (r) => r.p50Ms],
  ['p95 ms', (r) => r.p95Ms],
  ['p99 ms', (r) => r.p99Ms],
  ['errors', (r) => r.errors],
  ['RSS MiB', (r) => r.rssMiB],
  ['events/s', (r) => (r.skipped ? `skipped: ${r.skipped}` : r.eventsPerSec)],
];

// Where the CPU went during the measured run (% of one core; ms per request or per event).
const CPU_COLUMNS = [
  ['target', (r) => r.target],
  ['scenario', (r) => r.scenario],
  ['srv CPU %', (r) => r.serverCpuPct],
  ['srv ms/req', (r) => r.serverCpuMsPerReq],
  ['srv kernel %', (r) => r.serverKernelSharePct],
  ['loop on-CPU %', (r) => r.serverMainOnCpuPct],
  ['loop runq-wait %', (r) => r.serverMainRunqWaitPct],
  ['pg CPU %', (r) => r.postgresCpuPct],
  ['pg ms/req', (r) => r.postgresCpuMsPerReq],
  ['gen CPU %', (r) => r.generatorCpuPct],
  ['other CPU %', (r) => r.otherCpuPct],
];

function printTable(rows, cols) {
  const cells = rows.map((r) => cols.map(([, get]) => ((get(r) ?? '') === '' ? '' : String(get(r)))));
  const widths = cols.map(([h], i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (values) => `| ${values.map((v, i) => v.padEnd(widths[i])).join(' | ')} |`;
  console.log(line(cols.map(([h]) => h)));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const c of cells) console.log(line(c));
}

/** The app's commit: a snapshot made with bench/snapshot.sh records it in COMMIT; else git's HEAD (+dirty). */
function gitCommit(dir) {
  try {
    return readFileSync(join(dir, 'COMMIT'), 'utf8').trim();
  } catch {
    // not a snapshot
  }
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dir, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'migrations'], {
      cwd: dir,
      encoding: 'utf8',
    }).trim();
    return dirty ? `${head}+uncommitted` : head;
  } catch {
    return null;
  }
}

// ---------------------------------------------------------------------------------------------
// main

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
  const work = mkdtempSync(join(tmpdir(), 'orders-bench-'));
  cleanups.push(() => rmSync(work, { recursive: true, force: true }));
  const httpScenarios = options.scenarios.filter((s) => HTTP_SCENARIOS.includes(s));
  const wantDrain = options.scenarios.includes('drain');
  const meta = {
    startedAt: new Date().toISOString(),
    app: options.app,
    commit: gitCommit(options.app),
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model,
    tool: options.tool,
    duration: options.duration,
    warmup: options.warmup,
    connections: options.connections,
    threads: options.threads,
    repeat: options.repeat,
    seed: options.seed,
    poolMax: options.poolMax ?? 'default (10)',
    logLevel: options.logLevel,
    scenarios: options.scenarios,
    variants: options.variants,
  };

  const targets = [];
  let dbUrl;
  if (options.target) {
    targets.push({ name: 'target', url: options.target });
  } else {
    const dbName = `orders_bench_${stamp}`;
    dbUrl = await createDatabase(options, dbName);
    meta.database = dbName;
    if (httpScenarios.length > 0) {
      const { target, worker } = await startOursForHttp(options, dbUrl);
      meta.httpWorker = worker;
      targets.push(target);
      for (const v of options.variants) {
        targets.push(await startOurs(options, dbUrl, { worker, name: v.name, extraEnv: v.env, app: v.app }));
      }
      if (options.peerCmd) targets.push(await startPeer(options, dbUrl));
      else if (options.compare) targets.push({ name: options.peerName, url: options.compare });
    }
  }
  if (wantDrain && options.target) {
    console.error('bench: drain needs our server and its database: skipped with --target');
  }

  for (const target of targets) {
    process.stderr.write(`bench: seeding ${options.seed} orders through ${target.name} (${target.url})\n`);
    const ids = await seed(target, options.seed, stamp);
    target.idsFile = join(work, `${target.name}.ids`);
    writeFileSync(target.idsFile, `${ids.join('\n')}\n`);
  }

  const runs = [];
  let drainDbUrl;
  for (let repeat = 1; repeat <= options.repeat; repeat++) {
    // ABBA order: odd repeats run the targets in order, even repeats in reverse, so a drift over
    // the run (tables growing, a neighbour starting) does not always favour the same target.
    for (const target of repeat % 2 === 1 ? targets : [...targets].reverse()) {
      for (const scenario of httpScenarios) {
        process.stderr.write(`bench: repeat ${repeat}/${options.repeat}: ${target.name} ${scenario} ... `);
        const pids = targets.map((t) => t.proc?.pid).filter(Boolean);
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
    if (wantDrain && !options.target) {
      if (!drainDbUrl) drainDbUrl = await createDatabase(options, `orders_bench_${stamp}_drain`);
      process.stderr.write(
        `bench: repeat ${repeat}/${options.repeat}: ours drain ${options.drainEvents} ... `,
      );
      const r = await runDrain(options, drainDbUrl, repeat);
      process.stderr.write(r.skipped ? `skipped: ${r.skipped}\n` : `${r.eventsPerSec} events/s\n`);
      runs.push(r.skipped ? { target: 'ours', scenario: 'drain', repeat, skipped: r.skipped } : r);
      if (r.skipped) break; // the worker will not appear between repeats
    }
  }
  for (const target of targets) {
    if (target.proc) await target.proc.stop();
  }

  const summary = summarise(runs);
  console.log(
    `\norders bench: ${options.tool}, ${options.connections} connections, ${options.duration} s runs ` +
      `(+${options.warmup} s warm-up), ${options.repeat} repeat(s), medians; ` +
      `LOG_LEVEL=${options.logLevel}, DB_POOL_MAX=${meta.poolMax}` +
      (meta.httpWorker === undefined ? '' : `, worker ${meta.httpWorker ? 'on' : 'off'} during HTTP runs`) +
      `, commit ${meta.commit}\n`,
  );
  printTable(summary, RESULT_COLUMNS);
  console.log('\nwhere the CPU went (% of one core; srv/pg ms per request, or per event for drain):\n');
  printTable(
    summary.filter((r) => !r.skipped),
    CPU_COLUMNS,
  );
  if (options.json) {
    writeFileSync(resolve(options.json), `${JSON.stringify({ meta, summary, runs }, null, 2)}\n`);
    console.log(`\nwrote ${options.json}`);
  }
  if (options.cpuProf)
    console.log(
      `\nCPU profile(s) in ${options.cpuProf}: node bench/cpuprofile-summary.mjs ${options.cpuProf}`,
    );
}

try {
  await main();
} catch (error) {
  console.error(`bench: ${error.message}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
