/**
 * CIDR blocks for NetworkPolicy egress (K8S_EGRESS_CIDRS): parsed strictly (IPv4 and IPv6),
 * printed in one canonical form (so the same network gives the same bytes however it was typed),
 * and checked against the cloud metadata addresses, which every block that contains one excepts.
 */

export interface Cidr {
  family: 4 | 6;
  /** The network address as an unsigned integer (32 or 128 bits). */
  network: bigint;
  prefix: number;
  /** Canonical text: dotted quad, or RFC 5952 (lowercase, shortest, `::` for the longest zero run). */
  text: string;
}

const BITS = { 4: 32, 6: 128 } as const;

export type CidrResult = { ok: true; cidr: Cidr } | { ok: false; problem: string };

/**
 * The instance metadata services a pod must never reach (credentials of the node's role live
 * there): AWS/GCP/Azure/OpenStack's 169.254.169.254 and AWS's IPv6 endpoint fd00:ec2::254.
 */
export const METADATA_ADDRESSES: readonly Cidr[] = [
  mustParse('169.254.169.254/32'),
  mustParse('fd00:ec2::254/128'),
];

function mustParse(text: string): Cidr {
  const parsed = parseCidr(text);
  if (!parsed.ok) throw new Error(`bad built-in CIDR ${text}: ${parsed.problem}`);
  return parsed.cidr;
}

/** Parses `address/prefix`; refuses a block with host bits set (naming the network it probably meant). */
export function parseCidr(input: string): CidrResult {
  const match = /^([^/\s]+)\/(\d{1,3})$/.exec(input);
  if (!match) return { ok: false, problem: 'is not address/prefix (e.g. 10.0.0.0/8 or fc00::/7)' };
  const [, address = '', prefixText = ''] = match;
  const family = address.includes(':') ? 6 : 4;
  const value = family === 4 ? parseIPv4(address) : parseIPv6(address);
  if (value === undefined) return { ok: false, problem: `has an invalid IPv${family} address` };
  const prefix = Number(prefixText);
  const bits = BITS[family];
  if (prefix > bits || (prefixText.length > 1 && prefixText.startsWith('0'))) {
    return { ok: false, problem: `has an invalid prefix length (0 to ${bits} for IPv${family})` };
  }
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  const network = value & ~hostMask;
  const text = `${format(family, network)}/${prefix}`;
  if (network !== value) {
    return { ok: false, problem: `has host bits set (the network is ${text})` };
  }
  return { ok: true, cidr: { family, network, prefix, text } };
}

/** Whether `inner` lies within `outer` (same family, at least as long a prefix, same leading bits). */
export function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || inner.prefix < outer.prefix) return false;
  const shift = BigInt(BITS[outer.family] - outer.prefix);
  return inner.network >> shift === outer.network >> shift;
}

/** The metadata addresses inside `block`, as CIDR texts to put in an ipBlock's `except`. */
export function metadataExceptions(block: Cidr): string[] {
  return METADATA_ADDRESSES.filter((m) => contains(block, m)).map((m) => m.text);
}

function parseIPv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // No leading zeros: "010" is octal to some parsers and decimal to others.
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) return undefined;
    value = (value << 8n) | BigInt(part);
  }
  return value;
}

function parseIPv6(text: string): bigint | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (half: string | undefined): number[] | undefined => {
    if (half === undefined || half === '') return [];
    const out: number[] = [];
    const parts = half.split(':');
    for (const [i, part] of parts.entries()) {
      if (i === parts.length - 1 && part.includes('.')) {
        // An embedded IPv4 address (e.g. ::ffff:10.0.0.0) fills the last two groups.
        const v4 = parseIPv4(part);
        if (v4 === undefined) return undefined;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(part)) return undefined;
      out.push(Number.parseInt(part, 16));
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  if (head === undefined || tail === undefined) return undefined;
  const compressed = halves.length === 2;
  const missing = 8 - head.length - tail.length;
  if (compressed ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array<number>(compressed ? missing : 0).fill(0), ...tail];
  return all.reduce((value, group) => (value << 16n) | BigInt(group), 0n);
}

function format(family: 4 | 6, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
  }
  const groups = Array.from({ length: 8 }, (_, i) => Number((value >> BigInt(112 - 16 * i)) & 0xffffn));
  // RFC 5952: compress the longest run (of two or more) of zero groups, the first if tied.
  let best = { start: -1, length: 1 };
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > best.length) best = { start: i, length: j - i };
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best.start < 0) return hex.join(':');
  const before = hex.slice(0, best.start).join(':');
  const after = hex.slice(best.start + best.length).join(':');
  return `${before}::${after}`;
}
