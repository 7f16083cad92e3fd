import type { FastifyPluginAsync } from 'fastify';
import { JSON_CONTENT_TYPE } from '../../platform/problem.js';
import { sendRaw } from '../problem.js';

/** The OpenAPI document as JSON, and Swagger UI on it at /docs; neither is in the document. */
export const docsRoutes: FastifyPluginAsync = async (app) => {
  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) =>
    sendRaw(reply, 200, JSON_CONTENT_TYPE, JSON.stringify(app.swagger())),
  );
  const { default: swaggerUi } = await import('@fastify/swagger-ui');
  await app.register(swaggerUi, { routePrefix: '/docs' });
};
