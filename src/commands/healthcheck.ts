/**
 * `orders healthcheck`: GET /readyz with a deadline; exit 0 on 200, 1 otherwise. It imports
 * node:http and nothing else, so a probe costs about as much as a bare `node -e`.
 */
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { UsageError } from './report.js';

export async function run(options: { url?: string; timeout: number }): Promise<number> {
  const port = process.env.PORT || '8080';
  const target = options.url ?? `http://127.0.0.1:${port}/readyz`;
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
