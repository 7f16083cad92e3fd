/**
 * The params check that skips zod for `{ id }` must accept exactly what zod accepts (anything it
 * refuses goes on to zod, whose answer is the error): compared on every near miss of a UUID.
 */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { OrderIdParams } from '../../src/orders/schemas.js';
import { guidFieldsCheck } from '../../src/server/plugins/zod-schemas.js';

const UUID = '0190c0de-7a1b-7c2d-8e3f-a0b1c2d3e4f5';

function nearMisses(): unknown[] {
  const values: unknown[] = [
    UUID,
    UUID.toUpperCase(),
    crypto.randomUUID(),
    '00000000-0000-0000-0000-000000000000',
  ];
  // Every position replaced by every printable ASCII character, and by a few others.
  for (let i = 0; i < UUID.length; i++) {
    for (let c = 0x20; c < 0x7f; c++)
      values.push(UUID.slice(0, i) + String.fromCharCode(c) + UUID.slice(i + 1));
    for (const c of ['\u0000', '\n', 'é', '０', '٣', '\uD83D'])
      values.push(UUID.slice(0, i) + c + UUID.slice(i + 1));
  }
  values.push(
    UUID.slice(1),
    `${UUID}0`,
    ` ${UUID}`,
    `${UUID}\n`,
    UUID.replaceAll('-', ''),
    '',
    42,
    null,
    undefined,
  );
  return values;
}

describe('the GUID params check', () => {
  const check = guidFieldsCheck(OrderIdParams)!;

  it('is built for { id: z.guid() } and for no other shape', () => {
    expect(check).toBeTypeOf('function');
    expect(guidFieldsCheck(z.object({ id: z.guid() }))).toBeUndefined(); // not strict: extra keys pass
    expect(guidFieldsCheck(z.strictObject({ id: z.string() }))).toBeUndefined();
    expect(guidFieldsCheck(z.strictObject({ id: z.guid().optional() }))).toBeUndefined();
    expect(
      guidFieldsCheck(z.strictObject({ id: z.guid().refine((v) => v.startsWith('0')) })),
    ).toBeUndefined();
    expect(guidFieldsCheck(z.strictObject({}))).toBeUndefined();
  });

  it('accepts exactly what zod accepts, and zod gives back the same value', () => {
    let accepted = 0;
    for (const id of nearMisses()) {
      for (const data of [{ id }, { id, other: UUID }, {}, { ID: id }]) {
        const zod = OrderIdParams.safeParse(data);
        expect(check(data), JSON.stringify(data)).toBe(zod.success);
        if (zod.success) {
          expect(zod.data).toEqual(data);
          accepted++;
        }
      }
    }
    // The valid ones: the UUIDs and every hex digit in a hex position.
    expect(accepted).toBeGreaterThan(700);
    expect(check(null)).toBe(false);
    expect(check('id')).toBe(false);
  });
});
