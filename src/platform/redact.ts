/**
 * Credential redaction for everything the service writes out: log lines (messages and fields),
 * error messages, stored event errors (`last_error`), config errors.
 *
 * It scans rather than parses with `new URL`, because the values that most need hiding are the
 * ones a URL parser rejects: a password with an unencoded `/`, `@`, `:` or `#` is exactly what
 * makes the parse fail, and the error would then carry the whole URL. The scans err towards
 * hiding too much: userinfo runs to the *last* `@` of a URL, so `postgres://app:p@ss/w#rd@db`
 * loses all of `p@ss/w#rd` (and an `@` further on, in a query, takes the host along with it).
 *
 * Every pass is one left-to-right scan plus look-behinds over runs no other look-behind visits,
 * so the cost is linear in the text: no input, however hostile, stalls the event loop (the regex
 * this replaces took 336 ms for 40 KB of `a.a.a…`).
 */

const MASK = '***';
const REDACTED = '[redacted]';

/** Parameter and field names whose values are credentials (matched as a suffix, ignoring case). */
const SECRET_NAME_SUFFIXES = ['password', 'passwd', 'pwd', 'secret', 'token', 'apikey', 'api_key', 'api-key'];
/** Field names that hold credentials whole (HTTP headers). */
const SECRET_FIELD_NAMES = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);

/** In a PostgreSQL URL a userinfo without `:` is the role name; elsewhere it is how tokens travel. */
const USER_ONLY_SCHEMES = new Set(['postgres', 'postgresql']);

/**
 * Redacts a value that *is* a URL, or a comma-separated list of them (a config variable): every
 * character up to the last `@` belongs to the credentials, spaces included. Also masks
 * `password=` parameters, so a key=value connection string (`host=db password=…`) is covered.
 */
export function redactUrl(value: string): string {
  let out = value;
  if (out.includes('://')) out = maskUserinfo(out, 0, out.length, true);
  if (out.includes('=')) out = maskParameters(out);
  return out;
}

/**
 * Redacts every credential found anywhere in free text (error messages, log lines): URL userinfo
 * (a URL ends at whitespace there), `password=`-style parameters, Authorization and Cookie header
 * values, and JSON Web Tokens.
 */
export function redactText(text: string): string {
  // Every log field passes through here: most hold neither `:` nor `=`, which all but a JWT need.
  if (!text.includes(':') && !text.includes('=')) return text.includes('eyJ') ? maskJwts(text) : text;
  let out = text;
  if (HEADER_HINT.test(out)) out = maskHeaders(out);
  if (out.includes('://')) out = maskUrlsInWords(out);
  if (out.includes('=')) out = maskParameters(out);
  if (out.includes('eyJ')) out = maskJwts(out);
  return out;
}

/** How deep redactFields looks: beyond pino's own depth limit (5 under each field), so whatever pino prints was seen. */
const MAX_DEPTH = 8;

/**
 * A copy of a log record (or any JSON-like value) with credentials masked: every string field
 * through redactText, fields named like credentials (`authorization`, `cookie`, `…password`,
 * `…token`, `…secret`) replaced whole, URL objects as redacted strings. Returns the value itself
 * when nothing changed, so the common log line costs no copy. Instances of classes other than
 * URL (Errors included: the logger serialises those first) are left as they are.
 */
export function redactFields<T>(value: T): T {
  return walk(value, 0) as T;
}

function walk(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return redactText(value);
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof URL) return redactUrl(value.href);
  // Cycles and absurd nesting end here, never with the unredacted rest.
  if (depth >= MAX_DEPTH) return '[…]';
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const next = walk(value[i], depth + 1);
      if (next === value[i]) continue;
      copy ??= value.slice();
      copy[i] = next;
    }
    return copy ?? value;
  }
  if (!isPlainData(value)) return value;
  let copy: Record<string, unknown> | undefined;
  const record = value as Record<string, unknown>;
  for (const key in record) {
    if (!Object.hasOwn(record, key)) continue;
    const field = record[key];
    const hidden =
      isSecretField(key) &&
      (typeof field === 'object' ? field !== null : typeof field === 'string' && field !== '');
    const next = hidden ? REDACTED : walk(field, depth + 1);
    if (next === field) continue;
    copy ??= { ...value };
    copy[key] = next;
  }
  return copy ?? value;
}

