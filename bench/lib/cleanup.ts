/**
 * Everything the bench started or created (servers, databases, its work folder) is undone in
 * reverse order at the end of the run, also on Ctrl-C or SIGTERM.
 */
type Cleanup = () => unknown;

const cleanups: Cleanup[] = [];
let cleaningUp = false;

export function registerCleanup(fn: Cleanup): void {
  cleanups.push(fn);
}

/** Runs every cleanup once, the last registered first; a failing one does not stop the others. */
export async function runCleanups(): Promise<void> {
  if (cleaningUp) return;
  cleaningUp = true;
  while (cleanups.length > 0) {
    const fn = cleanups.pop()!;
    try {
      await fn();
    } catch (error) {
      console.error(`bench: cleanup: ${(error as Error).message}`);
    }
  }
}

export function runCleanupsOnSignals(): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`\nbench: ${signal}: stopping servers and dropping databases`);
      runCleanups().finally(() => process.exit(130));
    });
  }
}
