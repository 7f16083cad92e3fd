/**
 * A raw TCP client for HTTP tests that an HTTP client cannot express: a request sent in pieces,
 * slowly, or across a server's drain. It records everything received and how the socket ended.
 */
import { connect, type Socket } from 'node:net';

export interface RawClient {
  socket: Socket;
  /** Everything received so far, as latin1 text. */
  received(): string;
  /** Writes, ignoring a socket the server already closed (the test reads the outcome from `ended`). */
  write(text: string): void;
  /** Resolves once the socket is fully closed: how, and when (ms after connecting). */
  ended: Promise<{ error: NodeJS.ErrnoException | undefined; afterMs: number }>;
  /** Resolves with the received text once it contains `text` (rejects when the socket ends first). */
  waitFor(text: string): Promise<string>;
}

export async function openRaw(port: number): Promise<RawClient> {
  const started = Date.now();
  const socket = connect({ port, host: '127.0.0.1' });
  const chunks: Buffer[] = [];
  let error: NodeJS.ErrnoException | undefined;
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', (e) => {
    error = e;
  });
  const ended = new Promise<{ error: NodeJS.ErrnoException | undefined; afterMs: number }>((resolve) =>
    socket.once('close', () => resolve({ error, afterMs: Date.now() - started })),
  );
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const received = () => Buffer.concat(chunks).toString('latin1');
  return {
    socket,
    received,
    ended,
    write(text) {
      if (socket.writable) socket.write(text);
    },
    waitFor(text) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (!received().includes(text)) return false;
          socket.off('data', check);
          resolve(received());
          return true;
        };
        if (check()) return;
        socket.on('data', check);
        void ended.then(() => {
          if (!check()) reject(new Error(`socket ended before ${JSON.stringify(text)}: ${received()}`));
        });
      });
    },
  };
}

/** Splits a raw HTTP/1.1 response into its status, lower-cased headers and body. */
export function parseResponse(raw: string): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  const split = raw.indexOf('\r\n\r\n');
  const [statusLine = '', ...lines] = raw.slice(0, split).split('\r\n');
  const headers = Object.fromEntries(
    lines.map((line) => {
      const colon = line.indexOf(':');
      return [line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim()];
    }),
  );
  return { status: Number(statusLine.split(' ')[1]), headers, body: raw.slice(split + 4) };
}
