/**
 * Route schemas are zod: requests are validated with them (failures become validation_failed
 * problems), while responses are only documented by them. Responses are serialised once, in the
 * handlers (strings), or with plain JSON.stringify.
 */
import fp from 'fastify-plugin';
import type { ZodType } from 'zod';
import { fromZod } from '../problem.js';

export const zodSchemas = fp(
  async (app) => {
    app.setValidatorCompiler<ZodType>(({ schema, httpPart }) => (data) => {
      const result = schema.safeParse(data);
      return result.success ? { value: result.data } : { error: fromZod(result.error, httpPart) };
    });
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  },
  { name: 'zod-schemas' },
);
