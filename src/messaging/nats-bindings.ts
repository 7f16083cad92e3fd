/**
 * Where the consumed subjects live on JetStream, and the durable consumer on each: the
 * consumer's set-up, apart from its message loop (nats-consumer.ts).
 *
 * Each subject is bound to whichever stream captures it (in production Catalog and Payments own
 * theirs); only when none does is the contract's stream created (CATALOG_EVENTS for
 * `catalog.events.>`, PAYMENTS_EVENTS for `payments.events.>`). On each stream one durable pull
 * consumer, `orders`, filtered to our subjects there: explicit acks, a short ack wait (what a
 * crashed consumer's messages wait before redelivery), no delivery limit (a message that can
 * never be applied is recorded dead and acked by the inbox; a transient failure must never drop
 * one).
 */
import type { Logger } from '../platform/logger.js';
import { CONSUMED_EVENTS, type ConsumedEventType, STREAMS } from './events.js';

type JetStreamModule = typeof import('@nats-io/jetstream');
type Jsm = Awaited<ReturnType<JetStreamModule['jetstreamManager']>>;

export interface BindingOptions {
  consumerName: string;
  ackWaitMs: number;
  /** Only tests set these: subjects and created streams carry them, so runs never meet. */
  subjectPrefix: string;
  streamSuffix: string;
}

/** One stream and our subjects on it. */
export interface Binding {
  stream: string;
  subjects: string[];
}

/** The subjects this service consumes (with the test prefix, if any). */
export function consumedSubjects(subjectPrefix: string): string[] {
  return (Object.keys(CONSUMED_EVENTS) as ConsumedEventType[]).map(
    (type) => `${subjectPrefix}${CONSUMED_EVENTS[type].subject}`,
  );
}

/** Groups the subjects by the stream that captures each, creating the contract's stream where none does. */
export async function resolveBindings(
  js: JetStreamModule,
  jsm: Jsm,
  options: BindingOptions,
  logger: Logger,
): Promise<Binding[]> {
  const byStream = new Map<string, string[]>();
  for (const subject of consumedSubjects(options.subjectPrefix)) {
    const stream = await findStream(jsm, subject).then(
      (found) => found ?? createStream(js, jsm, subject, options, logger),
    );
    byStream.set(stream, [...(byStream.get(stream) ?? []), subject]);
  }
  return [...byStream].map(([stream, subjects]) => ({ stream, subjects }));
}

