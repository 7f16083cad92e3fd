/**
 * The `orders` program. Each subcommand's module is imported only when that subcommand runs,
 * so `orders healthcheck` (a probe that runs every few seconds in every pod) loads no server code.
 * Exit codes: 0 success, 1 failure at run time, 2 bad usage or bad configuration.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

function intArg(name: string, min: number, max: number) {
  return (value: string): number => {
    if (!/^\d+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new InvalidArgumentError(`${name} expects a whole number from ${min} to ${max}.`);
    }
    return Number(value);
  };
}

/** Runs a command module's `run`, mapping known errors to exit codes (no process.exit deep inside). */
async function execute(
  load: () => Promise<{ run: (...args: never[]) => Promise<number | undefined> }>,
  ...args: unknown[]
) {
  try {
    const mod = await load();
    const code = await (mod.run as (...a: unknown[]) => Promise<number | undefined>)(...args);
    process.exitCode = code ?? 0;
  } catch (error) {
    const { reportError } = await import('./commands/report.js');
    process.exitCode = reportError(error);
  }
}

/**
 * This build's version: package.json ships beside dist/, in the npm package and in the image.
 * (npm_package_version is set only under npm, and then names the project npm was run in.)
 */
function packageVersion(): string {
  const manifest = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
  return (JSON.parse(manifest) as { version: string }).version;
}

