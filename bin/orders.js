#!/usr/bin/env node
// The executable. `orders healthcheck` runs every few seconds in every pod, so it skips the
// CLI framework and loads only its own module; everything else goes through dist/cli.js.
const [command, ...rest] = process.argv.slice(2);
if (command === 'healthcheck' && !rest.some((a) => a === '--help' || a === '-h')) {
  const { main } = await import('../dist/commands/healthcheck.js');
  process.exitCode = await main(rest);
} else {
  await import('../dist/cli.js');
}
