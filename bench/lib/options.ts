/** The bench's command line: every option, its checks, and the usage text. */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { imageNodeFlags } from './node-flags.js';
import { REPO_ROOT } from './paths.js';

export const HTTP_SCENARIOS = ['get', 'post', 'mixed'] as const;
export type HttpScenario = (typeof HTTP_SCENARIOS)[number];
const ALL_SCENARIOS: readonly string[] = [...HTTP_SCENARIOS, 'drain', 'lifecycle'];

export function isHttpScenario(scenario: string): scenario is HttpScenario {
  return (HTTP_SCENARIOS as readonly string[]).includes(scenario);
}

export type LoadTool = 'wrk' | 'autocannon';
export type WorkerMode = 'auto' | 'on' | 'off';

/** Our server once more, under another name, with extra environment variables or another build. */
export interface Variant {
  name: string;
  env: Record<string, string>;
  app: string | undefined;
  /** @db=own: a database of its own, migrated by its build (to compare schemas, not only code). */
  ownDb: boolean;
}

export interface BenchOptions {
  duration: number;
  warmup: number;
  connections: number;
  threads: number;
  repeat: number;
  seed: number;
  drainEvents: number;
  drainTimeout: number;
  quietWait: number;
  quietCpu: number;
  scenarios: string[];
  tool: LoadTool;
  json: string | undefined;
  target: string | undefined;
  compare: string | undefined;
  peerCmd: string | undefined;
  peerName: string;
  /** Also measure the bare fastify + pg GET (bench/baseline/bare-get.ts), in the get scenario. */
  baseline: boolean;
  /** Also run ours with AUTH_MODE=jwt (target "jwt"), a valid bearer token per request. */
  jwt: boolean;
  variants: Variant[];
  worker: WorkerMode;
  poolMax: string | undefined;
  logLevel: string;
  logFile: string | undefined;
  cpuProf: string | undefined;
  keepDb: boolean;
  /** --instructions: instructions per GET under callgrind (user space, deterministic) for the Node targets. */
  instructions: boolean;
  /** Node flags for ours and the bare baseline: the image's (Dockerfile ENTRYPOINT), or none (--stock-node). */
  nodeFlags: string[];
  /** --soak: minutes of mixed load with memory samples every 30 s (0: no soak). */
  soak: number;
  /** --lifecycle-rate: POSTs per second in the lifecycle scenario (0: closed loop, --connections). */
  lifecycleRate: number;
  lifecycleGrace: number;
  /** --nats-url: the lifecycle's NATS; undefined: a private nats-server (natsServer) is started. */
  natsUrl: string | undefined;
  natsServer: string;
  app: string;
  baseUrl: string;
}

