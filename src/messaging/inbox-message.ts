/**
 * A consumed message, read: the CloudEvents envelope parsed and checked against the subject it
 * arrived on and its type's `data` schema, or the reason it can never be applied. Pure (no SQL,
 * no transport): the inbox (inbox.ts) decides what to write, the NATS consumer what to ack.
 *
 * Every message gets an identity, even a malformed one, so that it can be recorded once and a
 * redelivery of it is recognised: the envelope's `source` and `id` when it has them; otherwise
 * `nats:<subject>` and a hash of the bytes (a redelivery of the same bytes is the same id).
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { LifecycleInput } from '../orders/lifecycle.js';
import { CloudEvent, CONSUMED_EVENTS, type ConsumedEventType } from './events.js';

/** A message as the transport hands it over (NATS, or the partner simulator without NATS). */
export interface InboundMessage {
  /** The subject it arrived on, e.g. `payments.events.PaymentCaptured`. */
  subject: string;
  /** The body as received: the CloudEvent in structured JSON mode. */
  body: string | Uint8Array;
  headers?: Record<string, string> | undefined;
  /** Deliveries so far (1 = the first), when the transport knows; for logs only. */
  deliveryCount?: number | undefined;
}

/** Who a message is: the CloudEvents identity (source, id), its type and its order, as far as known. */
export interface InboundIdentity {
  source: string;
  id: string;
  /** The envelope's type, else the type the subject names, else `unknown`. */
  type: string;
  orderId: string | null;
}

/** Why a message can never be applied, as `reason` begins (the rest is the detail). */
export const DEAD_REASONS = [
  'malformed_json',
  'malformed_envelope',
  'missing_id',
  'unknown_type',
  'type_mismatch',
  'invalid_data',
  'unknown_order',
  'amount_mismatch',
  'failed',
] as const;
export type DeadReason = (typeof DEAD_REASONS)[number];

export type ParsedMessage =
  | {
      ok: true;
      identity: InboundIdentity;
      type: ConsumedEventType;
      input: LifecycleInput;
      data: z.infer<(typeof CONSUMED_EVENTS)[ConsumedEventType]['data']>;
      /** W3C trace context from the headers, carried on to the events the change publishes. */
      traceContext: Record<string, string> | undefined;
    }
  | { ok: false; identity: InboundIdentity; reason: string };

const TYPE_BY_SUBJECT = new Map<string, ConsumedEventType>(
  (Object.keys(CONSUMED_EVENTS) as ConsumedEventType[]).map((type) => [CONSUMED_EVENTS[type].subject, type]),
);

/** The consumed type a subject names (after `subjectPrefix`, which only tests set), if any. */
export function typeOfSubject(subject: string, subjectPrefix = ''): ConsumedEventType | undefined {
  if (!subject.startsWith(subjectPrefix)) return undefined;
  return TYPE_BY_SUBJECT.get(subject.slice(subjectPrefix.length));
}

const Source = CloudEvent.shape.source;
const Id = CloudEvent.shape.id;
const OrderId = z.uuid();
const MAX_DETAIL = 300;

/** The body as text (what the inbox stores): UTF-8, invalid sequences replaced. */
export function bodyText(body: string | Uint8Array): string {
  return typeof body === 'string' ? body : new TextDecoder('utf-8', { fatal: false }).decode(body);
}

export function parseInbound(
  message: InboundMessage,
  options: { subjectPrefix?: string } = {},
): ParsedMessage {
  const text = bodyText(message.body);
  const subjectType = typeOfSubject(message.subject, options.subjectPrefix);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return dead(identityOf(undefined, message, subjectType), 'malformed_json', (error as Error).message);
  }
  const identity = identityOf(json, message, subjectType);
  const envelope = CloudEvent.safeParse(json);
  if (!envelope.success) {
    const idMissing = envelope.error.issues.some((issue) => issue.path[0] === 'id');
    return dead(identity, idMissing ? 'missing_id' : 'malformed_envelope', summarise(envelope.error));
  }
  const event = envelope.data;
  if (!subjectType) {
    return dead(identity, 'unknown_type', `no consumed event type arrives on subject ${message.subject}`);
  }
  if (event.type !== subjectType) {
    return dead(
      identity,
      'type_mismatch',
      `the envelope's type ${JSON.stringify(event.type)} is not ${subjectType}, which subject ${message.subject} carries`,
    );
  }
  const data = CONSUMED_EVENTS[subjectType].data.safeParse(event.data);
  if (!data.success) return dead(identity, 'invalid_data', summarise(data.error));
  return {
    ok: true,
    identity,
    type: subjectType,
    input: { kind: subjectType },
    data: data.data,
    traceContext: traceContextOf(message.headers),
  };
}

/** `<code>: <detail>`, one line, bounded: what `reason` holds. */
export function deadReason(code: DeadReason, detail: string): string {
  const line = detail.replace(/\s+/g, ' ').trim();
  return `${code}: ${line.length > MAX_DETAIL ? `${line.slice(0, MAX_DETAIL - 1)}…` : line}`;
}

function dead(identity: InboundIdentity, code: DeadReason, detail: string): ParsedMessage {
  return { ok: false, identity, reason: deadReason(code, detail) };
}

/** What can be known of a message's identity, however broken the rest of it is. */
function identityOf(
  json: unknown,
  message: InboundMessage,
  subjectType: ConsumedEventType | undefined,
): InboundIdentity {
  const fields = json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : {};
  const source = Source.safeParse(fields.source);
  const id = Id.safeParse(fields.id);
  const data =
    fields.data !== null && typeof fields.data === 'object' ? (fields.data as { orderId?: unknown }) : {};
  const orderId = OrderId.safeParse(data.orderId);
  const type =
    typeof fields.type === 'string' && fields.type.length > 0 ? fields.type.slice(0, 200) : undefined;
  return {
    source: source.success ? source.data : `nats:${message.subject}`.slice(0, 500),
    id: id.success ? id.data : `sha256:${createHash('sha256').update(message.body).digest('hex')}`,
    type: type ?? subjectType ?? 'unknown',
    orderId: orderId.success ? orderId.data.toLowerCase() : null,
  };
}

function traceContextOf(headers: Record<string, string> | undefined): Record<string, string> | undefined {
  const traceparent = headers?.traceparent;
  if (!traceparent) return undefined;
  const tracestate = headers?.tracestate;
  return tracestate ? { traceparent, tracestate } : { traceparent };
}

function summarise(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(envelope)'}: ${issue.message}`)
    .join('; ');
}
