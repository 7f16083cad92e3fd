/**
 * AUTH_MODE=jwt end to end through the app: keys generated in the test and served by a JWKS
 * endpoint on loopback (so rotation and an unreachable provider are real HTTP), every refusal of
 * the contract, scopes, ownership and per-caller Idempotency-Keys, on the test database.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { JSONWebKeySet } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DevKeyPair, generateDevKeyPair, signDevToken } from '../../src/auth/dev-keys.js';
import { createKeyStore, jwksSource } from '../../src/auth/key-store.js';
import { createTokenVerifier, type TokenVerifier } from '../../src/auth/verifier.js';
import { createLogger } from '../../src/platform/logger.js';
import { createMetrics, type Metrics } from '../../src/platform/metrics.js';
import { createAuthentication } from '../../src/server/plugins/authentication.js';
import { buildTestApp, postOrder, validOrder } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const ISSUER = 'https://idp.example.test';
const AUDIENCE = 'orders';

let tdb: TestDatabase;
let app: FastifyInstance;
let metrics: Metrics;
let verifier: TokenVerifier;
let jwksServer: Server;
let served: JSONWebKeySet | 'down';
let keys: DevKeyPair;
let rotated: DevKeyPair;

async function startJwksServer(): Promise<string> {
  jwksServer = createServer((_request, response) => {
    if (served === 'down') {
      response.writeHead(503).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/jwk-set+json' }).end(JSON.stringify(served));
  });
  await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`;
}

beforeAll(async () => {
  keys = await generateDevKeyPair('ES256');
  rotated = await generateDevKeyPair('EdDSA');
  served = keys.jwks;
  const jwksUrl = await startJwksServer();
  tdb = await createTestDatabase();
  const store = createKeyStore({
    load: jwksSource({ url: new URL(jwksUrl), issuer: ISSUER }),
    // Short, so the test sees a rotation without waiting the production 30 s.
    cooldownMs: 200,
  });
  verifier = createTokenVerifier({
    issuer: ISSUER,
    audience: AUDIENCE,
    clockToleranceS: 30,
    keys: store.resolve,
  });
  metrics = createMetrics({ defaultMetrics: false });
  ({ app } = await buildTestApp(tdb, { metrics, auth: createAuthentication({ verifier, metrics }) }));
});

afterAll(async () => {
  await app?.close();
  await tdb?.drop();
  await new Promise((resolve) => jwksServer?.close(resolve));
});

const token = (sub: string, scope: string, overrides: Partial<Parameters<typeof signDevToken>[0]> = {}) =>
  signDevToken({
    privateJwk: keys.privateJwk,
    subject: sub,
    scope,
    issuer: ISSUER,
    audience: AUDIENCE,
    ttlSeconds: 300,
    ...overrides,
  });
const bearer = async (sub: string, scope: string) => ({ authorization: `Bearer ${await token(sub, scope)}` });
const get = async (url: string, headers: Record<string, string> = {}) =>
  app.inject({ method: 'GET', url, headers });
const orderFor = (customerId?: string) => {
  const { customerId: _omit, ...rest } = validOrder();
  return customerId === undefined ? rest : { ...rest, customerId };
};

async function create(customer: string) {
  const res = await postOrder(app, orderFor(), await bearer(customer, 'orders:write'));
  expect(res.statusCode).toBe(201);
  return res.json() as { id: string; customerId: string };
}

describe('authentication', () => {
  it('refuses a request without a token with 401 and a bare Bearer challenge, before reading the body', async () => {
    const res = await postOrder(app, '{not json');
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="orders"');
    expect(res.json()).toMatchObject({ code: 'unauthenticated', status: 401 });
    expect((await get('/orders/00000000-0000-4000-8000-000000000000')).statusCode).toBe(401);
  });

  it('refuses tokens that fail verification with 401 invalid_token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const bad = [
      await token('c-1', 'orders:read', { issuedAt: now - 1000, ttlSeconds: 60 }),
      await token('c-1', 'orders:read', { issuer: 'https://other.test' }),
      await token('c-1', 'orders:read', { audience: 'payments' }),
      await token('c-1', 'orders:read', { notBefore: now + 600 }),
      'e30.e30.',
    ];
    for (const jwt of bad) {
      const res = await get('/orders/00000000-0000-4000-8000-000000000000', {
        authorization: `Bearer ${jwt}`,
      });
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="orders", error="invalid_token"');
    }
    const text = await metrics.registry.getSingleMetricAsString('orders_auth_failures_total');
    expect(text).toMatch(/reason="expired"\} [1-9]/);
    expect(text).toMatch(/reason="invalid"\} [1-9]/);
    expect(text).toMatch(/reason="missing"\} [1-9]/);
  });

  it('answers 403 insufficient_scope naming the scope, for a token without it', async () => {
    const res = await postOrder(app, orderFor(), await bearer('c-1', 'orders:read'));
    expect(res.statusCode).toBe(403);
    expect(res.headers['www-authenticate']).toBe(
      'Bearer realm="orders", error="insufficient_scope", scope="orders:write"',
    );
    expect(res.json()).toMatchObject({ code: 'forbidden' });
    const read = await get(
      '/orders/00000000-0000-4000-8000-000000000000',
      await bearer('c-1', 'orders:write'),
    );
    expect(read.statusCode).toBe(403);
  });

  it('picks up a rotated signing key (a new kid in the served JWKS)', async () => {
    const first = await get(
      '/orders/00000000-0000-4000-8000-000000000000',
      await bearer('c-1', 'orders:read'),
    );
    expect(first.statusCode).toBe(404);
    served = { keys: [...keys.jwks.keys, ...rotated.jwks.keys] };
    await new Promise((resolve) => setTimeout(resolve, 250)); // past the (test) cooldown
    const jwt = await token('c-1', 'orders:read', { privateJwk: rotated.privateJwk });
    const res = await get('/orders/00000000-0000-4000-8000-000000000000', { authorization: `Bearer ${jwt}` });
    expect(res.statusCode).toBe(404); // verified with the new key; the order just does not exist
  });

  it('answers 503 with Retry-After, not 401, when the keys cannot be fetched', async () => {
    served = 'down';
    await new Promise((resolve) => setTimeout(resolve, 250));
    const unknownKid = await generateDevKeyPair('ES256');
    const jwt = await token('c-1', 'orders:read', { privateJwk: unknownKid.privateJwk });
    const res = await get('/orders/00000000-0000-4000-8000-000000000000', { authorization: `Bearer ${jwt}` });
    expect(res.statusCode).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.json()).toMatchObject({ code: 'unavailable' });
    // Tokens signed with a key we already have still work while the provider is down.
    expect(
      (await get('/orders/00000000-0000-4000-8000-000000000000', await bearer('c-1', 'orders:read')))
        .statusCode,
    ).toBe(404);
    served = { keys: [...keys.jwks.keys, ...rotated.jwks.keys] };
    const text = await metrics.registry.getSingleMetricAsString('orders_auth_failures_total');
    expect(text).toMatch(/reason="jwks_unavailable"\} [1-9]/);
  });
});

describe('authorization: customers see their own orders', () => {
  it("creates the order for the token's sub when customerId is left out", async () => {
    const order = await create('alice');
    expect(order.customerId).toBe('alice');
  });

  it('refuses to create an order in another customer’s name (403), allows naming oneself', async () => {
    const other = await postOrder(app, orderFor('bob'), await bearer('alice', 'orders:write'));
    expect(other.statusCode).toBe(403);
    expect(other.json()).toMatchObject({ code: 'forbidden' });
    const self = await postOrder(app, orderFor('alice'), await bearer('alice', 'orders:write'));
    expect(self.statusCode).toBe(201);
  });

  it("hides another customer's order and its events behind the same 404 as an unknown id", async () => {
    const order = await create('alice');
    const asBob = await bearer('bob', 'orders:read');
    const theirs = await get(`/orders/${order.id}`, asBob);
    const unknown = await get('/orders/00000000-0000-4000-8000-000000000000', asBob);
    expect(theirs.statusCode).toBe(404);
    expect(unknown.statusCode).toBe(404);
    const strip = (body: Record<string, unknown>) => ({ ...body, detail: undefined, instance: undefined });
    expect(strip(theirs.json())).toEqual(strip(unknown.json()));
    expect((await get(`/orders/${order.id}/events`, asBob)).statusCode).toBe(404);
    const own = await get(`/orders/${order.id}`, await bearer('alice', 'orders:read'));
    expect(own.statusCode).toBe(200);
    expect((await get(`/orders/${order.id}/events`, await bearer('alice', 'orders:read'))).statusCode).toBe(
      200,
    );
  });

  it('lets orders:fulfil and orders:admin read any order', async () => {
    const order = await create('carol');
    expect((await get(`/orders/${order.id}`, await bearer('svc-fulfil', 'orders:fulfil'))).statusCode).toBe(
      200,
    );
    expect((await get(`/orders/${order.id}/events`, await bearer('ops', 'orders:admin'))).statusCode).toBe(
      200,
    );
  });

  it('requires customerId from an admin on create', async () => {
    const missing = await postOrder(app, orderFor(), await bearer('ops', 'orders:admin'));
    expect(missing.statusCode).toBe(400);
    expect(missing.json().errors).toEqual([{ path: '/customerId', message: expect.any(String) }]);
    const forDave = await postOrder(app, orderFor('dave'), await bearer('ops', 'orders:admin'));
    expect(forDave.statusCode).toBe(201);
    expect(forDave.json().customerId).toBe('dave');
  });
});

describe('logs', () => {
  it("carry the caller's sub on the request line and never the token", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        done();
      },
    });
    const logged = await buildTestApp(tdb, {
      logger: createLogger('info', { destination: sink }),
      auth: createAuthentication({ verifier, metrics }),
    });
    const jwt = await token('grace', 'orders:write orders:read');
    const res = await postOrder(logged.app, orderFor(), { authorization: `Bearer ${jwt}` });
    expect(res.statusCode).toBe(201);
    await logged.app.close();
    const line = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'request completed');
    expect(line).toMatchObject({ sub: 'grace', statusCode: 201 });
    const signature = jwt.split('.')[2]!;
    expect(lines.join('\n')).not.toContain(signature);
  });
});

describe('Idempotency-Keys belong to the caller', () => {
  it('gives two callers with the same key two orders, and replays within one caller', async () => {
    const key = `shared-${Date.now()}`;
    const a1 = await postOrder(app, orderFor(), {
      ...(await bearer('erin', 'orders:write')),
      'idempotency-key': key,
    });
    const b1 = await postOrder(app, orderFor(), {
      ...(await bearer('frank', 'orders:write')),
      'idempotency-key': key,
    });
    expect(a1.statusCode).toBe(201);
    expect(b1.statusCode).toBe(201);
    expect(a1.json().id).not.toBe(b1.json().id);
    const a2 = await postOrder(app, orderFor(), {
      ...(await bearer('erin', 'orders:write')),
      'idempotency-key': key,
    });
    expect(a2.headers['idempotent-replayed']).toBe('true');
    expect(a2.body).toBe(a1.body);
  });
});
