/**
 * `orders healthcheck`: GET /readyz with a deadline; exit 0 on 200, 1 otherwise. Besides node:http
 * it imports only the zod-free config-light.ts and report.ts: no zod, no server code, so a probe
 * costs little more than a bare `node -e`.
 */
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parseArgs } from 'node:util';
import { readProbePort } from '../config-light.js';
import { UsageError } from './report.js';

const DEFAULT_TIMEOUT_MS = 2000;

/** The fast path bin/orders.js takes: argv after `healthcheck`, parsed without commander. */
export async function main(argv: string[]): Promise<number> {
  let values: { url?: string | undefined; timeout?: string | undefined };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { url: { type: 'string' }, timeout: { type: 'string' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    process.stderr.write(
      `orders healthcheck: ${(error as Error).message} (usage: orders healthcheck [--url URL] [--timeout MS])\n`,
    );
    return 2;
  }
  const timeout = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : Number(values.timeout);
  if (!/^\d+$/.test(values.timeout ?? '1') || timeout < 1 || timeout > 600_000) {
    process.stderr.write(
      'orders healthcheck: --timeout expects a whole number of milliseconds from 1 to 600000\n',
    );
    return 2;
  }
  try {
    return await run({ url: values.url, timeout });
  } catch (error) {
    process.stderr.write(`orders healthcheck: ${(error as Error).message}\n`);
    return error instanceof UsageError ? 2 : 1;
  }
}

export async function run(options: { url?: string | undefined; timeout: number }): Promise<number> {
  const target = options.url ?? `http://127.0.0.1:${readProbePort()}/readyz`;
  let url: URL;
  try {
    url = new URL(target);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('protocol');
  } catch {
    throw new UsageError(`--url expects an http:// or https:// URL (got ${JSON.stringify(target)})`);
  }
  const status = await probe(url, options.timeout);
  if (status === 200) return 0;
  process.stderr.write(
    `orders healthcheck: ${url.href} ${typeof status === 'number' ? `answered ${status}` : status}\n`,
  );
  return 1;
}

function probe(url: URL, timeoutMs: number): Promise<number | string> {
  return new Promise((resolve) => {
    const send = url.protocol === 'https:' ? httpsRequest : request;
    const req = send(url, { method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve(`did not answer within ${timeoutMs} ms`);
    }, timeoutMs);
    req.on('error', (error) => resolve(error.message || (error as { code?: string }).code || 'failed'));
    req.on('close', () => clearTimeout(timer));
    req.end();
  });
}
