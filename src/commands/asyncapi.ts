/** `orders asyncapi [--format json|yaml]`: the same document the server serves at /asyncapi.json. */
import { stringify } from 'yaml';
import { buildAsyncApiDocument } from '../messaging/asyncapi.js';

export async function run(options: { format: 'json' | 'yaml' }): Promise<number> {
  const document = buildAsyncApiDocument();
  process.stdout.write(
    options.format === 'yaml' ? stringify(document) : `${JSON.stringify(document, null, 2)}\n`,
  );
  return 0;
}
