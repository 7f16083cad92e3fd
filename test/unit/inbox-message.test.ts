/**
 * Reading a consumed message (pure): the envelope checked against its subject and its type's
 * data schema, an identity for every message however broken, and the reasons named; and the
 * consumer's filter for a server without filter_subjects.
 */
import { describe, expect, it } from 'vitest';
import { parseInbound, typeOfSubject } from '../../src/messaging/inbox-message.js';
import {
  consumedSubjects,
  coveringWildcard,
  supportsMultipleFilters,
} from '../../src/messaging/nats-bindings.js';

const ORDER = '0192f1c6-0000-7000-8000-000000000001';

function message(envelope: Record<string, unknown>, subject = 'payments.events.PaymentCaptured') {
  return {
    subject,
    body: JSON.stringify({
      specversion: '1.0',
      id: 'evt-1',
      source: 'payments',
      type: 'PaymentCaptured',
      datacontenttype: 'application/json',
      data: { orderId: ORDER, paymentId: 'p-1', amount: 10, currency: 'EUR' },
      ...envelope,
    }),
  };
}

describe('parseInbound', () => {
  it('a valid event: its identity, type, lifecycle input and data; the trace context from the headers', () => {
    const parsed = parseInbound({
      ...message({}),
      headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', other: 'x' },
    });
    expect(parsed).toEqual({
      ok: true,
      identity: { source: 'payments', id: 'evt-1', type: 'PaymentCaptured', orderId: ORDER },
      type: 'PaymentCaptured',
      input: { kind: 'PaymentCaptured' },
      data: { orderId: ORDER, paymentId: 'p-1', amount: 10, currency: 'EUR' },
      traceContext: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
    });
  });

  it('unknown fields of the envelope and of data are allowed (CloudEvents extensions, newer producers)', () => {
    const parsed = parseInbound(
      message({
        partitionkey: 'k',
        data: { orderId: ORDER, paymentId: 'p', amount: 1, currency: 'EUR', method: 'card' },
      }),
    );
    expect(parsed.ok).toBe(true);
  });

  it.each([
    ['not JSON', { subject: 'payments.events.PaymentCaptured', body: 'nope' }, 'malformed_json'],
    ['JSON but no object', { subject: 'payments.events.PaymentCaptured', body: '[1]' }, 'malformed_envelope'],
    ['another specversion', message({ specversion: '0.3' }), 'malformed_envelope'],
    ['an id too long', message({ id: 'x'.repeat(201) }), 'missing_id'],
    ['another type than the subject carries', message({ type: 'PaymentFailed' }), 'type_mismatch'],
    ['a subject nobody consumes', message({}, 'payments.events.Refunded'), 'unknown_type'],
    [
      'data missing a field',
      message({ data: { orderId: ORDER, amount: 1, currency: 'EUR' } }),
      'invalid_data',
    ],
    [
      'an order id that is no UUID',
      message({ data: { orderId: '42', paymentId: 'p', amount: 1, currency: 'EUR' } }),
      'invalid_data',
    ],
    ['a non-JSON datacontenttype', message({ datacontenttype: 'text/plain' }), 'malformed_envelope'],
  ])('%s is dead: %s', (_name, msg, code) => {
    const parsed = parseInbound(msg);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.reason.startsWith(`${code}: `)).toBe(true);
  });

  it("identity of a broken message: the envelope's source and id when valid, else the subject and a hash of the bytes", () => {
    const noId = parseInbound(message({ id: undefined, type: 'PaymentFailed' }));
    expect(noId.identity).toMatchObject({ source: 'payments', type: 'PaymentFailed', orderId: ORDER });
    expect(noId.identity.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    const garbage = parseInbound({
      subject: 'catalog.events.StockReserved',
      body: new Uint8Array([0xff, 0x00]),
    });
    expect(garbage.identity).toEqual({
      source: 'nats:catalog.events.StockReserved',
      id: expect.stringMatching(/^sha256:/),
      type: 'StockReserved',
      orderId: null,
    });
    expect(
      parseInbound({ subject: 'catalog.events.StockReserved', body: new Uint8Array([0xff, 0x00]) }).identity
        .id,
    ).toBe(garbage.identity.id);
  });

  it('reasons are one bounded line', () => {
    const parsed = parseInbound(message({ type: `x\n${'y'.repeat(1000)}` }));
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(parsed.reason).not.toContain('\n');
      expect(parsed.reason.length).toBeLessThan(330);
    }
  });

  it('subjects map to types, with the test prefix when one is set', () => {
    expect(typeOfSubject('catalog.events.StockRejected')).toBe('StockRejected');
    expect(typeOfSubject('t1.catalog.events.StockRejected', 't1.')).toBe('StockRejected');
    expect(typeOfSubject('catalog.events.StockRejected', 't1.')).toBeUndefined();
    expect(consumedSubjects('')).toEqual([
      'catalog.events.StockReserved',
      'catalog.events.StockRejected',
      'payments.events.PaymentCaptured',
      'payments.events.PaymentFailed',
    ]);
  });
});

describe('consumer filters', () => {
  it('several subjects need nats-server 2.10; before, the narrowest wildcard covering them', () => {
    expect(supportsMultipleFilters('2.9.10')).toBe(false);
    expect(supportsMultipleFilters('2.10.0')).toBe(true);
    expect(supportsMultipleFilters('2.11.4-RC.1')).toBe(true);
    expect(supportsMultipleFilters('3.0.0')).toBe(true);
    expect(supportsMultipleFilters(undefined)).toBe(false);
    expect(coveringWildcard(['catalog.events.StockReserved', 'catalog.events.StockRejected'])).toBe(
      'catalog.events.>',
    );
    expect(coveringWildcard(['a.b.c', 'a.x.c'])).toBe('a.>');
    expect(coveringWildcard(['a.b', 'c.d'])).toBe('>');
  });
});
