/**
 * Seeds for tests that choose kill points, cut offsets or property inputs at
 * random: every choice comes from a printed seed, so a failure can be
 * replayed with `CAIRN_SEED=<seed>`.
 *
 * Property-run counts are short by default, so `npm test` stays fast; set
 * `CAIRN_LONG=1` for the full counts (CI does, in a separate step).
 */
import { seededRandom } from "../lib/random.ts";

/** Whether the long campaigns and full property counts were asked for. */
export const LONG: boolean = process.env.CAIRN_LONG === "1";

function seedFromEnv(): number | undefined {
  const text = process.env.CAIRN_SEED;
  if (text === undefined || text === "") return undefined;
  if (!/^\d+$/.test(text)) {
    throw new TypeError(
      `Invalid CAIRN_SEED "${text}": expected a whole number printed by an earlier test run`,
    );
  }
  return Number(text) >>> 0;
}

/**
 * A seeded random source for one test, printing its seed.
 *
 * @param label The test's name, printed with the seed.
 * @returns The seed and a function giving numbers in [0, 1).
 */
export function testRandom(label: string): {
  seed: number;
  random: () => number;
  /** A whole number in [lo, hi]. */
  between(lo: number, hi: number): number;
} {
  const seed = seedFromEnv() ?? Math.floor(Math.random() * 2 ** 32);
  console.log(`${label}: seed ${seed} (replay with CAIRN_SEED=${seed})`);
  const random = seededRandom(seed);
  return {
    seed,
    random,
    between: (lo, hi) => lo + Math.floor(random() * (hi - lo + 1)),
  };
}

/**
 * fast-check options: a short run count by default, `full` with
 * `CAIRN_LONG=1`, and the seed from `CAIRN_SEED` when given (fast-check
 * prints its seed on failure).
 *
 * @param full The run count for the long form.
 * @returns Options for `fc.assert`.
 */
export function propertyRuns(full: number): { numRuns: number; seed?: number } {
  const seed = seedFromEnv();
  const numRuns = LONG
    ? full
    : Math.min(full, Math.max(10, Math.ceil(full / 5)));
  return seed === undefined ? { numRuns } : { numRuns, seed };
}
