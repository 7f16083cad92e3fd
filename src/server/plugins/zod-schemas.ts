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
      const accepts = guidFieldsCheck(schema);
      return (data) => {
        // What zod would accept as it is (the same value back) needs no parse; the rest gets zod's answer.
        if (accepts?.(data)) return { value: data };
        const result = schema.safeParse(data);
        return result.success ? { value: result.data } : { error: fromZod(result.error, httpPart) };
      };
    });
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  },
  { name: 'zod-schemas' },
);

/**
 * For a strict object of plain GUIDs (the `{ id }` of /orders/:id), a check equivalent to zod's:
 * exactly those keys, each 36 characters of hex digits with dashes at 8, 13, 18 and 23 (zod's
 * guid pattern). Undefined for any other schema. Zod's regex and its parse machinery were ~1 % of
 * a GET's instructions.
 */
export function guidFieldsCheck(schema: ZodType): ((data: unknown) => boolean) | undefined {
  if (!(schema instanceof z.ZodObject) || schema.def.catchall?._zod.def.type !== 'never') return undefined;
  const keys = Object.keys(schema.shape);
  const plainGuids = keys.every((key) => {
    const field = schema.shape[key];
    return field instanceof z.ZodGUID && !(field._zod.def.checks && field._zod.def.checks.length > 0);
  });
  if (keys.length === 0 || !plainGuids) return undefined;
  return (data) => {
    if (typeof data !== 'object' || data === null) return false;
    let count = 0;
    for (const key in data) {
      if (!keys.includes(key) || !isGuid((data as Record<string, unknown>)[key])) return false;
      count++;
    }
    return count === keys.length;
  };
}

/** zod's guid: /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/. */
function isGuid(value: unknown): boolean {
  if (typeof value !== 'string' || value.length !== 36) return false;
  for (let i = 0; i < 36; i++) {
    const c = value.charCodeAt(i);
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false; // -
    } else if (!((c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102))) {
      return false; // 0-9 A-F a-f
    }
  }
  return true;
}

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
