import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The checkout the bench belongs to. The bench runs compiled: bench/tsconfig.json puts this file
 * at bench/dist/bench/lib/paths.js, four levels below the checkout.
 */
export const REPO_ROOT = resolve(fileURLToPath(new URL('../../../../', import.meta.url)));

/** The wrk scripts, read from the sources (they are not compiled). */
export const BENCH_DIR = join(REPO_ROOT, 'bench');
