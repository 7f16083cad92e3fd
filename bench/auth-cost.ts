/**
 * CPU per bearer-token verification, uncached (every token new) and cached (the same tokens
 * again), for each signing algorithm `orders auth keygen` makes. In-process, no HTTP: the HTTP
 * cost of the authenticated path is `npm run bench`'s job.
 *
 *   npm run bench:auth [-- --tokens N --rounds K]
 */
import { parseArgs } from 'node:util';
import { generateDevKeyPair, KEY_ALGORITHMS, signDevToken } from '../src/auth/dev-keys.js';
import { createKeyStore } from '../src/auth/key-store.js';
import { createTokenVerifier } from '../src/auth/verifier.js';

const { values } = parseArgs({ options: { tokens: { type: 'string' }, rounds: { type: 'string' } } });
const TOKENS = Number(values.tokens ?? 2000);
const ROUNDS = Number(values.rounds ?? 5);

const cpuMicros = async (fn: () => Promise<void>) => {
  const start = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(start);
  return used.user + used.system;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

console.log(`tokens ${TOKENS}, rounds ${ROUNDS}; CPU µs per request (median of rounds)`);
for (const alg of KEY_ALGORITHMS) {
  const pair = await generateDevKeyPair(alg);
  const keys = createKeyStore({ load: async () => pair.jwks });
  const verifier = (cacheSize: number) =>
    createTokenVerifier({
      issuer: 'bench',
      audience: 'orders',
      clockToleranceS: 30,
      keys: keys.resolve,
      cacheSize,
    });
  const headers = await Promise.all(
    Array.from({ length: TOKENS }, async (_, i) => {
      const jwt = await signDevToken({
        privateJwk: pair.privateJwk,
        subject: `c-${i}`,
        scope: 'orders:read orders:write',
        issuer: 'bench',
        audience: 'orders',
        ttlSeconds: 3600,
      });
      return `Bearer ${jwt}`;
    }),
  );
  const uncached: number[] = [];
  const cached: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const cold = verifier(1); // a one-entry cache: every distinct token is verified
    uncached.push(
      (await cpuMicros(async () => void (await Promise.all(headers.map((h) => cold.authenticate(h)))))) /
        TOKENS,
    );
    const warm = verifier(TOKENS);
    for (const h of headers) await warm.authenticate(h);
    cached.push(
      (await cpuMicros(async () => {
        for (let k = 0; k < 10; k++) for (const h of headers) await warm.authenticate(h);
      })) /
        (TOKENS * 10),
    );
  }
  console.log(
    `${alg.padEnd(6)} verify ${median(uncached).toFixed(1).padStart(6)} µs   cached ${median(cached).toFixed(2)} µs`,
  );
}
