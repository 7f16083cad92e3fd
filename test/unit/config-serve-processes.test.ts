import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, MAX_SERVE_PROCESSES } from '../../src/config.js';

function issuesOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (error) {
    if (error instanceof ConfigError) return error.issues;
    throw error;
  }
  return [];
}

describe('SERVE_PROCESSES', () => {
  it('defaults to one process', () => {
    expect(loadConfig({}).SERVE_PROCESSES).toBe(1);
  });

  it('takes a whole number from 1 to the maximum; the --processes flag overrides it', () => {
    expect(loadConfig({ SERVE_PROCESSES: '4' }).SERVE_PROCESSES).toBe(4);
    expect(loadConfig({ SERVE_PROCESSES: ` ${MAX_SERVE_PROCESSES} ` }).SERVE_PROCESSES).toBe(
      MAX_SERVE_PROCESSES,
    );
    expect(loadConfig({ SERVE_PROCESSES: '4' }, { SERVE_PROCESSES: '2' }).SERVE_PROCESSES).toBe(2);
  });

  it('refuses anything else, naming the variable, what it expects and what it got', () => {
    for (const value of ['0', String(MAX_SERVE_PROCESSES + 1), '1.5', '-1', 'two', '2x']) {
      expect(issuesOf({ SERVE_PROCESSES: value }), value).toEqual([
        `SERVE_PROCESSES: expected a whole number from 1 to ${MAX_SERVE_PROCESSES} (got ${JSON.stringify(value)})`,
      ]);
    }
  });
});
