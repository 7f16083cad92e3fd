/**
 * Route schemas are zod: requests are validated with them (failures become validation_failed
 * problems; header schemas must not transform), while responses are only documented by them.
 * Responses are serialised once, in the handlers (strings), or with plain JSON.stringify.
 */
import fp from 'fastify-plugin';
import { type ZodType, z } from 'zod';
import { fromZod } from '../problem.js';

export const zodSchemas = fp(
  async (app) => {
    app.setValidatorCompiler<ZodType>(({ schema, httpPart }) => {
      if (httpPart === 'headers') return headersValidator(schema);
      return (data) => {
        const result = schema.safeParse(data);
        return result.success ? { value: result.data } : { error: fromZod(result.error, httpPart) };
      };
    });
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  },
  { name: 'zod-schemas' },
);

/**
 * Header schemas only check (none transforms): the headers are left as they came. A parsed copy
 * would become `request.headers`, which fastify then merges into a new object on every read of
 * request.headers. A header schema is a loose object (any other header passes), so only its
 * declared headers can fail it: those are checked, and when none was sent and all are optional,
 * there is nothing to check (the common request: no Idempotency-Key on a GET, no If-Match).
 */
function headersValidator(schema: ZodType) {
  // A strict object (catchall never) would fail on any other header: it gets the whole headers.
  const declared =
    schema instanceof z.ZodObject && schema.def.catchall?._zod.def.type !== 'never'
      ? Object.keys(schema.shape)
      : undefined;
  const allOptional = declared !== undefined && schema.safeParse({}).success;
  return (data: unknown) => {
    let sent = data as Record<string, unknown>;
    if (declared) {
      // Built only when one was sent: the common request allocates nothing here.
      let picked: Record<string, unknown> | undefined;
      for (const name of declared) {
        const value = (data as Record<string, unknown>)[name];
        if (value === undefined) continue;
        picked ??= {};
        picked[name] = value;
      }
      if (!picked && allOptional) return true;
      sent = picked ?? {};
    }
    const result = schema.safeParse(sent);
    return result.success ? true : { error: fromZod(result.error, 'headers') };
  };
}
