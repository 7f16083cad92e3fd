/** `orders worker`: the event worker alone (arrives with the events work). */
import { loadConfig } from '../config.js';

export async function run(): Promise<number> {
  loadConfig();
  process.stderr.write('orders worker: not yet available\n');
  return 1;
}
