/**
 * Differential updates: `(key, value, time, diff)`, where `diff` is +1 for an
 * insertion and -1 for a retraction, and `consolidate`, which sums them.
 *
 * @module
 */
import { encodeValue } from "../../store/cbor.ts";

/** One change to a keyed collection: `diff` copies of `(key, value)` were added (negative: removed) at `time`. */
export interface Update<V = unknown> {
  /** The key. */
  key: string;
  /** The value inserted or retracted. */
  value: V;
  /** The logical time of the change (the dataflow's run number). */
  time: number;
  /** Multiplicity: +1 insertion, -1 retraction. */
  diff: number;
}

/**
 * Sum the diffs of equal `(key, value)` pairs and drop those that cancel out.
 * The result is sorted by key; each pair keeps the latest time it was seen at.
 *
 * @param updates Updates in any order.
 * @returns The consolidated updates.
 *
 * @example A retraction cancels an insertion
 * ```ts
 * import assert from "node:assert/strict";
 * import { consolidate } from "./consolidate.ts";
 * const out = consolidate([
 *   { key: "a", value: 1, time: 1, diff: 1 },
 *   { key: "a", value: 1, time: 2, diff: -1 },
 *   { key: "a", value: 2, time: 2, diff: 1 },
 * ]);
 * assert.deepEqual(out, [{ key: "a", value: 2, time: 2, diff: 1 }]);
 * ```
 */
export function consolidate<V>(updates: Iterable<Update<V>>): Update<V>[] {
  const sums = new Map<string, Update<V>>();
  for (const update of updates) {
    const id = `${update.key}\u0000${
      Array.from(encodeValue(update.value), (b) => String.fromCharCode(b))
        .join("")
    }`;
    const seen = sums.get(id);
    if (seen === undefined) sums.set(id, { ...update });
    else {
      seen.diff += update.diff;
      if (update.time > seen.time) seen.time = update.time;
    }
  }
  return [...sums.values()].filter((u) => u.diff !== 0).sort((a, b) =>
    a.key < b.key ? -1 : a.key > b.key ? 1 : 0
  );
}
