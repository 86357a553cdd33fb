/**
 * Test data for the kNN tie-break rules, shared by the out-of-core tests.
 */
import { seededRandom } from "../lib/random.ts";

/**
 * Small integer-valued rows (many ties), a few exact duplicates and a zero
 * row (for cosine with `zeroVector: "one"`): every tie-break rule is
 * exercised.
 *
 * @param rows Rows (at least 101).
 * @param cols Columns.
 * @param seed The random seed.
 * @returns Row-major float32 data.
 */
export function tieHeavy(
  rows: number,
  cols: number,
  seed: number,
): Float32Array {
  const random = seededRandom(seed);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(random() * 4) - 1;
  for (const [from, to] of [[3, 40], [3, 41], [100, 7]] as const) {
    data.copyWithin(to * cols, from * cols, (from + 1) * cols);
  }
  data.fill(0, 9 * cols, 10 * cols);
  return data;
}