export function buildProgram(): Command {
  const program = new Command('orders')
    .description('Orders microservice and its ops toolkit')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride()
    .configureHelp({ sortSubcommands: false });

  program
    .command('serve')
    .description('run the HTTP API (and, unless --no-worker, the event worker in-process)')
    .option('--port <n>', 'listen port (env PORT, default 8080)', intArg('--port', 0, 65535))
    .option('--host <host>', 'listen address (env HOST, default 0.0.0.0)')
    .option('--no-worker', 'do not run the event worker in this process (env WORKER_ENABLED=false)')
    // 64 is config.ts's MAX_SERVE_PROCESSES (not imported: the CLI loads no zod at start).
    .option(
      '--processes <n>',
      'processes sharing the port; one runs the worker (env SERVE_PROCESSES, default 1)',
      intArg('--processes', 1, 64),
    )
    .action((options) => execute(() => import('./commands/serve.js'), options));

  program
    .command('worker')
    .description('run the event worker alone; serves /healthz, /readyz and /metrics on WORKER_PORT')
    .action(() => execute(() => import('./commands/worker.js')));

  const migrate = program
    .command('migrate')
    .description('schema migrations (connects with MIGRATE_DATABASE_URL or DATABASE_URL)');
  migrate
    .command('up')
    .description('apply every pending migration (safe to run from several pods at once)')
    .action(() => execute(() => import('./commands/migrate.js'), { action: 'up' }));
  migrate
    .command('down')
    .description('revert the last N migrations (default 1)')
    .argument('[n]', 'how many migrations to revert', intArg('N', 1, 10_000))
    .action((n?: number) =>
      execute(() => import('./commands/migrate.js'), { action: 'down', count: n ?? 1 }),
    );
  migrate
    .command('status')
    .description('list migrations and whether each is applied')
    .action(() => execute(() => import('./commands/migrate.js'), { action: 'status' }));
  migrate
    .command('create')
    .description('create an empty SQL migration file in migrations/')
    .argument('<name>', 'what the migration does, e.g. add_orders_note')
    .action((name: string) => execute(() => import('./commands/migrate.js'), { action: 'create', name }));

  program
    .command('healthcheck')
    .description("probe a running server's /readyz: exit 0 when ready, 1 when not")
    .option('--url <url>', 'URL to probe (default http://127.0.0.1:$PORT/readyz)')
    .option('--timeout <ms>', 'give up after this many milliseconds', intArg('--timeout', 1, 600_000), 2000)
    .action((options) => execute(() => import('./commands/healthcheck.js'), options));

  program
    .command('render-k8s')
    .description('print Kubernetes manifests for this configuration (multi-document YAML)')
    .option('--image <image>', 'container image with a tag or digest (env K8S_IMAGE)')
    .option('--namespace <ns>', 'namespace (env K8S_NAMESPACE, default orders)')
    .option('--out <dir>', 'write one file per object into this directory instead of stdout')
    .action((options) => execute(() => import('./commands/render-k8s.js'), options));

  program
    .command('openapi')
    .description('print the OpenAPI 3.1 document the server serves')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'yaml']).default('json'))
    .action((options) => execute(() => import('./commands/openapi.js'), options));

  program
    .command('asyncapi')
    .description('print the AsyncAPI 3.0 document of every event published and consumed')
    .addOption(new Option('--format <format>', 'output format').choices(['json', 'yaml']).default('json'))
    .action((options) => execute(() => import('./commands/asyncapi.js'), options));

  const events = program.command('events').description('the event outbox, as operators see it');
  events
    .command('list')
    .description('list outbox events, newest first')
    .option('--status <status>', 'only events in this status: pending, processing, processed or dead')
    .option('--limit <n>', 'at most this many events', intArg('--limit', 1, 10_000), 50)
    .option('--json', 'print a JSON array instead of a table')
    .action((options) => execute(() => import('./commands/events.js'), { action: 'list', ...options }));
  events
    .command('retry')
    .description('put dead-lettered events back to pending (attempts reset) and print how many')
    .argument('[ids...]', 'event ids to retry')
    .option('--dead', 'retry every dead-lettered event')
    .action((ids: string[], options: { dead?: boolean }) =>
      execute(() => import('./commands/events.js'), { action: 'retry', ids, dead: options.dead === true }),
    );

  program
    .command('partners')
    .description('simulated partners, for development and demos')
    .command('simulate')
    .description(
      'play Catalog and Payments over NATS (NATS_URL): answer every new order until SIGTERM/SIGINT',
    )
    .action(() => execute(() => import('./commands/partners.js')));

  const inbox = program
    .command('inbox')
    .description("the consumed (inbound) events, Catalog's and Payments', as operators see them");
  inbox
    .command('list')
    .description('list inbound events, newest first')
    .option('--status <status>', 'only events in this status: processed or dead')
    .option('--limit <n>', 'at most this many events', intArg('--limit', 1, 10_000), 50)
    .option('--json', 'print a JSON array instead of a table')
    .action((options) => execute(() => import('./commands/inbox.js'), { action: 'list', ...options }));
  inbox
    .command('retry')
    .description('apply dead inbound events again from their stored message, and print how many it applied')
    .argument('[ids...]', 'CloudEvents ids of the events to apply again (every dead entry with that id)')
    .option('--dead', 'apply every dead inbound event again')
    .action((ids: string[], options: { dead?: boolean }) =>
      execute(() => import('./commands/inbox.js'), { action: 'retry', ids, dead: options.dead === true }),
    );

  const auth = program
    .command('auth')
    .description(
      'development signing keys and access tokens (production tokens come from your identity provider)',
    );
  auth
    .command('keygen')
    .description(
      'write a signing key pair: jwks.json (public, for AUTH_JWKS_URL=file://…) and private.jwk (0600)',
    )
    .option('--out <dir>', 'directory to write them into (created)', './.orders/auth')
    .option('--alg <alg>', 'ES256, RS256 or EdDSA', 'ES256')
    .action((options) => execute(() => import('./commands/auth.js'), { action: 'keygen', ...options }));
  auth
    .command('token')
    .description('print a signed access token (RFC 9068) for development and tests')
    .requiredOption('--key <file>', 'the private.jwk written by `orders auth keygen`')
    .requiredOption('--sub <subject>', 'the customer (or service) the token is for')
    .requiredOption('--scope <scopes>', 'space-separated, e.g. "orders:read orders:write"')
    .option('--iss <url>', 'issuer (default AUTH_ISSUER)')
    .option('--aud <audience>', 'audience (default AUTH_AUDIENCE)')
    .option('--ttl <ttl>', 'lifetime: seconds, or 30m, 1h, 2d', '1h')
    .action((options) => execute(() => import('./commands/auth.js'), { action: 'token', ...options }));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Asked-for help and the version exit 0 (commander says so with exitCode 0); help shown
      // because no command was given, and every parse error, is bad usage: exit 2.
      process.exitCode = error.exitCode === 0 ? 0 : EXIT_USAGE;
      return;
    }
    throw error;
  }
}

await main(process.argv);
