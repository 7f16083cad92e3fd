/** The errors list of a validation problem: at most 50 entries, `errorCount` when there are more. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { problemBody } from '../../src/platform/problem.js';
import { fromZod, MAX_FIELD_ERRORS, toAppError } from '../../src/server/problem.js';

describe('field errors', () => {
  it('lists the first 50 of many unknown keys and counts them all', () => {
    const input = Object.fromEntries(Array.from({ length: 1_000 }, (_, i) => [`k${i}`, 0]));
    const result = z.strictObject({ a: z.int().optional() }).safeParse(input);
    const body = problemBody(fromZod(result.error as z.ZodError, 'body'), '/orders');
    expect(body.errors).toHaveLength(MAX_FIELD_ERRORS);
    expect(body.errors?.[0]).toEqual({ path: '/k0', message: 'unknown field' });
    expect(body.errorCount).toBe(1_000);
  });

  it('cuts the list across issues, in their order', () => {
    const schema = z.strictObject({ items: z.array(z.int()) });
    const result = schema.safeParse({ items: Array.from({ length: 49 }, () => 'x'), b: 1, c: 2 });
    const error = fromZod(result.error as z.ZodError, 'body');
    expect(error.errors?.map((e) => e.path).slice(-2)).toEqual(['/items/48', '/b']);
    expect(error.errorCount).toBe(51);
  });

  it('caps a schema validator’s list the same way', () => {
    const validation = Array.from({ length: 60 }, (_, i) => ({ instancePath: `/${i}`, message: 'bad' }));
    const error = toAppError({ validation, validationContext: 'body', statusCode: 400 });
    expect(error.errors).toHaveLength(MAX_FIELD_ERRORS);
    expect(error.errorCount).toBe(60);
  });

  it('has no errorCount when every error is listed', () => {
    const result = z.strictObject({ a: z.int() }).safeParse({ a: 'x', b: 1 });
    const body = problemBody(fromZod(result.error as z.ZodError, 'body'), '/orders');
    expect(body.errors).toHaveLength(2);
    expect(body).not.toHaveProperty('errorCount');
  });
});