const USAGE = `usage: npm run bench -- [options]

  --duration S        seconds per measured scenario run (default 8)
  --warmup S          seconds of unmeasured load before each run (default 2; 0 = none)
  --connections C     concurrent connections (default 50)
  --threads T         wrk threads (default 2)
  --scenarios LIST    comma-separated: get,post,mixed,drain,lifecycle (default all; with --soak and
                      no --scenarios, none)
  --repeat K          repeat every scenario K times and report medians (default 1)
  --seed N            orders created through the API before the runs, read by get/mixed (default 2000)
  --json FILE         write options, every run and the medians as JSON
  --tool wrk|autocannon   load generator (default: wrk when installed, else autocannon)
  --target URL        measure an already-running server instead of spawning ours (no drain)
  --compare URL       also measure this already-running server, interleaved with ours
  --peer-cmd CMD      spawn CMD (via sh -c) as the comparison server, with DATABASE_URL of a bench
                      database of its own (migrated like ours), PORT, HOST=127.0.0.1, DB_POOL_MAX
                      and LOG_LEVEL in its environment
  --peer-name NAME    label of the comparison target (default "peer")
  --baseline          also measure "bare": fastify + pg running our GET_ORDER_BODY_SQL with no hooks
                      (bench/baseline/bare-get.ts), in the get scenario only, on ours' seeded ids
  --jwt               also run ours as "jwt": AUTH_MODE=jwt, a valid bearer token on every request
                      (100 ES256 tokens with orders:admin, taken in turn; bench/lib/jwt.ts)
  --variant 'NAME:VAR=VALUE;VAR=VALUE'
                      (repeatable) also run our server with these extra environment variables, as
                      target NAME, interleaved with the others on the same database; e.g.
                      --variant 'pool20:DB_POOL_MAX=20' --variant 'warn:LOG_LEVEL=warn'
                      --variant 'async:PGOPTIONS=-c synchronous_commit=off' (an experiment only);
                      the pseudo-variable @app=DIR runs another build (e.g. a patched snapshot),
                      and @db=own gives the variant a database of its own, migrated by its build
                      (to compare two schemas: a shared database has ours' migrations)
  --worker auto|on|off    in-process worker for the HTTP scenarios (default auto: on when it starts)
  --pool-max N        DB_POOL_MAX for the servers (default: $DB_POOL_MAX, else the service default)
  --log-level L       LOG_LEVEL for the servers (default info, as in production)
  --log-file FILE     send our server's stdout (its logs) here instead of /dev/null
  --cpu-prof DIR      run every Node target (ours, its variants, jwt, bare) under node --cpu-prof;
                      each target's .cpuprofile lands in DIR/<target> at exit (summarise one with
                      npm run bench:cpuprofile -- DIR/ours)
  --drain-events N    events inserted for the drain scenario (default 100000)
  --drain-timeout S   give up on a drain after S seconds (default 300)
  --app DIR           run bin/orders.js from this checkout (e.g. a built snapshot of a commit) instead
                      of this repository's working tree
  --quiet-wait S      before each measured run, wait up to S seconds until the rest of the machine
                      (everything but our servers and PostgreSQL) uses less than --quiet-cpu % of
                      one core over a second; for shared machines (default 0: do not wait)
  --quiet-cpu P       the threshold for --quiet-wait (default 20)
  --processes N       also run our server with SERVE_PROCESSES=N (orders serve --processes N) as
                      target ours-Np; CPU and RSS of every target cover its whole process tree
  --lifecycle-rate R  lifecycle: POST R orders/s (open loop); default 0: --connections lanes, each
                      posting its next order once the last is confirmed (as fast as orders complete)
  --lifecycle-grace S lifecycle: after the load, wait up to S s for every order to be confirmed
                      (default 60)
  --nats-url URL      lifecycle: use this NATS (JetStream on) instead of a private nats-server started
                      by the bench; its streams are not purged between runs, so use one of your own
  --nats-server PATH  the nats-server binary for that (default: nats-server on PATH, else
                      /usr/sbin/nats-server; lifecycle is skipped when there is none)
  --soak [MINUTES]    after the scenarios, the mixed load for MINUTES (default 5) against ours, its
                      variants and jwt, one after the other, with RSS (/proc, whole process tree) and
                      V8 heap used (/metrics) every 30 s and a verdict: the last third of the loaded
                      samples against the first third (more than 10 % = growth)
  --instructions      after the get runs, count the instructions each Node target (ours, its
                      variants, jwt, bare; not --processes) executes per GET under valgrind's
                      callgrind: a second instance of it under callgrind, 30,000 GETs of warm-up,
                      then 5 rounds of 3,000 (8 keep-alive connections), the first 2 dropped;
                      user space only, every thread; repeats within ~1 % whatever else the
                      machine does (work on timers weighs more: a GET takes ~20x longer under
                      callgrind); needs valgrind
  --stock-node        run ours and the bare baseline with Node's default flags (default: the flags
                      of the image's ENTRYPOINT, e.g. --max-semi-space-size=32, for both)
  --keep-db           do not drop the bench databases at the end
  -h, --help

environment: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres): where the
bench databases are created; DB_POOL_MAX, as --pool-max.

examples:
  npm run bench -- --repeat 3 --duration 8 --connections 50 --json bench/results/run.json
  npm run bench -- --peer-cmd /tmp/gopeer/gopeer --peer-name go --repeat 3 --scenarios get,post,mixed
  npm run bench -- --target http://127.0.0.1:8090 --scenarios get,post
  npm run bench -- --scenarios get,post,lifecycle --processes 2 --repeat 3
  npm run bench -- --soak 5`;

