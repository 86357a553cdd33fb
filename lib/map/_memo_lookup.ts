// Per-item memo hits: an item whose key another run of the namespace recorded
// takes that run's stored result instead of a call.
import type { Store } from "../../store/store.ts";
import { readValueChunks } from "../output.ts";
import { isResultsChunk, type ResultsChunk } from "./_batch_record.ts";
import {
  buildItemIndex,
  type IndexSource,
  type ItemIndex,
  unpackSlot,
} from "./_item_index.ts";
import { lookupKey } from "./_keys.ts";

/** Fills a batch's slots from other runs' results. */
export type MemoLookup = (
  keys: Uint8Array,
  values: unknown[],
  have: Uint8Array,
) => Promise<number>;

/**
 * A lookup over every run of `namespace` but the caller's own (`exclude`),
 * indexed on first use. `onSource` hears of each run a hit came from (to warn
 * about code edits). Unreadable results are not hits: those items are computed.
 */
export function createMemoLookup(
  store: Store,
  namespace: string,
  exclude: { job: string; run: string },
  onSource: (source: IndexSource) => void,
): MemoLookup {
  let index: Promise<ItemIndex> | undefined;
  const cache = new Map<number, Promise<ResultsChunk | undefined>>();
  const resultsOf = (idx: ItemIndex, batch: number) => {
    let cached = cache.get(batch);
    if (cached === undefined) {
      cached = readValueChunks<unknown>(store.chunks, idx.batches[batch]!)
        .then((v) => isResultsChunk(v) ? v : undefined, () => undefined);
      if (cache.size >= 8) cache.delete(cache.keys().next().value!);
      cache.set(batch, cached);
    }
    return cached;
  };
  return async (keys, values, have) => {
    index ??= buildItemIndex(store, namespace, exclude);
    const idx = await index;
    if (idx.slots.size === 0) return 0;
    const byBatch = new Map<number, [number, number][]>();
    for (let j = 0; j < values.length; j++) {
      const slot = idx.slots.get(lookupKey(keys, j));
      if (slot === undefined) continue;
      const { batch, pos } = unpackSlot(slot);
      let list = byBatch.get(batch);
      if (list === undefined) byBatch.set(batch, list = []);
      list.push([j, pos]);
    }
    let hits = 0;
    for (const [batch, pairs] of byBatch) {
      const chunk = await resultsOf(idx, batch);
      if (chunk === undefined) continue;
      for (const [j, pos] of pairs) {
        if (pos >= chunk.results.length) continue;
        values[j] = chunk.results[pos];
        have[j] = 1;
        hits++;
      }
      onSource(idx.batchSource[batch]!);
    }
    return hits;
  };
}
