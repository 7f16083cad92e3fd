/**
 * The AsyncAPI 3.0 document of every event the service publishes and consumes, generated from the
 * event contract (events.ts): the same zod schemas the code validates with, converted by zod's own
 * `z.toJSONSchema` (draft-07, which AsyncAPI's Schema Object extends). Served at /asyncapi.json
 * and printed by `orders asyncapi`.
 *
 * Channels are NATS subjects; each message is a CloudEvent in structured mode (its payload the
 * envelope, `data` the type's schema; its headers the NATS headers); a `send` operation per
 * published event, a `receive` operation per consumed one. Named schemas (the order) are hoisted
 * into components.schemas once.
 */
import { z } from 'zod';
import {
  CLOUDEVENTS_CONTENT_TYPE,
  CloudEvent,
  CONSUMED_EVENTS,
  CONSUMER_NAME,
  type ConsumedEventType,
  DEFAULT_STREAM,
  DEFAULT_SUBJECT_PREFIX,
  EVENT_SOURCE,
  PUBLISHED_EVENTS,
  type PublishedEventType,
  STREAMS,
  subjectFor,
} from './events.js';

type JsonSchema = Record<string, unknown>;

export interface AsyncApiDocument {
  asyncapi: '3.0.0';
  info: { title: string; version: string; description: string };
  defaultContentType: string;
  servers: Record<string, unknown>;
  channels: Record<string, unknown>;
  operations: Record<string, unknown>;
  components: { schemas: Record<string, JsonSchema>; messages: Record<string, unknown> };
}

const PUBLISHED_SUMMARIES: Record<PublishedEventType, string> = {
  OrderCreated: 'An order was placed (status pending).',
  OrderConfirmed: "The order's stock was reserved and its payment captured.",
  OrderCancelled: 'The order was cancelled: on request, stock rejected or payment failed.',
  OrderShipped: 'The order was shipped.',
};

const CONSUMED_SUMMARIES: Record<ConsumedEventType, string> = {
  StockReserved: "Catalog reserved the order's items.",
  StockRejected: "Catalog cannot supply the order's items: the order is cancelled.",
  PaymentCaptured: "Payments captured the order's total: with stock reserved, the order is confirmed.",
  PaymentFailed: "Payments could not capture the order's total: the order is cancelled.",
};

const HEADERS: JsonSchema = {
  type: 'object',
  properties: {
    'Content-Type': { type: 'string', const: CLOUDEVENTS_CONTENT_TYPE },
    'Nats-Msg-Id': {
      type: 'string',
      description: "The CloudEvent's id: JetStream drops a second message with the same id",
    },
    traceparent: { type: 'string', description: 'W3C trace context, when there is a trace' },
    tracestate: { type: 'string', description: 'W3C trace state, with traceparent' },
  },
};

