import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../src/worker/backoff.js';
import { mulberry32 } from '../helpers/random.js';

const seeded = mulberry32;

describe('backoffDelay', () => {
  it('stays within [base, max] for every attempt and any random value', () => {
    const random = seeded(42);
    for (const [baseMs, maxMs] of [
      [1000, 300_000],
      [1, 5],
      [250, 250],
      [7, 1_000_000],
    ] as const) {
      for (let attempt = 1; attempt <= 200; attempt++) {
        for (const r of [() => 0, () => 0.999999, random]) {
          const d = backoffDelay(attempt, { baseMs, maxMs, random: r });
          expect(d).toBeGreaterThanOrEqual(baseMs);
          expect(d).toBeLessThanOrEqual(maxMs);
          expect(Number.isInteger(d)).toBe(true);
        }
      }
    }
  });

  it('waits exactly base on the first retry and doubles the ceiling per attempt (equal jitter)', () => {
    const delay = (attempt: number, r: number) =>
      backoffDelay(attempt, { baseMs: 100, maxMs: 100_000, random: () => r });
    expect(delay(1, 0)).toBe(100);
    expect(delay(1, 0.99)).toBe(100);
    // attempt n: uniformly in [100·2^(n-2), 100·2^(n-1)]
    expect(delay(2, 0)).toBe(100);
    expect(delay(2, 1)).toBe(200);
    expect(delay(5, 0)).toBe(800);
    expect(delay(5, 1)).toBe(1600);
  });

  it('reaches the cap and stays there without overflowing', () => {
    const opts = { baseMs: 1000, maxMs: 300_000, random: () => 1 };
    expect(backoffDelay(30, opts)).toBe(300_000);
    expect(backoffDelay(5_000, opts)).toBe(300_000);
    expect(backoffDelay(Number.MAX_SAFE_INTEGER, { ...opts, random: () => 0 })).toBe(150_000);
  });

  it('spreads retries: the jittered delays are not all equal', () => {
    const random = seeded(7);
    const delays = new Set(
      Array.from({ length: 50 }, () => backoffDelay(6, { baseMs: 1000, maxMs: 300_000, random })),
    );
    expect(delays.size).toBeGreaterThan(40);
  });

  it('treats nonsense attempts as the first and nonsense random values as bounds', () => {
    const opts = { baseMs: 10, maxMs: 1000 };
    expect(backoffDelay(0, { ...opts, random: () => 0.5 })).toBe(10);
    expect(backoffDelay(-3, { ...opts, random: () => 0.5 })).toBe(10);
    expect(backoffDelay(Number.NaN, { ...opts, random: () => 0.5 })).toBe(10);
    expect(backoffDelay(3, { ...opts, random: () => Number.NaN })).toBe(20);
    expect(backoffDelay(3, { ...opts, random: () => 7 })).toBe(40);
  });
});
