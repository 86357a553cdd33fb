/**
 * Seeded pseudo-random numbers for reproducible data: the demo's data set,
 * benchmarks and tests. The same seed gives the same numbers, bit for bit, on
 * every runtime. Not for anything that needs unpredictability.
 *
 * @module
 */

/**
 * A seeded pseudo-random number generator (mulberry32).
 *
 * Each number is a 32-bit integer divided by 2^32, so `random() * 2 ** 32`
 * gives back the integer exactly.
 *
 * @param seed The seed; only its low 32 bits count.
 * @returns A function giving the next number in [0, 1).
 *
 * @example Same seed, same numbers
 * ```ts
 * import assert from "node:assert/strict";
 * import { seededRandom } from "./random.ts";
 * const a = seededRandom(42);
 * const b = seededRandom(42);
 * const first = a();
 * assert.equal(first, b());
 * assert.ok(first >= 0 && first < 1);
 * assert.ok(Number.isInteger(first * 2 ** 32));
 * assert.notEqual(seededRandom(43)(), first);
 * ```
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A standard normal deviate (Box–Muller), from two numbers of `random`.
 *
 * @param random A source of numbers in [0, 1), such as {@linkcode seededRandom}.
 * @returns A normally distributed number with mean 0 and variance 1.
 *
 * @example Reproducible normal deviates
 * ```ts
 * import assert from "node:assert/strict";
 * import { gaussianRandom, seededRandom } from "./random.ts";
 * const a = seededRandom(7);
 * const b = seededRandom(7);
 * const x = gaussianRandom(a);
 * assert.ok(Number.isFinite(x));
 * assert.equal(x, gaussianRandom(b));
 * ```
 */
export function gaussianRandom(random: () => number): number {
  const u = 1 - random();
  const v = random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Options for {@linkcode randomFloat32}. */
export interface RandomFloat32Options {
  /** Smallest value. Default: `0`. */
  min?: number;
  /** The values stay below it (before rounding to float32). Default: `1`. */
  max?: number;
}

/**
 * A Float32Array of seeded values, uniform in [`min`, `max`): element `i`
 * is `min + (max - min) * random()` for the `i`-th number of
 * {@linkcode seededRandom}(`seed`), rounded to float32.
 *
 * @param length Number of values.
 * @param seed The seed.
 * @param options The range.
 * @returns The values.
 *
 * @example Values in [-1, 1), the same for the same seed
 * ```ts
 * import assert from "node:assert/strict";
 * import { randomFloat32 } from "./random.ts";
 * const a = randomFloat32(1000, 42, { min: -1, max: 1 });
 * assert.equal(a.length, 1000);
 * assert.ok(a.every((x) => x >= -1 && x <= 1));
 * assert.deepEqual(a, randomFloat32(1000, 42, { min: -1, max: 1 }));
 * ```
 */
export function randomFloat32(
  length: number,
  seed: number,
  options: RandomFloat32Options = {},
): Float32Array {
  const min = options.min ?? 0;
  const span = (options.max ?? 1) - min;
  const random = seededRandom(seed);
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = min + span * random();
  return out;
}
