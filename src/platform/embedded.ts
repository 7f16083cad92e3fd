/**
 * The embedded development database: PGlite (PostgreSQL compiled to WebAssembly) behind its
 * wire-protocol socket server, so the app keeps its one `pg` code path.
 *
 * PGlite is ONE PostgreSQL session multiplexed over every socket client: transactions are
 * serialised, advisory locks exclude nothing, session settings leak between clients. The app
 * therefore uses a pool of exactly one connection against it. It listens on an ephemeral
 * loopback TCP port (not a unix socket, whose file a `kill -9` would leave behind).
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';

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
  let unlock: () => Promise<void> = async () => undefined;
  if (dataDir) {
    await mkdir(dataDir, { recursive: true });
    unlock = await lockDataDir(dataDir);
  }
  let db: Awaited<ReturnType<typeof PGlite.create>>;
  try {
    db = await PGlite.create(dataDir ? { dataDir } : {});
  } catch (error) {
    await unlock();
    throw error;
  }
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
      await unlock();
    },
  };
}

/**
 * PGlite is one process's database: a second `orders serve` on the same directory would corrupt
 * it. A lock file holding our pid keeps a second one out; a lock left by a process that no
 * longer runs (kill -9) is taken over.
 */
async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, 'orders.lock');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, `${process.pid}\n`, { flag: 'wx' });
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number.parseInt(await readFile(path, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(owner) && owner !== process.pid && isRunning(owner)) {
        throw new Error(
          `ORDERS_DATA_DIR ${dataDir} is in use by another orders process (pid ${owner}); ` +
            'stop it or point ORDERS_DATA_DIR elsewhere',
        );
      }
      await rm(path, { force: true });
    }
  }
  throw new Error(`could not lock ORDERS_DATA_DIR ${dataDir}`);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
