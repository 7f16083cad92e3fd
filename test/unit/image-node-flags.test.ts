/**
 * The image's Node flags are set once, in the Dockerfile's ENTRYPOINT; the bench reads them from
 * there to run ours and its bare baseline as the image runs them.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { imageNodeFlags } from '../../bench/lib/node-flags.js';

describe('imageNodeFlags', () => {
  it("reads the Dockerfile's ENTRYPOINT: a young generation of 2 × 32 MiB", () => {
    const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8');
    expect(imageNodeFlags(dockerfile)).toEqual(['--max-semi-space-size=32']);
  });

  it('reads any flags between node and the script, and none', () => {
    expect(
      imageNodeFlags('FROM x\nENTRYPOINT ["node", "--a", "--b=1", "/app/bin/orders.js"]\nCMD ["serve"]\n'),
    ).toEqual(['--a', '--b=1']);
    expect(imageNodeFlags('ENTRYPOINT ["node", "/app/bin/orders.js"]')).toEqual([]);
  });

  it('refuses an ENTRYPOINT it cannot read rather than run the bench without the flags', () => {
    expect(() => imageNodeFlags('ENTRYPOINT node /app/bin/orders.js')).toThrow(/no exec-form ENTRYPOINT/);
    expect(() => imageNodeFlags('ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/orders.js"]')).toThrow(
      /is not \["node"/,
    );
  });
});
