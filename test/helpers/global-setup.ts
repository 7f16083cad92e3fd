/**
 * Decides once per run where integration tests get PostgreSQL from:
 * TEST_DATABASE_URL, else a testcontainers PostgreSQL when a Docker engine answers, else the
 * embedded PGlite (started per test file). Prints the choice so a run says what it tested.
 */
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseServerUrl: string | null;
  }
}

let stopContainer: (() => Promise<unknown>) | undefined;

export async function setup(project: TestProject): Promise<void> {
  const fromEnv = process.env.TEST_DATABASE_URL;
  if (fromEnv) {
    console.log(`[tests] PostgreSQL from TEST_DATABASE_URL`);
    project.provide('databaseServerUrl', fromEnv);
    return;
  }
  const url = await tryTestcontainers();
  if (url) {
    console.log('[tests] PostgreSQL from testcontainers');
    project.provide('databaseServerUrl', url);
    return;
  }
  console.log(
    '[tests] no TEST_DATABASE_URL and no Docker engine: using embedded PGlite; ' +
      'tests that need a real multi-connection server are skipped (they say so)',
  );
  project.provide('databaseServerUrl', null);
}

export async function teardown(): Promise<void> {
  await stopContainer?.();
}

async function tryTestcontainers(): Promise<string | null> {
  if (process.env.TESTCONTAINERS_DISABLED === 'true') return null;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await Promise.race([
      getContainerRuntimeClient(),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no docker')), 5000)),
    ]);
  } catch {
    return null;
  }
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const container = await new PostgreSqlContainer('postgres:16-alpine').start();
  stopContainer = () => container.stop();
  return container.getConnectionUri();
}
