import { describe, expect, it } from 'vitest';
import { sleep } from '../../src/platform/shutdown.js';
import { createEventQueue } from '../../src/worker/wake-up-queue.js';

describe('event queue', () => {
  it('delivers items in order, batching whatever is buffered up to max', async () => {
    const q = createEventQueue<number>();
    for (const n of [1, 2, 3, 4, 5]) expect(q.push(n)).toBe(true);
    expect(await q.take(2)).toEqual([1, 2]);
    expect(await q.take()).toEqual([3, 4, 5]);
    expect(q.size).toBe(0);
  });

  it('wakes a waiting consumer as soon as an item is pushed', async () => {
    const q = createEventQueue<string>();
    const taken = q.take();
    q.push('a');
    expect(await taken).toEqual(['a']);
  });

  it('is bounded: a push to a full queue returns false and keeps what it holds', async () => {
    const q = createEventQueue<number>({ capacity: 2 });
    expect(q.push(1)).toBe(true);
    expect(q.push(2)).toBe(true);
    expect(q.push(3)).toBe(false);
    expect(await q.take()).toEqual([1, 2]);
    expect(q.push(4)).toBe(true);
  });

  it('never throws on push after close; it returns false', () => {
    const q = createEventQueue<number>();
    q.close();
    q.close(); // idempotent
    expect(() => q.push(1)).not.toThrow();
    expect(q.push(1)).toBe(false);
    expect(q.closed).toBe(true);
  });

  it('close ends every waiting consumer with null', async () => {
    const q = createEventQueue<number>();
    const waiting = [q.take(), q.take(), q.take()];
    q.close();
    expect(await Promise.all(waiting)).toEqual([null, null, null]);
  });

  it('delivers items buffered before close, then ends', async () => {
    const q = createEventQueue<number>();
    q.push(1);
    q.push(2);
    q.close();
    expect(await q.take(1)).toEqual([1]);
    expect(await q.take()).toEqual([2]);
    expect(await q.take()).toBeNull();
    expect(await q.take()).toBeNull();
  });

  it('async iteration yields batches and finishes when the queue closes', async () => {
    const q = createEventQueue<number>();
    const seen: number[][] = [];
    const consumer = (async () => {
      for await (const batch of q) seen.push(batch);
      return 'ended';
    })();
    q.push(1);
    await sleep(5);
    q.push(2);
    q.push(3);
    await sleep(5);
    q.close();
    expect(await consumer).toBe('ended');
    expect(seen.flat()).toEqual([1, 2, 3]);
  });

  it('an aborted take resolves null without closing the queue or losing items', async () => {
    const q = createEventQueue<number>();
    const controller = new AbortController();
    const taken = q.take(10, controller.signal);
    controller.abort();
    expect(await taken).toBeNull();
    q.push(7);
    expect(await q.take()).toEqual([7]);
  });

  it('rejects a max below 1', async () => {
    const q = createEventQueue<number>();
    await expect(q.take(0)).rejects.toThrow(RangeError);
  });

  // The classic bug: a consumer loop that keeps calling take() on a closed queue (which
  // resolves at once) spins forever at 100 % CPU. Consumers must end when the queue closes.
  it('regression: consumers end on close, no loop iterates afterwards, CPU stays near zero', async () => {
    const q = createEventQueue<number>();
    let iterationsAfterClose = 0;
    let closed = false;
    const count = () => {
      if (closed) iterationsAfterClose++;
    };
    const consumers = [
      (async () => {
        for await (const _batch of q) count();
      })(),
      (async () => {
        let batch: number[] | null;
        // biome-ignore lint/suspicious/noAssignInExpressions: the idiomatic consumer loop under test
        while ((batch = await q.take(5)) !== null) {
          count();
          void batch;
        }
      })(),
      (async () => {
        for (;;) {
          const batch = await q.take();
          if (batch === null) return;
          count();
        }
      })(),
    ];
    for (let i = 0; i < 100; i++) q.push(i);
    await sleep(10);
    closed = true;
    q.close();
    const ended = await Promise.race([
      Promise.all(consumers).then(() => true),
      sleep(1_000).then(() => false),
    ]);
    expect(ended).toBe(true);
    expect(iterationsAfterClose).toBe(0);

    const before = process.cpuUsage();
    const wallStart = performance.now();
    await sleep(1_000);
    const cpu = process.cpuUsage(before);
    const wall = performance.now() - wallStart;
    // A spinning loop would burn ~1 s of CPU here (or block the timer entirely).
    expect(wall).toBeLessThan(1_500);
    expect((cpu.user + cpu.system) / 1000).toBeLessThan(150);
    expect(iterationsAfterClose).toBe(0);
  });
});
