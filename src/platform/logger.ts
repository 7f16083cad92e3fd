import pino, { type Logger } from 'pino';
import { LOG_REDACT_PATHS, redactFields, redactText } from './redact.js';

export type { Logger };

/** pino's own state, exposed for integrations (pino.symbols): what a line is built from. */
interface PinoInternals {
  [key: symbol]: unknown;
}
const { lsCacheSym, timeSym, chindingsSym, endSym, streamSym } = pino.symbols;
const INFO = 30;
const NEEDS_METADATA = Symbol.for('pino.metadata');

/** pino's error serialiser (message and stack with their causes, custom fields), credentials masked. */
function serializeError(err: Error): unknown {
  return redactFields(pino.stdSerializers.err(err));
}

/** A request as fastify logs it (method, url, host, caller address), its URL masked. */
function serializeRequest(req: {
  method?: string;
  url?: string;
  host?: string;
  ip?: string;
  socket?: { remoteAddress?: string; remotePort?: number };
}): unknown {
  // Not a request (a record's own `req` field): formatters.log has already masked it.
  if (typeof req?.method !== 'string') return req;
  return {
    method: req.method,
    url: req.url === undefined ? undefined : redactText(req.url),
    host: req.host,
    remoteAddress: req.ip ?? req.socket?.remoteAddress,
    remotePort: req.socket?.remotePort,
  };
}

let stampedMs = Number.NaN;
let stamp = '';
let minuteStartMs = Number.NaN;
/** `,"time":"YYYY-MM-DDTHH:MM:` of the minute that starts at minuteStartMs. */
let minutePrefix = '';

/**
 * pino's isoTime (`,"time":"<ISO 8601>"`), the same text as pino.stdTimeFunctions.isoTime, made
 * once per millisecond: under load several lines share a millisecond. A new millisecond formats
 * only its seconds and milliseconds onto the minute's prefix (Date#toISOString once a minute):
 * toISOString per millisecond was 2 % of a GET's instructions.
 */
export function isoTime(now = Date.now()): string {
  if (now === stampedMs) return stamp;
  stampedMs = now;
  let inMinute = now - minuteStartMs;
  if (!(inMinute >= 0 && inMinute < 60_000)) {
    const iso = new Date(now).toISOString();
    // Years 0–9999 only: beyond them toISOString has another shape, and each line formats alone.
    if (iso.length !== 24) {
      stamp = `,"time":"${iso}"`;
      return stamp;
    }
    minuteStartMs = now - (((now % 60_000) + 60_000) % 60_000);
    minutePrefix = `,"time":"${iso.slice(0, 17)}`;
    inMinute = now - minuteStartMs;
  }
  const seconds = Math.floor(inMinute / 1000);
  const millis = inMinute - seconds * 1000;
  stamp = `${minutePrefix}${seconds < 10 ? '0' : ''}${seconds}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z"`;
  return stamp;
}

/** Lines held before a write is due even within one event-loop turn. */
const BATCH_BYTES = 8 * 1024;

/** sonic-boom's state this reads (4.x): bytes buffered (internal, so optional), and whether it is closed. */
interface SonicBoomState {
  _len?: number;
  destroyed: boolean;
}

/**
 * stdout (or `fd`), written once per event-loop turn: the lines of every request that finished in
 * the same turn go out in one write(2), made synchronously at the end of the turn (setImmediate),
 * never later, or at once when 8 KiB are held. Measured per access-log line: 6.6 µs with one
 * asynchronous write each (a thread-pool hand-off per line), 2.7 µs like this. pino's own default
 * is a synchronous stdout as well: a reader that stops reading stalls the process rather than its
 * memory growing without bound. What is still held is written on exit and on logger.flush().
 *
 * The turn's lines are held here, appended to one string, and handed to sonic-boom once:
 * sonic-boom measures the UTF-8 length of the text it holds on every write, which flattens (copies)
 * it, so a turn of n lines written to it one by one cost n copies of a growing string. Measured
 * with the access log's own lines, nine to a turn: 2.4–2.6 µs per line through sonic-boom, 1.9–2.1 µs
 * like this (docs/performance.md). An array joined at the end of the turn was slower in the server:
 * its join took ~1.4 µs per line in a CPU profile.
 */
export function batchedStdout(fd = 1): pino.DestinationStream {
  const stream = pino.destination({ fd, sync: true, minLength: BATCH_BYTES });
  const state = stream as unknown as SonicBoomState;
  const { write, flush, flushSync } = stream;
  let held = '';
  let scheduled = false;
  const handOver = () => {
    if (held === '') return;
    const text = held;
    held = '';
    // A closed stream drops its lines, as pino's own destination does after end().
    if (!state.destroyed) write.call(stream, text);
  };
  const endOfTurn = () => {
    scheduled = false;
    handOver();
    // flush() itself waits for a write under way; `_len` only spares an empty write, and should a
    // later sonic-boom rename it, lines are still flushed every turn (never held until 8 KiB).
    if (!state.destroyed && (state._len ?? 1) > 0) flush.call(stream);
  };
  stream.write = (data: string) => {
    held += data;
    // Characters, not bytes: at 8 K characters at least 8 KiB are held, which sonic-boom, holding
    // at most 8 KiB (minLength), then writes at once.
    if (held.length >= BATCH_BYTES) handOver();
    if (!scheduled) {
      scheduled = true;
      setImmediate(endOfTurn);
    }
    return true;
  };
  stream.flush = (cb?: (err?: Error) => unknown) => {
    handOver();
    flush.call(stream, cb);
  };
  stream.flushSync = () => {
    handOver();
    flushSync.call(stream);
  };
  process.once('exit', () => {
    handOver();
    if (!state.destroyed && (state._len ?? 1) > 0) flushSync.call(stream);
  });
  return stream;
}

