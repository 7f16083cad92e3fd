import { readDebug } from '../config-light.js';
import { redactText } from '../platform/redact.js';

export { UsageError } from '../platform/errors.js';

/** Prints a command's failure on stderr (credentials redacted) and returns its exit code. */
export function reportError(error: unknown): number {
  const err = error instanceof Error ? error : new Error(String(error));
  if (err.name === 'ConfigError' || err.name === 'UsageError') {
    process.stderr.write(`orders: ${redactText(err.message)}\n`);
    return 2;
  }
  const code = (err as { code?: unknown }).code;
  const suffix = typeof code === 'string' ? ` (${code})` : '';
  process.stderr.write(`orders: ${redactText(err.message || err.name)}${suffix}\n`);
  if (readDebug()) process.stderr.write(`${redactText(err.stack ?? '')}\n`);
  return 1;
}

/** Where a command writes what it prints; tests pass their own to capture it. */
export interface CommandIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export const processIo: CommandIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};