/**
 * Data rather than an instance of a class: made by a literal, `Object.create(null)` or over
 * prototypes no class owns (pino's serialised errors are such objects). Class prototypes, and
 * only they, have their own `constructor`.
 */
function isPlainData(value: object): boolean {
  for (
    let p = Object.getPrototypeOf(value);
    p !== null && p !== Object.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    if (Object.hasOwn(p, 'constructor')) return false;
  }
  return true;
}

function isSecretName(name: string): boolean {
  const lower = name.toLowerCase();
  return SECRET_FIELD_NAMES.has(lower) || SECRET_NAME_SUFFIXES.some((suffix) => lower.endsWith(suffix));
}

/** Log records use few field names, over and over: their verdicts are remembered (up to a bound). */
const fieldVerdicts = new Map<string, boolean>();

function isSecretField(name: string): boolean {
  let secret = fieldVerdicts.get(name);
  if (secret === undefined) {
    secret = isSecretName(name);
    if (fieldVerdicts.size < 1000) fieldVerdicts.set(name, secret);
  }
  return secret;
}

/**
 * pino `redact` paths: a second line of defence for the fields redactFields masks by name. No
 * leading wildcards: pino would run every field of every line through the redaction then.
 */
export const LOG_REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.cookie',
  'config.DATABASE_URL',
  'config.MIGRATE_DATABASE_URL',
  'config.NATS_URL',
  'databaseUrl',
  'password',
];

// ---- the scans ----------------------------------------------------------------------------------

const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);
const isLetter = (c: number) => (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a);
const isDigit = (c: number) => c >= 0x30 && c <= 0x39;
/** RFC 3986 scheme characters: letters, digits, `+`, `-`, `.`. */
const isSchemeChar = (c: number) => isLetter(c) || isDigit(c) || c === 0x2b || c === 0x2d || c === 0x2e;
/** Parameter-name characters: letters, digits, `_`, `-`, `.`. */
const isNameChar = (c: number) => isLetter(c) || isDigit(c) || c === 0x5f || c === 0x2d || c === 0x2e;
/** base64url and the dots between a JWT's parts. */
const isJwtChar = (c: number) => isLetter(c) || isDigit(c) || c === 0x5f || c === 0x2d || c === 0x2e;

/** Masks URL userinfo word by word: in free text a URL ends at whitespace. */
function maskUrlsInWords(text: string): string {
  let out = '';
  let done = 0;
  let at = text.indexOf('://');
  while (at !== -1) {
    let start = at;
    while (start > done && !isSpace(text.charCodeAt(start - 1))) start--;
    let end = at + 3;
    while (end < text.length && !isSpace(text.charCodeAt(end))) end++;
    out += text.slice(done, start) + maskUserinfo(text, start, end, false);
    done = end;
    at = text.indexOf('://', end);
  }
  return out + text.slice(done);
}

/**
 * Masks the userinfo of every URL in text[from, to). A URL begins at `scheme://` where the
 * scheme follows the region's start, a `,` (a server list) or, for a whole value, whitespace;
 * any other `://` is part of the URL before it (a password may contain one). Its userinfo runs
 * from after `://` to its last `@`.
 */
function maskUserinfo(text: string, from: number, to: number, spaceStartsUrl: boolean): string {
  const schemes: number[] = [];
  const authorities: number[] = [];
  for (let i = text.indexOf('://', from); i !== -1 && i + 3 <= to; i = text.indexOf('://', i + 3)) {
    let scheme = i;
    while (scheme > from && isSchemeChar(text.charCodeAt(scheme - 1))) scheme--;
    while (scheme < i && !isLetter(text.charCodeAt(scheme))) scheme++;
    if (scheme === i) continue;
    const before = scheme > from ? text.charCodeAt(scheme - 1) : -1;
    if (schemes.length === 0 || before === 0x2c || (spaceStartsUrl && isSpace(before))) {
      schemes.push(scheme);
      authorities.push(i + 3);
    }
  }
  if (schemes.length === 0) return text.slice(from, to);

  let out = text.slice(from, schemes[0]);
  for (let k = 0; k < schemes.length; k++) {
    const scheme = schemes[k]!;
    const authority = authorities[k]!;
    const end = k + 1 < schemes.length ? schemes[k + 1]! - 1 : to;
    let at = end - 1;
    while (at >= authority && text.charCodeAt(at) !== 0x40) at--;
    if (at < authority) {
      out += text.slice(scheme, end);
    } else {
      let colon = authority;
      while (colon < at && text.charCodeAt(colon) !== 0x3a) colon++;
      const name = text.slice(scheme, authority - 3).toLowerCase();
      if (colon < at) {
        out += `${text.slice(scheme, colon + 1)}${MASK}${text.slice(at, end)}`;
      } else if (USER_ONLY_SCHEMES.has(name)) {
        out += text.slice(scheme, end);
      } else {
        out += `${text.slice(scheme, authority)}${MASK}${text.slice(at, end)}`;
      }
    }
    if (k + 1 < schemes.length) out += text[end];
  }
  return out;
}

