/**
 * K8S_EGRESS_CIDRS' parser: IPv4 and IPv6, one canonical text per network, host bits refused,
 * and the metadata addresses found inside whichever block contains them.
 */
import { describe, expect, it } from 'vitest';
import { contains, metadataExceptions, parseCidr } from '../../src/k8s/cidr.js';

const text = (input: string) => {
  const parsed = parseCidr(input);
  if (!parsed.ok) throw new Error(`${input}: ${parsed.problem}`);
  return parsed.cidr.text;
};
const problem = (input: string) => {
  const parsed = parseCidr(input);
  return parsed.ok ? undefined : parsed.problem;
};
const except = (input: string) => {
  const parsed = parseCidr(input);
  if (!parsed.ok) throw new Error(parsed.problem);
  return metadataExceptions(parsed.cidr);
};

describe('render-k8s: CIDR blocks', () => {
  it.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['192.168.1.7/32', '192.168.1.7/32'],
    ['FC00::/7', 'fc00::/7'],
    ['fc00:0000::/7', 'fc00::/7'],
    ['2001:0db8:0:0:1:0:0:0/128', '2001:db8:0:0:1::/128'],
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128'],
    ['::/0', '::/0'],
    ['::1/128', '::1/128'],
    ['1:2:3:4:5:6:7:8/128', '1:2:3:4:5:6:7:8/128'],
    ['1:0:3:4:5:6:7:8/128', '1:0:3:4:5:6:7:8/128'],
    ['::ffff:10.0.0.0/104', '::ffff:a00:0/104'],
  ])('accepts %s as %s', (input, canonical) => {
    expect(text(input)).toBe(canonical);
  });

  it.each([
    ['10.1.2.3/8', /host bits set \(the network is 10\.0\.0\.0\/8\)/],
    ['fc00::1/7', /host bits set \(the network is fc00::\/7\)/],
    ['256.0.0.0/8', /invalid IPv4 address/],
    ['10.0.0/8', /invalid IPv4 address/],
    ['010.0.0.0/8', /invalid IPv4 address/],
    ['10.0.0.0/33', /invalid prefix length \(0 to 32/],
    ['10.0.0.0/08', /invalid prefix length/],
    ['fc00::/129', /invalid prefix length \(0 to 128/],
    ['1::2::3/64', /invalid IPv6 address/],
    ['1:2:3:4:5:6:7:8:9/128', /invalid IPv6 address/],
    ['1:2:3:4:5:6:7::8/128', /invalid IPv6 address/],
    ['g::/16', /invalid IPv6 address/],
    ['10.0.0.0', /address\/prefix/],
    ['10.0.0.0/8 ', /address\/prefix/],
    ['', /address\/prefix/],
  ])('refuses %j', (input, why) => {
    expect(problem(input)).toMatch(why);
  });

  it('finds the metadata addresses only in the blocks that contain them', () => {
    expect(except('169.254.0.0/16')).toEqual(['169.254.169.254/32']);
    expect(except('0.0.0.0/0')).toEqual(['169.254.169.254/32']);
    expect(except('10.0.0.0/8')).toEqual([]);
    expect(except('fd00::/8')).toEqual(['fd00:ec2::254/128']);
    expect(except('fc00::/7')).toEqual(['fd00:ec2::254/128']);
    expect(except('::/0')).toEqual(['fd00:ec2::254/128']);
    expect(except('fd01::/16')).toEqual([]);
    expect(except('169.254.169.254/32')).toEqual(['169.254.169.254/32']);
  });

  it('containment is by prefix and family', () => {
    const c = (s: string) => {
      const p = parseCidr(s);
      if (!p.ok) throw new Error(p.problem);
      return p.cidr;
    };
    expect(contains(c('10.0.0.0/8'), c('10.255.0.0/16'))).toBe(true);
    expect(contains(c('10.0.0.0/16'), c('10.0.0.0/8'))).toBe(false);
    expect(contains(c('11.0.0.0/8'), c('10.0.0.0/16'))).toBe(false);
    expect(contains(c('::/0'), c('0.0.0.0/0'))).toBe(false);
  });
});
