/** `orders events list | retry` (arrives with the events work). */
export async function run(): Promise<number> {
  process.stderr.write('orders events: not yet available\n');
  return 1;
}
