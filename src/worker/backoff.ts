/**
 * Retry delays: exponential growth with "equal jitter" (half fixed, half random), so replicas
 * retrying the same failure spread out instead of hammering the dependency in lockstep.
 *
 * For attempt n (1 = the first failed attempt) the ceiling is base·2^(n-1), capped at max; the
 * delay is uniformly drawn from [ceiling/2, ceiling], and never below base. Hence always
 * base ≤ delay ≤ max, the first retry waits exactly base, and the ceiling doubles per attempt.
 */
export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** A source of uniform numbers in [0, 1); Math.random by default (tests pass their own). */
  random?: () => number;
}

export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const base = Math.max(0, options.baseMs);
  const max = Math.max(base, options.maxMs);
  const n = Number.isFinite(attempt) && attempt >= 1 ? Math.floor(attempt) : 1;
  // 2 ** 1100 is Infinity and Infinity·base capped by max is max: no overflow to worry about.
  const ceiling = Math.min(max, base * 2 ** (n - 1));
  const floor = Math.max(base, ceiling / 2);
  const r = clampUnit((options.random ?? Math.random)());
  return Math.round(floor + r * (ceiling - floor));
}

function clampUnit(value: number): number {
  if (!(value > 0)) return 0;
  return Math.min(value, 1);
}
