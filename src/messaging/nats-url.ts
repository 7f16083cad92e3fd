/**
 * NATS_URL as the NATS client needs it. The client takes only `host:port` from a server URL and
 * silently drops its userinfo (and a password it cannot parse fails the connect with "Invalid
 * URL"), so credentials move into connection options: `user:pass@` → user and pass, a lone
 * `token@` → token. `tls://` requires TLS (tls: {}), where `nats://` would only use it when the
 * server offers it. The servers keep neither, so they are safe to log.
 */
import { UsageError } from '../platform/errors.js';

export interface NatsTarget {
  /** `scheme://host:port` of every server, without credentials. */
  servers: string[];
  user?: string;
  pass?: string;
  token?: string;
  /** Set when a server is `tls://`: the connection must be TLS. */
  tls?: Record<string, never>;
}

const SERVER = /^([a-z][a-z0-9+.-]*):\/\/(.*)$/is;

/**
 * Parses one NATS URL or a comma-separated list. Userinfo runs to the last `@` of an entry, so
 * a password may hold `/`, `@`, `:` or `#` unencoded; percent-encoding is decoded. The client
 * has one set of credentials for all servers: servers may carry them or not, but not different
 * ones (a UsageError: exit 2).
 */
export function parseNatsUrl(value: string): NatsTarget {
  const target: NatsTarget = { servers: [] };
  let credentials: string | undefined;
  for (const entry of value.split(',')) {
    const trimmed = entry.trim();
    if (!trimmed) continue;
    const match = SERVER.exec(trimmed);
    const scheme = match ? match[1]!.toLowerCase() : 'nats';
    const rest = match ? match[2]! : trimmed;
    const at = rest.lastIndexOf('@');
    const host = rest.slice(at + 1).replace(/[/?#].*$/s, '');
    if (!host) throw new UsageError(`NATS_URL: a server has no host (${scheme}://…)`);
    target.servers.push(`${scheme}://${host}`);
    if (scheme === 'tls') target.tls = {};
    if (at === -1) continue;
    const userinfo = rest.slice(0, at);
    if (credentials !== undefined && credentials !== userinfo) {
      throw new UsageError(
        'NATS_URL: the servers carry different credentials; the client has one set for all of them',
      );
    }
    credentials = userinfo;
  }
  if (target.servers.length === 0) throw new UsageError('NATS_URL: no server given');
  if (credentials !== undefined) {
    const colon = credentials.indexOf(':');
    if (colon === -1) {
      target.token = decode(credentials);
    } else {
      target.user = decode(credentials.slice(0, colon));
      target.pass = decode(credentials.slice(colon + 1));
    }
  }
  return target;
}

/** Percent-decoding where it is well-formed; a stray `%` is taken literally. */
function decode(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
