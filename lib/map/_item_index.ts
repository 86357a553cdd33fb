// The per-item memo index of a namespace: item key -> (results chunk, position),
// built once per call by replaying the namespace's runs. Item keys live in each
// batch step's record (see _batch_record.ts), so no chunk is read to build it.
import type { ChunkRef } from "../../store/chunk_store.ts";
import { batchOf } from "./_batch_record.ts";
import type { Store } from "../../store/store.ts";
import { replayRun } from "../replay.ts";
import { KEY_BYTES, lookupKey } from "./_keys.ts";

/** Position bits in a packed slot; batches hold at most 2^20 items. */
export const POS_BITS = 20;
const POS_SCALE = 2 ** POS_BITS;

/** A run whose batches the index points into. */
export interface IndexSource {
  job: string;
  run: string;
  codeHash: string | undefined;
}

/** Item key -> packed (batch, position). */
export interface ItemIndex {
  slots: Map<string, number>;
  /** Results chunk refs per indexed batch. */
  batches: ChunkRef[][];
  /** The run each indexed batch came from. */
  batchSource: IndexSource[];
  /** Runs read. */
  runs: number;
}

/** Where a slot points. */
export function unpackSlot(slot: number): { batch: number; pos: number } {
  return { batch: Math.floor(slot / POS_SCALE), pos: slot % POS_SCALE };
}

/**
 * Build the index of every run in `namespace` except `exclude` (the caller's
 * own run, whose batches it finds by step key). Unreadable runs are skipped:
 * their items are simply not hits.
 */
export async function buildItemIndex(
  store: Store,
  namespace: string,
  exclude: { job: string; run: string },
): Promise<ItemIndex> {
  const index: ItemIndex = {
    slots: new Map(),
    batches: [],
    batchSource: [],
    runs: 0,
  };
  for (const job of await store.listJobs()) {
    for (const run of await store.listRuns(job)) {
      if (job === exclude.job && run === exclude.run) continue;
      const state = await replayRun(store, job, run).catch(() => undefined);
      if (state === undefined || state.header.memo !== namespace) continue;
      index.runs++;
      const source: IndexSource = { job, run, codeHash: state.header.codeHash };
      for (const step of state.steps.values()) {
        const batch = batchOf(step);
        if (batch === undefined) continue;
        const at = index.batches.length;
        index.batches.push(batch.results);
        index.batchSource.push(source);
        const n = batch.itemKeys.length / KEY_BYTES;
        for (let pos = 0; pos < n; pos++) {
          const key = lookupKey(batch.itemKeys, pos);
          if (key !== "") index.slots.set(key, at * POS_SCALE + pos);
        }
      }
    }
  }
  return index;
}
