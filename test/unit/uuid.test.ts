import { describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/platform/uuid.js';

describe('uuidv7', () => {
  it('is an RFC 9562 version 7 UUID carrying the millisecond timestamp', () => {
    const now = Date.UTC(2026, 10, 25, 10, 0, 0, 123);
    const id = uuidv7(now);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(now);
  });

  it('sorts by time and does not repeat', () => {
    const ids = Array.from({ length: 10_000 }, (_, i) => uuidv7(1_700_000_000_000 + i));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
  });
});
