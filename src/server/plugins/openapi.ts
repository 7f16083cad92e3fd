/**
 * The OpenAPI document, collected from the route schemas as routes register (so this plugin comes
 * before them), plus what the schemas cannot express on their own: the response headers
 * (X-Request-Id, Retry-After, Location, ...).
 */
import swagger from '@fastify/swagger';
import fp from 'fastify-plugin';
import { jsonSchemaTransform, jsonSchemaTransformObject } from 'fastify-type-provider-zod';

export const openApi = fp<{ idempotencyTtlHours: number }>(
  async (app, { idempotencyTtlHours }) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'Orders API',
          version: '1.0.0',
          description:
            'Create, read, list, cancel and ship orders. Errors are RFC 9457 problem+json with a stable `code`. ' +
            `Idempotency-Key records are kept for ${idempotencyTtlHours} hours (IDEMPOTENCY_TTL_HOURS).`,
        },
        servers: [{ url: 'http://localhost:8080', description: 'Local development (`npx orders serve`)' }],
        tags: [
          { name: 'orders', description: 'Orders and their events' },
          { name: 'operations', description: 'Health, readiness and metrics' },
        ],
        components: {
          securitySchemes: {
            bearerAuth: {
              type: 'http',
              scheme: 'bearer',
              bearerFormat: 'JWT',
              description:
                'An RFC 9068 access token from the identity provider (AUTH_ISSUER), for the audience ' +
                'AUTH_AUDIENCE, signed with RS256, PS256, ES256 or EdDSA. Scopes (`scope` or `scp`): ' +
                "orders:read (one's own orders), orders:write (create and cancel one's own), " +
                'orders:fulfil (read any order, ship), orders:admin (everything, any customer). ' +
                'Not required when the service runs with AUTH_MODE=none.',
            },
          },
        },
      },
      transform: jsonSchemaTransform,
      transformObject: (doc) => addResponseHeaders(jsonSchemaTransformObject(doc)),
    });
  },
  { name: 'openapi' },
);

type Doc = {
  paths?: Record<
    string,
    Record<
      string,
      { responses?: Record<string, Record<string, unknown>>; requestBody?: { required?: boolean } }
    >
  >;
};

/** The commands: they take no body, an empty one or `{}` (swagger marks every declared body required). */
const COMMAND_PATH = /^\/orders\/\{id\}\/(cancel|ship)$/;

const header = (description: string, schema: Record<string, unknown> = { type: 'string' }) => ({
  description,
  schema,
});

/** The answers that carry an order's ETag: its 201, reads and commands (and the 304 of a read). */
function carriesETag(path: string, method: string, status: string): boolean {
  if (path === '/orders') return method === 'post' && status === '201';
  if (path === '/orders/{id}') return method === 'get' && (status === '200' || status === '304');
  return COMMAND_PATH.test(path) && status === '200';
}

/** Adds the response headers every answer (or a given status) carries. */
function addResponseHeaders<T>(document: T): T {
  const doc = document as Doc;
  for (const [path, methods] of Object.entries(doc.paths ?? {})) {
    for (const [method, operation] of Object.entries(methods)) {
      if (operation.requestBody && COMMAND_PATH.test(path)) operation.requestBody.required = false;
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const headers: Record<string, unknown> = {
          'X-Request-Id': header(
            "The caller's X-Request-Id when it is 1–128 visible ASCII characters, else a new one",
          ),
        };
        if (status === '401' || status === '403') {
          headers['WWW-Authenticate'] = header(
            'RFC 6750 challenge: `Bearer realm="orders"`, with `error="invalid_token"` for a token that fails ' +
              'verification, or `error="insufficient_scope", scope="…"` for a missing scope',
          );
        }
        // 409 is a key still in flight only on create (elsewhere it is a refused transition).
        if (status === '503' || (status === '409' && path === '/orders')) {
          headers['Retry-After'] = header('Seconds to wait before retrying', { type: 'integer', minimum: 0 });
        }
        if (path === '/orders' && method === 'post' && status === '201') {
          headers.Location = header('Path of the created order: /orders/{id}');
          headers['Idempotent-Replayed'] = header(
            'Present with the value "true" when this response is a replay of an earlier request with the same Idempotency-Key',
            { type: 'string', enum: ['true'] },
          );
        }
        if (carriesETag(path, method, status)) {
          headers.ETag = header(
            'The order\'s version as a strong entity tag, `"<version>"`: send it back in If-None-Match ' +
              '(GET) or If-Match (cancel, ship)',
          );
        }
        if (path === '/orders' && method === 'get' && status === '200') {
          headers.Link = header(
            'RFC 8288 `<…>; rel="next"`: the next page (the same parameters, the cursor advanced); absent on the last page',
          );
        }
        response.headers = { ...(response.headers as object | undefined), ...headers };
      }
    }
  }
  return document;
}
