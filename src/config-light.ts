/**
 * The settings read where start-up time matters, without zod: importing zod costs about as much
 * as starting Node itself, and `orders healthcheck` runs every few seconds in every pod; every
 * command's error report reads ORDERS_DEBUG. They belong to the contract of src/config.ts, which
 * re-exports them; import them from here only on those paths.
 */

type Env = Record<string, string | undefined>;

export const DEFAULT_PORT = 8080;

/**
 * The port `orders healthcheck` probes unless given --url: the server's PORT, unparsed (a bad
 * value surfaces as a bad URL, which the probe reports).
 */
export function readProbePort(env: Env = process.env): string {
  return env.PORT || String(DEFAULT_PORT);
}

/** ORDERS_DEBUG: any non-empty value adds the stack trace to a failed command's report. */
export function readDebug(env: Env = process.env): boolean {
  return Boolean(env.ORDERS_DEBUG);
}