/** The document; `version` is the API's (as in the OpenAPI document's info). */
export function buildAsyncApiDocument(options: { version?: string } = {}): AsyncApiDocument {
  const schemas: Record<string, JsonSchema> = {};
  const document: AsyncApiDocument = {
    asyncapi: '3.0.0',
    info: {
      title: 'Orders events',
      version: options.version ?? '1.0.0',
      description:
        'What the Orders service publishes (with NATS_URL, through its transactional outbox: at least ' +
        'once, deduplicated by Nats-Msg-Id) and what it consumes from Catalog and Payments (each ' +
        `applied at most once, through its inbox, by the durable consumer \`${CONSUMER_NAME}\`). ` +
        'Every message is a CloudEvents 1.0 event in structured JSON mode.',
    },
    defaultContentType: CLOUDEVENTS_CONTENT_TYPE,
    servers: {
      nats: {
        host: '{host}',
        protocol: 'nats',
        description: 'The NATS server with JetStream that NATS_URL names.',
        variables: { host: { default: 'localhost:4222', description: 'host:port from NATS_URL' } },
      },
    },
    channels: {},
    operations: {},
    components: { schemas, messages: {} },
  };

  for (const type of Object.keys(PUBLISHED_EVENTS) as PublishedEventType[]) {
    const envelope = CloudEvent.extend({
      source: z.literal(EVENT_SOURCE),
      type: z.literal(type),
      subject: z.uuid().meta({ description: 'The order id' }),
      data: PUBLISHED_EVENTS[type],
    });
    addEvent(document, {
      type,
      address: subjectFor(DEFAULT_SUBJECT_PREFIX, type),
      summary: PUBLISHED_SUMMARIES[type],
      payload: toSchema(envelope, 'output', schemas),
      action: 'send',
      channelDescription:
        `Stored in the stream that captures the subject (the service creates ${DEFAULT_STREAM} for ` +
        `${STREAMS.ORDERS_EVENTS} when none does). \`data\` is the order as it is after the change.`,
    });
  }
  for (const type of Object.keys(CONSUMED_EVENTS) as ConsumedEventType[]) {
    const envelope = CloudEvent.extend({ type: z.literal(type), data: CONSUMED_EVENTS[type].data });
    const stream = Object.entries(STREAMS).find(([, subjects]) =>
      CONSUMED_EVENTS[type].subject.startsWith(subjects.slice(0, -1)),
    );
    addEvent(document, {
      type,
      address: CONSUMED_EVENTS[type].subject,
      summary: CONSUMED_SUMMARIES[type],
      payload: toSchema(envelope, 'input', schemas),
      action: 'receive',
      channelDescription:
        `Consumed by the durable pull consumer \`${CONSUMER_NAME}\` (explicit acks) on the stream that ` +
        `captures the subject (the service creates ${stream?.[0]} for ${stream?.[1]} when none does). ` +
        'The envelope type must be the one the subject names; a message that can never be applied ' +
        'is recorded dead with its reason and acknowledged.',
    });
  }
  return document;
}

function addEvent(
  document: AsyncApiDocument,
  event: {
    type: string;
    address: string;
    summary: string;
    payload: JsonSchema;
    action: 'send' | 'receive';
    channelDescription: string;
  },
) {
  const { type } = event;
  document.components.schemas[`${type}Event`] = event.payload;
  document.components.messages[type] = {
    name: type,
    title: type,
    summary: event.summary,
    contentType: CLOUDEVENTS_CONTENT_TYPE,
    headers:
      event.action === 'send'
        ? { ...HEADERS, required: ['Content-Type', 'Nats-Msg-Id'] }
        : { ...HEADERS, description: 'Not required: the envelope in the body is what is read' },
    payload: { $ref: `#/components/schemas/${type}Event` },
  };
  document.channels[type] = {
    address: event.address,
    description: event.channelDescription,
    messages: { [type]: { $ref: `#/components/messages/${type}` } },
    servers: [{ $ref: '#/servers/nats' }],
  };
  document.operations[`${event.action}${type}`] = {
    action: event.action,
    channel: { $ref: `#/channels/${type}` },
    summary: event.action === 'send' ? `Publishes ${type}.` : `Consumes ${type}.`,
    messages: [{ $ref: `#/channels/${type}/messages/${type}` }],
  };
}

/**
 * One schema, draft-07, its named sub-schemas (`.meta({ id })`, e.g. Order) moved into
 * `schemas` and referenced from there. The same name must always mean the same schema.
 */
function toSchema(
  schema: z.ZodType,
  io: 'input' | 'output',
  schemas: Record<string, JsonSchema>,
): JsonSchema {
  const {
    $schema: _draft,
    definitions,
    ...root
  } = z.toJSONSchema(schema, { target: 'draft-7', io }) as JsonSchema & {
    definitions?: Record<string, JsonSchema>;
  };
  for (const [name, definition] of Object.entries(definitions ?? {})) {
    const hoisted = relink(definition) as JsonSchema;
    const known = schemas[name];
    if (known && JSON.stringify(known) !== JSON.stringify(hoisted)) {
      throw new Error(`two different schemas are named ${name}`);
    }
    schemas[name] = hoisted;
  }
  return relink(root) as JsonSchema;
}

/** `#/definitions/X` → `#/components/schemas/X`, everywhere in a schema. */
function relink(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(relink);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) =>
      key === '$ref' && typeof value === 'string' && value.startsWith('#/definitions/')
        ? [key, `#/components/schemas/${value.slice('#/definitions/'.length)}`]
        : [key, relink(value)],
    ),
  );
}