/** `--soak` without a number means 5 minutes (parseArgs has no optional values). */
function withSoakDefault(argv: string[]): string[] {
  return argv.flatMap((arg, i) =>
    arg === '--soak' && !/^\d+$/.test(argv[i + 1] ?? '') ? ['--soak', '5'] : [arg],
  );
}

function readArgs(argv: string[]) {
  const { values } = parseArgs({
    args: withSoakDefault(argv),
    options: {
      duration: { type: 'string', default: '8' },
      warmup: { type: 'string', default: '2' },
      connections: { type: 'string', default: '50' },
      threads: { type: 'string', default: '2' },
      scenarios: { type: 'string' },
      repeat: { type: 'string', default: '1' },
      seed: { type: 'string', default: '2000' },
      json: { type: 'string' },
      tool: { type: 'string' },
      target: { type: 'string' },
      compare: { type: 'string' },
      'peer-cmd': { type: 'string' },
      'peer-name': { type: 'string', default: 'peer' },
      baseline: { type: 'boolean', default: false },
      jwt: { type: 'boolean', default: false },
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
      'stock-node': { type: 'boolean', default: false },
      instructions: { type: 'boolean', default: false },
      processes: { type: 'string' },
      'lifecycle-rate': { type: 'string', default: '0' },
      'lifecycle-grace': { type: 'string', default: '60' },
      'nats-url': { type: 'string' },
      'nats-server': { type: 'string' },
      soak: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  return values;
}

type IntegerOption =
  | 'duration'
  | 'warmup'
  | 'connections'
  | 'threads'
  | 'repeat'
  | 'seed'
  | 'drain-events'
  | 'drain-timeout'
  | 'quiet-wait'
  | 'quiet-cpu'
  | 'lifecycle-rate'
  | 'lifecycle-grace';

/** Parses argv; prints the usage and exits on --help (0) or on any problem (2, all of them listed). */
export function parseOptions(argv: string[]): BenchOptions {
  const values = readArgs(argv);
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const problems: string[] = [];
  const int = (
    name: IntegerOption | 'soak' | 'processes',
    min: number,
    max: number,
    raw: string = values[name as IntegerOption],
  ): number => {
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`--${name} expects a whole number from ${min} to ${max} (got ${JSON.stringify(raw)})`);
      return min;
    }
    return Number(raw);
  };
  const soak = values.soak === undefined ? 0 : int('soak', 1, 1440, values.soak);
  // --soak alone runs only the soak; name scenarios to run them as well.
  const scenarios = (values.scenarios ?? (soak > 0 ? '' : ALL_SCENARIOS.join(',')))
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const s of scenarios) {
    if (!ALL_SCENARIOS.includes(s)) problems.push(`--scenarios: unknown scenario "${s}" (${ALL_SCENARIOS})`);
  }
  if (scenarios.length === 0 && soak === 0) problems.push('--scenarios: name at least one scenario');
  const tool = values.tool ?? (hasWrk() ? 'wrk' : 'autocannon');
  if (tool !== 'wrk' && tool !== 'autocannon') problems.push('--tool expects wrk or autocannon');
  if (tool === 'wrk' && !hasWrk()) problems.push('--tool wrk: wrk is not installed (apt-get install wrk)');
  const worker = values.worker;
  if (worker !== 'auto' && worker !== 'on' && worker !== 'off') {
    problems.push('--worker expects auto, on or off');
  }
  for (const name of ['target', 'compare'] as const) {
    const url = values[name];
    if (url !== undefined && !isLoopbackUrl(url)) {
      problems.push(`--${name} expects an http:// URL on this machine (127.0.0.0/8, localhost or [::1])`);
    }
  }
  if (values.target && (values.compare || values['peer-cmd'])) {
    problems.push('--target measures one external server; use --compare or --peer-cmd without it');
  }
  if (values.compare && values['peer-cmd']) problems.push('use either --compare or --peer-cmd, not both');
  const variants = values.variant.map((spec) => parseVariant(spec, values['peer-name'], problems));
  if (values.processes !== undefined) {
    // --processes N: the same server forking N processes (SERVE_PROCESSES), as target ours-Np.
    const n = int('processes', 1, 64, values.processes);
    variants.push({ name: `ours-${n}p`, env: { SERVE_PROCESSES: String(n) }, app: undefined, ownDb: false });
  }
  if (values.target && variants.length > 0) problems.push('--variant runs our server; not with --target');
  if (values.target && values.baseline) problems.push('--baseline runs beside our server; not with --target');
  if (values.target && values.jwt) problems.push('--jwt runs our server once more; not with --target');
  if (values.instructions && values.target) {
    problems.push('--instructions runs our server under callgrind; not with --target');
  }
  if (values.instructions && !scenarios.includes('get')) {
    problems.push('--instructions counts the get scenario: include get in --scenarios');
  }
  const poolMax = values['pool-max'] ?? process.env.DB_POOL_MAX;
  if (poolMax !== undefined && !/^\d+$/.test(poolMax)) {
    problems.push('--pool-max / DB_POOL_MAX expects a whole number');
  }
  const options: BenchOptions = {
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
    // Checked above: a wrong value is listed in `problems` and never returned.
    tool: tool as LoadTool,
    json: values.json,
    target: values.target?.replace(/\/+$/, ''),
    compare: values.compare?.replace(/\/+$/, ''),
    peerCmd: values['peer-cmd'],
    peerName: values['peer-name'],
    baseline: values.baseline,
    jwt: values.jwt,
    variants,
    worker: worker as WorkerMode,
    poolMax,
    logLevel: values['log-level'],
    logFile: values['log-file'],
    cpuProf: values['cpu-prof'] ? resolve(values['cpu-prof']) : undefined,
    keepDb: values['keep-db'],
    instructions: values.instructions,
    nodeFlags: values['stock-node'] ? [] : imageNodeFlags(),
    soak,
    lifecycleRate: int('lifecycle-rate', 0, 100_000),
    lifecycleGrace: int('lifecycle-grace', 0, 3600),
    natsUrl: values['nats-url'],
    natsServer: values['nats-server'] ?? findNatsServer(),
    app: resolve(values.app ?? REPO_ROOT),
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

/** --variant 'NAME:VAR=VALUE;VAR=VALUE'; what is wrong with it goes to `problems`. */
function parseVariant(spec: string, peerName: string, problems: string[]): Variant {
  const colon = spec.indexOf(':');
  const name = colon > 0 ? spec.slice(0, colon) : '';
  const env: Record<string, string> = {};
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
  const db = env['@db'];
  delete env['@db'];
  if (db !== undefined && db !== 'own') problems.push(`--variant ${name}: @db=${db}: expected @db=own`);
  if (app && !existsSync(join(app, 'dist', 'cli.js'))) problems.push(`--variant ${name}: no build in ${app}`);
  if (!/^[\w.-]+$/.test(name) || ['ours', 'target', 'bare', 'jwt', peerName].includes(name)) {
    problems.push(
      `--variant ${JSON.stringify(spec)}: expected a new NAME (letters, digits, . _ -) before ':'`,
    );
  }
  return { name, env, app, ownDb: db === 'own' };
}

/** nats-server on PATH, else where Debian's package puts it (/usr/sbin is not on every PATH). */
function findNatsServer(): string {
  for (const dir of [...(process.env.PATH ?? '').split(':').filter(Boolean), '/usr/sbin', '/usr/local/bin']) {
    if (existsSync(join(dir, 'nats-server'))) return join(dir, 'nats-server');
  }
  return 'nats-server';
}

function hasWrk(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (error) {
    // wrk --version prints its banner and exits 1; only ENOENT means it is missing.
    return (error as NodeJS.ErrnoException).code !== 'ENOENT';
  }
}

function isLoopbackUrl(value: string): boolean {
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
