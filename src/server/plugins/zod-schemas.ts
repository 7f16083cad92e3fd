/**
 * Route schemas are zod: requests are validated with them (failures become validation_failed
 * problems; header schemas must not transform), while responses are only documented by them.
 * Responses are serialised once, in the handlers (strings), or with plain JSON.stringify.
 */
import fp from 'fastify-plugin';
import type { ZodType } from 'zod';
import { fromZod } from '../problem.js';

export const zodSchemas = fp(
  async (app) => {
    app.setValidatorCompiler<ZodType>(({ schema, httpPart }) => {
      // Header schemas only check (none transforms): the headers are left as they came. A parsed
      // copy would become `request.headers`, which fastify then merges into a new object on
      // every read of request.headers.
      const keepInput = httpPart === 'headers';
      return (data) => {
        const result = schema.safeParse(data);
        if (!result.success) return { error: fromZod(result.error, httpPart) };
        return keepInput ? true : { value: result.data };
      };
    });
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  },
  { name: 'zod-schemas' },
);