async function findStream(jsm: Jsm, subject: string): Promise<string | undefined> {
  try {
    return await jsm.streams.find(subject);
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}

/**
 * How far back a new (or recreated) consumer starts, and how long the streams we create keep
 * messages: the inbox's retention (housekeeping keeps processed rows 7 days), so whatever is
 * replayed is still known to the inbox and is a duplicate, never a second change. Starting from
 * the beginning of a partner's long-lived stream would replay its whole history (every message
 * for an order this database never had would land in the inbox as dead).
 */
const REPLAY_WINDOW_MS = 7 * 24 * 3600 * 1000;

async function createStream(
  js: JetStreamModule,
  jsm: Jsm,
  subject: string,
  options: BindingOptions,
  logger: Logger,
): Promise<string> {
  const entry = Object.entries(STREAMS).find(([, pattern]) =>
    subject.startsWith(`${options.subjectPrefix}${pattern.slice(0, -1)}`),
  );
  if (!entry) throw new Error(`no stream captures ${subject}, and the contract names none to create`);
  const name = `${entry[0]}${options.streamSuffix}`;
  const subjects = [`${options.subjectPrefix}${entry[1]}`];
  try {
    await jsm.streams.add({
      name,
      subjects,
      retention: js.RetentionPolicy.Limits,
      storage: js.StorageType.File,
      max_age: REPLAY_WINDOW_MS * 1_000_000,
    });
    logger.info({ stream: name, subjects }, 'created JetStream stream for consumed events');
  } catch (error) {
    // Another replica created it meanwhile: fine if it now captures the subject.
    if ((await findStream(jsm, subject)) !== name) throw error;
  }
  return name;
}

/**
 * Creates the durable consumer, or brings an existing one to our settings. Several subjects on
 * one stream need filter_subjects (nats-server 2.10); an older server gets the narrowest
 * wildcard that covers them, and the consumer skips what else arrives (see `wanted`).
 */
export async function ensureConsumer(
  js: JetStreamModule,
  jsm: Jsm,
  binding: Binding,
  options: BindingOptions & { multipleFilters: boolean },
  logger: Logger,
): Promise<void> {
  const filter = filterOf(binding.subjects, options.multipleFilters);
  const settings = {
    ack_wait: options.ackWaitMs * 1_000_000,
    max_deliver: -1,
    ...filter,
  };
  const existing = await jsm.consumers.info(binding.stream, options.consumerName).catch((error: unknown) => {
    if (isNotFound(error)) return undefined;
    throw error;
  });
  if (!existing) {
    try {
      await jsm.consumers.add(binding.stream, {
        durable_name: options.consumerName,
        ack_policy: js.AckPolicy.Explicit,
        deliver_policy: js.DeliverPolicy.StartTime,
        opt_start_time: new Date(Date.now() - REPLAY_WINDOW_MS).toISOString(),
        ...settings,
      });
      logger.info(
        { stream: binding.stream, consumer: options.consumerName, ...filter },
        'created the durable consumer for consumed events',
      );
      return;
    } catch (error) {
      // A replica created it at the same time; fall through and check its settings.
      if (!(await jsm.consumers.info(binding.stream, options.consumerName).catch(() => undefined)))
        throw error;
    }
  }
  const current = existing?.config ?? (await jsm.consumers.info(binding.stream, options.consumerName)).config;
  const differs =
    current.ack_wait !== settings.ack_wait ||
    current.max_deliver !== settings.max_deliver ||
    (current.filter_subject ?? '') !== (filter.filter_subject ?? '') ||
    (current.filter_subjects ?? []).join(',') !== (filter.filter_subjects ?? []).join(',');
  if (!differs) return;
  try {
    await jsm.consumers.update(binding.stream, options.consumerName, settings);
    logger.info(
      { stream: binding.stream, consumer: options.consumerName, ...filter },
      'updated the durable consumer',
    );
  } catch (error) {
    // An older server cannot change some settings in place: run with what it has.
    logger.warn(
      { err: error, stream: binding.stream, consumer: options.consumerName },
      'cannot update the durable consumer to the current settings; running with its existing ones',
    );
  }
}

function filterOf(
  subjects: string[],
  multipleFilters: boolean,
): { filter_subject?: string; filter_subjects?: string[] } {
  // The other field undefined: an update from one form to the other clears it (JSON drops it).
  if (subjects.length === 1) return { filter_subject: subjects[0]!, filter_subjects: undefined };
  if (multipleFilters) return { filter_subject: undefined, filter_subjects: [...subjects].sort() };
  return { filter_subject: coveringWildcard(subjects), filter_subjects: undefined };
}

/** The common leading tokens, then `>`: e.g. `catalog.events.>` for the two Catalog subjects. */
export function coveringWildcard(subjects: string[]): string {
  const split = subjects.map((s) => s.split('.'));
  const common: string[] = [];
  for (let i = 0; split.every((tokens) => i < tokens.length - 1 && tokens[i] === split[0]![i]); i++) {
    common.push(split[0]![i]!);
  }
  return [...common, '>'].join('.');
}

/** nats-server 2.10 brought filter_subjects. */
export function supportsMultipleFilters(version: string | undefined): boolean {
  const [major = 0, minor = 0] = (version ?? '').split('.').map((part) => Number.parseInt(part, 10));
  return major > 2 || (major === 2 && minor >= 10);
}

export function isNotFound(error: unknown): boolean {
  const e = error as { name?: string; code?: unknown; message?: string };
  return (
    e?.name === 'StreamNotFoundError' ||
    e?.name === 'ConsumerNotFoundError' ||
    e?.code === 10059 ||
    e?.code === 10014 ||
    /(stream|consumer) not found|no stream matches/i.test(e?.message ?? '')
  );
}

export function isStreamGone(error: unknown): boolean {
  const e = error as { name?: string; code?: unknown; message?: string };
  return e?.name === 'StreamNotFoundError' || e?.code === 10059 || /stream not found/i.test(e?.message ?? '');
}
