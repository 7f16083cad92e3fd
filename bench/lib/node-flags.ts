/**
 * The Node flags the container image runs `orders` with (the Dockerfile's ENTRYPOINT, the one
 * place they are set): the bench runs ours and the bare baseline with them, so that both are
 * measured as the image runs them and differ only in code. `--stock-node` runs both without.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.js';

/** `ENTRYPOINT ["node", <flags>…, "/app/bin/orders.js"]` → the flags. */
export function imageNodeFlags(dockerfile = readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8')): string[] {
  const entrypoint = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile);
  if (!entrypoint) throw new Error('the Dockerfile has no exec-form ENTRYPOINT');
  const argv = JSON.parse(entrypoint[1]!) as string[];
  const script = argv.findIndex((arg) => arg.endsWith('/bin/orders.js'));
  if (argv[0] !== 'node' || script < 1) {
    throw new Error(
      `the Dockerfile's ENTRYPOINT is not ["node", <flags>…, ".../bin/orders.js"]: ${entrypoint[1]}`,
    );
  }
  return argv.slice(1, script);
}
