/**
 * A small closed-loop load generator over keep-alive HTTP/1.1 connections that classifies every
 * outcome precisely (status codes; refused connections apart from resets in flight), which the
 * reliability tests need and general-purpose load tools do not report.
 */
import { Agent, request } from 'node:http';

export interface LoadRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

export interface LoadResult {
  sent: number;
  statuses: Record<number, number>;
  /** Connection refused: the listener was closed (does not count as a failed request). */
  refused: number;
  /** Resets, hang-ups and timeouts of requests that were in flight: failures. */
  broken: Record<string, number>;
  /** Responses that were 2xx, with their parsed JSON bodies when asked for. */
  bodies: unknown[];
  durationMs: number;
}

export interface LoadOptions {
  baseUrl: string;
  connections: number;
  durationMs: number;
  next: (i: number) => LoadRequest;
  keepBodies?: boolean;
  /** Stop early when this resolves. */
  until?: Promise<unknown>;
  requestTimeoutMs?: number;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const url = new URL(options.baseUrl);
  const agent = new Agent({ keepAlive: true, maxSockets: options.connections });
  const result: LoadResult = { sent: 0, statuses: {}, refused: 0, broken: {}, bodies: [], durationMs: 0 };
  const started = Date.now();
  let stop = false;
  const timer = setTimeout(() => {
    stop = true;
  }, options.durationMs);
  void options.until?.then(() => {
    stop = true;
  });
  let counter = 0;

  const one = (spec: LoadRequest) =>
    new Promise<void>((resolve) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          method: spec.method,
          path: spec.path,
          agent,
          headers: {
            ...spec.headers,
            ...(spec.body ? { 'content-length': Buffer.byteLength(spec.body) } : {}),
          },
          timeout: options.requestTimeoutMs ?? 15_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            result.statuses[status] = (result.statuses[status] ?? 0) + 1;
            if (options.keepBodies && status >= 200 && status < 300) {
              result.bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
            }
            resolve();
          });
          res.on('error', (error) => {
            count(result.broken, (error as NodeJS.ErrnoException).code ?? error.message);
            resolve();
          });
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'TIMEOUT' })));
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNREFUSED') result.refused++;
        else count(result.broken, error.code ?? error.message);
        resolve();
      });
      if (spec.body) req.write(spec.body);
      req.end();
    });

  async function worker() {
    while (!stop) {
      result.sent++;
      const before = result.refused;
      await one(options.next(counter++));
      // Once the listener is gone there is nothing left to measure on this connection.
      if (result.refused > before) await new Promise((r) => setTimeout(r, 20));
    }
  }
  await Promise.all(Array.from({ length: options.connections }, worker));
  clearTimeout(timer);
  agent.destroy();
  result.durationMs = Date.now() - started;
  return result;
}

function count(map: Record<string, number>, key: string) {
  map[key] = (map[key] ?? 0) + 1;
}

export function fiveXx(result: LoadResult): number {
  return Object.entries(result.statuses)
    .filter(([s]) => Number(s) >= 500)
    .reduce((sum, [, n]) => sum + n, 0);
}

export function summary(name: string, result: LoadResult): string {
  const ok = Object.entries(result.statuses)
    .filter(([s]) => Number(s) < 300)
    .reduce((sum, [, n]) => sum + n, 0);
  return (
    `[${name}] ${result.sent} requests in ${result.durationMs} ms (${Math.round((ok * 1000) / result.durationMs)} ok/s); ` +
    `statuses ${JSON.stringify(result.statuses)}; refused after close ${result.refused}; ` +
    `broken in flight ${JSON.stringify(result.broken)}`
  );
}
