/**
 * OpenTelemetry tracing. Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set (or a test hands in an
 * exporter): then the SDK and the OTLP exporter are imported lazily, so a process with tracing
 * off pays nothing at start-up and nothing per request (`enabled` short-circuits every hook).
 *
 * The W3C `traceparent` of a caller is honoured either way: with tracing on it parents the
 * request's span; with tracing off its trace id still goes into the request's log lines and
 * into the outbox event, so the worker's lines carry it too.
 */
import {
  type Context,
  context,
  type Link,
  propagation,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  type Tracer,
  trace,
} from '@opentelemetry/api';
import type { SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from './logger.js';
import { redactText } from './redact.js';

export interface Telemetry {
  enabled: boolean;
  tracer: Tracer;
  shutdown(): Promise<void>;
}

export const TRACER_NAME = 'orders';

export function disabledTelemetry(): Telemetry {
  return { enabled: false, tracer: trace.getTracer(TRACER_NAME), shutdown: async () => undefined };
}

export async function startTelemetry(options: {
  endpoint?: string | undefined;
  serviceName: string;
  logger: Logger;
  /** Tests pass an in-memory exporter (spans are exported synchronously). */
  exporter?: SpanExporter;
}): Promise<Telemetry> {
  if (!options.endpoint && !options.exporter) return disabledTelemetry();
  const [{ NodeTracerProvider }, { BatchSpanProcessor, SimpleSpanProcessor }, { resourceFromAttributes }] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/resources'),
    ]);
  let processor: InstanceType<typeof BatchSpanProcessor> | InstanceType<typeof SimpleSpanProcessor>;
  if (options.exporter) {
    processor = new SimpleSpanProcessor(options.exporter);
  } else {
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    // The exporter reads OTEL_EXPORTER_OTLP_* itself (headers, protocol details); we only make
    // sure the standard base endpoint gets the standard /v1/traces path.
    const url = `${options.endpoint!.replace(/\/+$/, '')}/v1/traces`;
    processor = new BatchSpanProcessor(new OTLPTraceExporter({ url }));
  }
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': options.serviceName }),
    spanProcessors: [processor],
  });
  provider.register();
  options.logger.info({ endpoint: options.endpoint ?? 'in-memory' }, 'OpenTelemetry tracing enabled');
  return {
    enabled: true,
    tracer: trace.getTracer(TRACER_NAME),
    async shutdown() {
      await provider.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** The trace id of a valid W3C traceparent header (all-zero ids are invalid), else undefined. */
export function traceIdFromTraceparent(header: unknown): string | undefined {
  if (typeof header !== 'string') return undefined;
  const match = TRACEPARENT.exec(header.trim().toLowerCase());
  if (!match || /^0+$/.test(match[1]!) || /^0+$/.test(match[2]!)) return undefined;
  return match[1];
}

/** What is stored with an outbox event so the worker can continue the request's trace. */
export type TraceCarrier = Record<string, string>;

export function currentTraceCarrier(
  telemetry: Telemetry,
  fallbackTraceparent: unknown,
): TraceCarrier | undefined {
  if (telemetry.enabled) {
    const carrier: TraceCarrier = {};
    propagation.inject(context.active(), carrier);
    return carrier.traceparent ? carrier : undefined;
  }
  return traceIdFromTraceparent(fallbackTraceparent)
    ? { traceparent: String(fallbackTraceparent).trim() }
    : undefined;
}

export function extractContext(carrier: Record<string, unknown>): Context {
  return propagation.extract(ROOT_CONTEXT, carrier);
}

/**
 * Runs `fn` inside a span (made the active span for everything `fn` awaits). The span records
 * an exception and an error status when `fn` throws.
 */
export async function inSpan<T>(
  telemetry: Telemetry,
  name: string,
  options: {
    kind?: SpanKind;
    attributes?: Record<string, string | number | boolean>;
    /** Start a new trace (ignore the active span), e.g. for a redelivery linked to its origin. */
    root?: boolean;
    links?: Link[];
  },
  fn: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!telemetry.enabled) return fn(undefined);
  return telemetry.tracer.startActiveSpan(
    name,
    {
      kind: options.kind ?? SpanKind.INTERNAL,
      attributes: options.attributes,
      root: options.root,
      links: options.links,
    },
    async (span) => {
      try {
        return await fn(span);
      } catch (error) {
        // Traces leave the process: what they record of the error is masked like a log line.
        const { name, message, stack } = error instanceof Error ? error : new Error(String(error));
        span.recordException({ name, message: redactText(message), stack: stack && redactText(stack) });
        span.setStatus({ code: SpanStatusCode.ERROR, message: redactText(message) });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

export { context, SpanKind, SpanStatusCode, trace };
