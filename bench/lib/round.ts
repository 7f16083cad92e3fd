/** Rounds to `digits` decimal places: the precision every figure of the report is kept at. */
export function round(value: number, digits = 0): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
