import { defineConfig } from 'vitest/config';

// Tests against real servers (PostgreSQL, NATS, spawned binaries) on a shared 2-core machine
// retry a failure once: a safety net, not a fix. Each flake seen was fixed at its cause (the
// test waited for the wrong condition); a retried test is reported as such by vitest.
const RETRY_ON_REAL_SERVERS = 1;

export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'], testTimeout: 10_000 } },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          retry: RETRY_ON_REAL_SERVERS,
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          retry: RETRY_ON_REAL_SERVERS,
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
      {
        test: {
          name: 'reliability',
          include: ['test/reliability/**/*.test.ts'],
          testTimeout: 180_000,
          hookTimeout: 120_000,
          retry: RETRY_ON_REAL_SERVERS,
          globalSetup: ['test/helpers/global-setup.ts'],
        },
      },
    ],
  },
});
