/** Spans of failed work record the exception and an error status: never with a credential in them. */
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/logger.js';
import { inSpan, startTelemetry, type Telemetry } from '../../src/platform/telemetry.js';

describe('traces', () => {
  const exporter = new InMemorySpanExporter();
  let telemetry: Telemetry | undefined;
  afterAll(() => telemetry?.shutdown());

  it('record a failure without the credentials its message carries', async () => {
    telemetry = await startTelemetry({ serviceName: 'test', logger: createLogger('silent'), exporter });
    const failure = new Error('cannot connect to NATS at nats://SECRETTOKEN@n:4222 (password=SECRET2)');
    await expect(
      inSpan(telemetry, 'publish', {}, async () => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    const [span] = exporter.getFinishedSpans();
    expect(span?.events.map((e) => e.name)).toEqual(['exception']);
    const recorded = JSON.stringify({ status: span?.status, events: span?.events });
    expect(recorded).toContain('nats://***@n:4222');
    expect(recorded).not.toContain('SECRET');
    // The caller still gets its own error, unchanged.
    expect(failure.message).toContain('SECRETTOKEN');
  });
});
