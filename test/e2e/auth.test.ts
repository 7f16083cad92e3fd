/**
 * The secured API through the built binary, as a user tries it: `orders auth keygen` → `orders
 * serve` with AUTH_JWKS_URL=file://… (AUTH_MODE left to its default, jwt, since DATABASE_URL is
 * set) → `orders auth token` → an order. And the defaults that keep a service from starting open.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminQuery, NEEDS_SERVER, serverUrl, withDatabase } from '../helpers/db.js';
import { fetchPostOrder, freePort, runOrders, spawnOrders, waitForHttp } from '../helpers/process.js';

const server = serverUrl();
const dbName = `orders_e2e_auth_${process.pid}_${Date.now()}`;
const databaseUrl = server ? withDatabase(server, dbName) : '';
const dir = mkdtempSync(join(tmpdir(), 'orders-auth-'));
const ISSUER = 'https://idp.e2e.test';

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('orders auth keygen / token', () => {
  it('writes jwks.json and a 0600 private.jwk, refuses to overwrite them, and signs tokens', async () => {
    const keygen = await runOrders(['auth', 'keygen', '--out', join(dir, 'keys'), '--alg', 'ES256']);
    expect(keygen.code, keygen.stderr).toBe(0);
    expect(statSync(join(dir, 'keys', 'private.jwk')).mode & 0o777).toBe(0o600);
    const again = await runOrders(['auth', 'keygen', '--out', join(dir, 'keys')]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/--out .* already holds a key/);
    const badTtl = await runOrders([
      'auth',
      'token',
      '--key',
      join(dir, 'keys', 'private.jwk'),
      '--sub',
      'c',
      '--scope',
      'orders:read',
      '--iss',
      ISSUER,
      '--aud',
      'orders',
      '--ttl',
      'soon',
    ]);
    expect(badTtl.code).toBe(2);
    expect(badTtl.stderr).toMatch(/--ttl expects/);
    const noIssuer = await runOrders([
      'auth',
      'token',
      '--key',
      join(dir, 'keys', 'private.jwk'),
      '--sub',
      'c',
      '--scope',
      'orders:read',
    ]);
    expect(noIssuer.code).toBe(2);
    expect(noIssuer.stderr).toMatch(/--iss \(or AUTH_ISSUER\)/);
  });
});

describe.skipIf(!server)(`orders serve with AUTH_MODE=jwt (${server ? 'real server' : NEEDS_SERVER})`, () => {
  beforeAll(async () => {
    await adminQuery(server!, `CREATE DATABASE ${dbName}`);
    const migrated = await runOrders(['migrate', 'up'], { DATABASE_URL: databaseUrl });
    expect(migrated.code, migrated.stderr).toBe(0);
  });
  afterAll(async () => {
    await adminQuery(server!, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  });

  it('refuses to start with DATABASE_URL and no issuer or audience, naming both (exit 2)', async () => {
    const r = await runOrders(['serve', '--port', String(await freePort())], { DATABASE_URL: databaseUrl });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/AUTH_ISSUER: required/);
    expect(r.stderr).toMatch(/AUTH_AUDIENCE: required/);
  });

  it('keygen → serve → token → order, and 401 without the token', async () => {
    const keys = join(dir, 'serve-keys');
    expect((await runOrders(['auth', 'keygen', '--out', keys])).code).toBe(0);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const serve = spawnOrders(['serve', '--port', String(port), '--no-worker'], {
      DATABASE_URL: databaseUrl,
      AUTH_ISSUER: ISSUER,
      AUTH_AUDIENCE: 'orders',
      AUTH_JWKS_URL: pathToFileURL(join(keys, 'jwks.json')).href,
    });
    try {
      await waitForHttp(`${base}/readyz`, { status: 200 });
      const minted = await runOrders(
        [
          'auth',
          'token',
          '--key',
          join(keys, 'private.jwk'),
          '--sub',
          'c-e2e',
          '--scope',
          'orders:read orders:write',
          '--ttl',
          '5m',
        ],
        { AUTH_ISSUER: ISSUER, AUTH_AUDIENCE: 'orders' },
      );
      expect(minted.code, minted.stderr).toBe(0);
      const jwt = minted.stdout.trim();
      const body = { currency: 'EUR', items: [{ sku: 'A', quantity: 1, unitPrice: 100 }] };
      const anonymous = await fetchPostOrder(base, body);
      expect(anonymous.status).toBe(401);
      expect(anonymous.headers.get('www-authenticate')).toBe('Bearer realm="orders"');
      const created = await fetchPostOrder(base, body, { authorization: `Bearer ${jwt}` });
      expect(created.status).toBe(201);
      const order = (await created.json()) as { id: string; customerId: string };
      expect(order.customerId).toBe('c-e2e');
      const read = await fetch(`${base}/orders/${order.id}`, { headers: { authorization: `Bearer ${jwt}` } });
      expect(read.status).toBe(200);
    } finally {
      serve.child.kill('SIGTERM');
      await serve.exited;
    }
    expect(serve.stderr() + serve.stdout()).not.toContain('AUTH_MODE=none');
  });

  it('warns at start when AUTH_MODE=none is chosen', async () => {
    const port = await freePort();
    const serve = spawnOrders(['serve', '--port', String(port), '--no-worker'], {
      DATABASE_URL: databaseUrl,
      AUTH_MODE: 'none',
    });
    try {
      await waitForHttp(`http://127.0.0.1:${port}/readyz`, { status: 200 });
    } finally {
      serve.child.kill('SIGTERM');
      await serve.exited;
    }
    expect(serve.stdout()).toMatch(/"level":"warn".*AUTH_MODE=none/);
  });
});
