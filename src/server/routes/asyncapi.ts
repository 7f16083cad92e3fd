import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { buildAsyncApiDocument } from '../../messaging/asyncapi.js';
import { JSON_CONTENT_TYPE } from '../../platform/problem.js';
import { sendRaw } from '../problem.js';

const AsyncApiDocument = z
  .looseObject({ asyncapi: z.string().meta({ example: '3.0.0' }) })
  .meta({ description: 'An AsyncAPI 3.0 document' });

/** The AsyncAPI document of the events (open, like /openapi.json): built once, on first request. */
export const asyncApiRoutes: FastifyPluginAsyncZod = async (app) => {
  let body: string | undefined;
  app.get(
    '/asyncapi.json',
    {
      schema: {
        tags: ['operations'],
        security: [],
        summary: 'The AsyncAPI 3.0 document of every event published and consumed',
        operationId: 'getAsyncApi',
        response: {
          200: {
            description: 'The AsyncAPI document',
            content: { 'application/json': { schema: AsyncApiDocument } },
          },
        },
      },
    },
    async (_request, reply) => {
      body ??= JSON.stringify(buildAsyncApiDocument());
      return sendRaw(reply, 200, JSON_CONTENT_TYPE, body);
    },
  );
};