/**
 * JSON logs on stdout (or a given stream). Credentials are masked wherever they can appear: the
 * message and interpolated values, every field of the record and of child bindings (a URL with
 * userinfo, a header, a `…password` field), and serialised errors.
 */
export function createLogger(
  level: string,
  options: { destination?: pino.DestinationStream; name?: string } = {},
): Logger {
  const logger = pino(
    {
      level,
      name: options.name,
      base: { service: 'orders' },
      // pino calls it without arguments: the time is now.
      timestamp: isoTime,
      redact: { paths: LOG_REDACT_PATHS, censor: '[redacted]' },
      formatters: {
        level: (label) => ({ level: label }),
        bindings: (bindings) => redactFields(bindings),
        // Runs before the serialisers: `err` is left to its serialiser, an Error under any other
        // key is serialised the same way (pino would print only its enumerable fields).
        log: (record) => {
          let errors: Record<string, unknown> | undefined;
          for (const key in record) {
            const value = record[key];
            if (key === 'err' || !(value instanceof Error)) continue;
            errors ??= {};
            errors[key] = serializeError(value);
          }
          return redactFields(errors ? { ...record, ...errors } : record);
        },
      },
      // Serialisers run after `formatters.log`, so their output is masked here. These replace
      // fastify's own (which it merges under ours) with the same fields.
      serializers: { err: serializeError, req: serializeRequest },
      hooks: {
        logMethod(args, method) {
          for (let i = 0; i < args.length; i++) {
            if (typeof args[i] === 'string') args[i] = redactText(args[i] as string);
            else if (i > 0) args[i] = redactFields(args[i]);
          }
          method.apply(this, args as Parameters<typeof method>);
        },
      },
    },
    options.destination ?? batchedStdout(),
  );
  // pino hands a child's bindings to no formatter (it resets `formatters.bindings` for children),
  // so they are masked on the way in. Children inherit this `child`, grandchildren too.
  const child = logger.child;
  logger.child = function (this: Logger, bindings, childOptions) {
    return child.call(this, redactFields(bindings), childOptions);
  } as Logger['child'];
  return logger;
}

/** A flat log record: strings and numbers under names that are not credentials'. */
export type FlatRecord = Record<string, string | number | undefined>;

/**
 * `logger.info(record, msg)` for a flat record, written as the very same line (the same bytes;
 * test/unit/logger-flat.test.ts holds it to that) without pino's generic path: the hooks, the
 * formatters, the serialiser lookups and the redaction walk over every field cost more than the
 * line itself. Strings are masked as redactText masks them, as the generic path would; the names
 * are the caller's constants (identifiers, none named like a credential). The access log writes
 * one per request.
 */
export function infoFlat(logger: Logger, record: FlatRecord, msg: string): void {
  if (logger.levelVal > INFO) return;
  const state = logger as unknown as PinoInternals;
  const stream = state[streamSym] as (pino.DestinationStream & PinoInternals) | undefined;
  // Not a pino logger of ours, or a stream that wants each line's metadata (pino.multistream).
  if (typeof state[chindingsSym] !== 'string' || !stream || stream[NEEDS_METADATA]) {
    logger.info(record, msg);
    return;
  }
  let line =
    (state[lsCacheSym] as Record<number, string>)[INFO]! +
    (state[timeSym] as () => string)() +
    (state[chindingsSym] as string);
  for (const name in record) {
    const value = record[name];
    if (value === undefined) continue;
    line +=
      typeof value === 'number'
        ? `,"${name}":${Number.isFinite(value) ? value : null}`
        : `,"${name}":${quoted(value)}`;
  }
  line += `,"msg":${quoted(msg)}${state[endSym] as string}`;
  stream.write(line);
}

/** Strings this short are mostly the same few again and again: the method, the route, the message. */
const MEMO_MAX_LENGTH = 32;
/** Bounds the memo when they are not (a client's short URLs, many subjects): it starts over. */
const MEMO_MAX_ENTRIES = 512;
const quotedMemo = new Map<string, string>();

/** `value` masked, as a JSON string. */
function quoted(value: string): string {
  if (value.length > MEMO_MAX_LENGTH) return JSON.stringify(redactText(value));
  let text = quotedMemo.get(value);
  if (text === undefined) {
    if (quotedMemo.size >= MEMO_MAX_ENTRIES) quotedMemo.clear();
    text = JSON.stringify(redactText(value));
    quotedMemo.set(value, text);
  }
  return text;
}
