/**
 * The embedded development database: PGlite (PostgreSQL compiled to WebAssembly) behind its
 * wire-protocol socket server, so the app keeps its one `pg` code path.
 *
 * PGlite is ONE PostgreSQL session multiplexed over every socket client: transactions are
 * serialised, advisory locks exclude nothing, session settings leak between clients. The app
 * therefore uses a pool of exactly one connection against it. It listens on an ephemeral
 * loopback TCP port (not a unix socket, whose file a `kill -9` would leave behind).
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';

export interface EmbeddedPostgres {
  /** A postgres:// URL for the pg driver. */
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

export async function startEmbeddedPostgres(options: {
  dataDir?: string;
  maxConnections?: number;
}): Promise<EmbeddedPostgres> {
  // Loaded lazily: PGlite costs ~2.5 s and hundreds of MB, only for those who use it.
  const [{ PGlite }, { PGLiteSocketServer }] = await Promise.all([
    import('@electric-sql/pglite'),
    import('@electric-sql/pglite-socket'),
  ]);
  const dataDir = options.dataDir === undefined ? undefined : resolve(options.dataDir);
  if (dataDir) await mkdir(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir ? { dataDir } : {});
  const server = new PGLiteSocketServer({
    db,
    host: '127.0.0.1',
    port: 0,
    maxConnections: Math.max(2, options.maxConnections ?? 4),
  });
  await server.start();
  const url = `postgres://postgres@${server.getServerConn()}/postgres?sslmode=disable`;
  let stopped = false;
  return {
    url,
    dataDir: dataDir ?? 'memory://',
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      await db.close();
    },
  };
}
