/**
 * stdout is written once per event-loop turn: every line of the turn, in order, in one write(2),
 * or at once when 8 KiB are held; logger.flush() and the process's exit write what is held.
 */
import fs, { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { batchedStdout, createLogger } from '../../src/platform/logger.js';

const dirs: string[] = [];
afterEach(() => {
  vi.restoreAllMocks();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function target() {
  const dir = mkdtempSync(join(tmpdir(), 'orders-log-'));
  dirs.push(dir);
  const file = join(dir, 'out.log');
  const fd = openSync(file, 'w');
  return { fd, read: () => readFileSync(file, 'utf8') };
}

describe('batched stdout', () => {
  it("writes a turn's lines in order, in one write, at the end of the turn", async () => {
    const { fd, read } = target();
    const stream = batchedStdout(fd);
    const writes = vi.spyOn(fs, 'writeSync');
    const lines = Array.from({ length: 10 }, (_, i) => `{"n":${i},"s":"é ☃"}\n`);
    for (const line of lines) stream.write(line);
    expect(read()).toBe('');
    await turn();
    expect(read()).toBe(lines.join(''));
    expect(writes.mock.calls.filter(([used]) => used === fd)).toHaveLength(1);

    stream.write('next turn\n');
    await turn();
    expect(read()).toBe(`${lines.join('')}next turn\n`);
  });

  it('writes at once when 8 KiB are held, and the rest at the end of the turn, in order', async () => {
    const { fd, read } = target();
    const stream = batchedStdout(fd);
    const lines = Array.from({ length: 100 }, (_, i) => `${String(i).padStart(3, '0')}${'x'.repeat(96)}\n`);
    for (const line of lines) stream.write(line);
    // 100 lines of 100 bytes: the first 82 (8,200 ≥ 8,192) went out within the turn.
    expect(read()).toBe(lines.slice(0, 82).join(''));
    await turn();
    expect(read()).toBe(lines.join(''));
  });

  it('writes what is held on flush and flushSync, before the turn ends', () => {
    const { fd, read } = target();
    const stream = batchedStdout(fd) as ReturnType<typeof batchedStdout> & {
      flush(): void;
      flushSync(): void;
    };
    stream.write('one\n');
    stream.flushSync();
    expect(read()).toBe('one\n');
    stream.write('two\n');
    stream.flush();
    expect(read()).toBe('one\ntwo\n');
  });

  it("carries a logger's lines, and logger.flush() writes them", () => {
    const { fd, read } = target();
    const logger = createLogger('info', { destination: batchedStdout(fd) });
    logger.info({ orderId: 'o-1' }, 'first');
    logger.warn('second');
    expect(read()).toBe('');
    logger.flush();
    const written = read()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(written.map((r) => [r.level, r.msg])).toEqual([
      ['info', 'first'],
      ['warn', 'second'],
    ]);
  });
});