/**
 * Masks the value of every `name=value` whose name ends like a credential (`password`,
 * `sslpassword`, `access_token`…): query parameters and libpq key=value connection strings.
 * A quoted value runs to its closing quote (`\` escapes); an unquoted one to whitespace, and in
 * a query string (the name follows `?` or `&`) also to `&` or `#`.
 */
function maskParameters(text: string): string {
  let out = '';
  let done = 0;
  for (let eq = text.indexOf('='); eq !== -1; eq = text.indexOf('=', eq + 1)) {
    if (eq < done) continue;
    let name = eq;
    while (name > done && isNameChar(text.charCodeAt(name - 1))) name--;
    if (name === eq || !isSecretName(text.slice(name, eq))) continue;
    const quote = text.charCodeAt(eq + 1);
    let end = eq + 1;
    if (quote === 0x27 || quote === 0x22) {
      end++;
      while (end < text.length && text.charCodeAt(end) !== quote)
        end += text.charCodeAt(end) === 0x5c ? 2 : 1;
      end = Math.min(end + 1, text.length);
    } else {
      const inQuery = name > 0 && (text.charCodeAt(name - 1) === 0x3f || text.charCodeAt(name - 1) === 0x26);
      while (end < text.length) {
        const c = text.charCodeAt(end);
        if (isSpace(c) || (inQuery && (c === 0x26 || c === 0x23))) break;
        end++;
      }
    }
    if (end === eq + 1) continue;
    out += text.slice(done, eq + 1) + MASK;
    done = end;
  }
  return out + text.slice(done);
}

/** A header name that carries credentials, then `:` or `=` (optionally quoted, as in JSON). */
const HEADER_HINT = /authorization|cookie/i;
const HEADER = /\b(?:authorization|cookie)["']?[ \t]*[:=][ \t]*/gi;

/**
 * Masks the value after `Authorization:`, `Proxy-Authorization:`, `Cookie:`, `Set-Cookie:` (and
 * `"authorization":"…"`): to the end of the line, or to the closing quote of a quoted value.
 */
function maskHeaders(text: string): string {
  let out = '';
  let done = 0;
  HEADER.lastIndex = 0;
  for (let match = HEADER.exec(text); match !== null; match = HEADER.exec(text)) {
    let start = match.index + match[0].length;
    if (start < done) continue;
    const quote = text.charCodeAt(start);
    const quoted = quote === 0x22 || quote === 0x27;
    if (quoted) start++;
    let end = start;
    while (end < text.length) {
      const c = text.charCodeAt(end);
      if (c === 0x0a || c === 0x0d || (quoted && c === quote)) break;
      end += quoted && c === 0x5c ? 2 : 1;
    }
    end = Math.min(end, text.length);
    if (end === start) continue;
    out += text.slice(done, start) + REDACTED;
    done = end;
    HEADER.lastIndex = end;
  }
  return out + text.slice(done);
}

/** Masks JSON Web Tokens (JWS and JWE compact form: `eyJ…` with at least two dots). */
function maskJwts(text: string): string {
  let out = '';
  let done = 0;
  for (let at = text.indexOf('eyJ'); at !== -1; at = text.indexOf('eyJ', Math.max(at + 3, done))) {
    if (at < done || (at > 0 && isJwtChar(text.charCodeAt(at - 1)))) continue;
    let end = at;
    let dots = 0;
    while (end < text.length && isJwtChar(text.charCodeAt(end))) {
      if (text.charCodeAt(end) === 0x2e) dots++;
      end++;
    }
    if (dots < 2) continue;
    out += text.slice(done, at) + REDACTED;
    done = end;
  }
  return out + text.slice(done);
}
