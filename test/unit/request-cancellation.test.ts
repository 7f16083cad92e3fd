/**
 * RequestCancellation: the request deadline's signal, standing in for an AbortController's (the
 * database relies on `aborted`, `reason` and abort listeners, with AbortSignal's semantics).
 */
import { describe, expect, it } from 'vitest';
import { RequestCancellation } from '../../src/server/plugins/request-deadline.js';

describe('RequestCancellation', () => {
  it('runs its listeners once, in the order they were added, after setting aborted and reason', () => {
    const signal = new RequestCancellation();
    const seen: string[] = [];
    signal.addEventListener('abort', () =>
      seen.push(`a:${signal.aborted}:${(signal.reason as Error).message}`),
    );
    signal.addEventListener('abort', () => seen.push('b'));
    expect(signal.aborted).toBe(false);
    signal.abort(new Error('deadline'));
    signal.abort(new Error('again'));
    expect(seen).toEqual(['a:true:deadline', 'b']);
    expect((signal.reason as Error).message).toBe('deadline');
  });

  it('a removed listener does not run; removing an unknown one is harmless', () => {
    const signal = new RequestCancellation();
    const seen: string[] = [];
    const removed = () => seen.push('removed');
    signal.removeEventListener('abort', removed);
    signal.addEventListener('abort', removed);
    signal.addEventListener('abort', () => seen.push('kept'));
    signal.removeEventListener('abort', removed);
    signal.abort(new Error('x'));
    expect(seen).toEqual(['kept']);
  });

  it('a listener added after the abort never runs (AbortSignal does not replay the event either)', () => {
    const signal = new RequestCancellation();
    signal.abort(new Error('gone'));
    let ran = false;
    signal.addEventListener('abort', () => {
      ran = true;
    });
    expect(ran).toBe(false);
    expect(signal.aborted).toBe(true);
  });

  it('behaves like AbortController for the same sequence', () => {
    const run = (signal: { addEventListener(t: 'abort', l: () => void): void }, abort: () => void) => {
      const order: number[] = [];
      signal.addEventListener('abort', () => order.push(1));
      signal.addEventListener('abort', () => order.push(2));
      abort();
      abort();
      return order;
    };
    const controller = new AbortController();
    const ours = new RequestCancellation();
    expect(run(ours, () => ours.abort(new Error('r')))).toEqual(
      run(controller.signal, () => controller.abort(new Error('r'))),
    );
  });
});
