// One rule for what a map batch step records: its key, its results chunk, its
// typed stats and its item keys (`items.keys`; `stats.itemKeys` in old runs).
import type { ChunkRef } from "../../store/chunk_store.ts";
import type { StepRecord } from "../records.ts";
import { KEY_BYTES, toHex } from "./_keys.ts";
import type { MapBatchStats } from "./describe.ts";

/** Step keys of map batches: `b<index>-<16 hex of the batch's content hash>`. */
export const BATCH_KEY = /^b\d+-[0-9a-f]{16}$/;

/** The step key of batch `index` with content hash `hash`. */
export function batchKeyOf(index: number, hash: Uint8Array): string {
  return `b${String(index).padStart(6, "0")}-${toHex(hash, 8)}`;
}

/** What the results chunk of a batch holds. */
export interface ResultsChunk {
  v: 1;
  /** One slot per item; a failed item's slot is null. */
  results: unknown[];
  /** `[position, message]` per failed item. */
  errors: [number, string][];
}

/** A recorded map batch: its results chunks, item keys and failure count. */
export interface BatchRecord {
  results: ChunkRef[];
  /** 16 bytes per item, zeroed for failed items. */
  itemKeys: Uint8Array;
  failed: number;
}

/**
 * The batch a step record holds, or undefined when it is not a map batch.
 * Item keys live in the record's `items.keys`; runs written before that field
 * existed kept them in `stats.itemKeys`, which still reads.
 */
export function batchOf(step: StepRecord): BatchRecord | undefined {
  const stats = step.stats as Partial<MapBatchStats> | undefined;
  const itemKeys = step.items?.keys ?? stats?.itemKeys;
  if (
    !BATCH_KEY.test(step.key) || step.output.kind !== "value" ||
    !(itemKeys instanceof Uint8Array) || itemKeys.length % KEY_BYTES !== 0
  ) return undefined;
  return {
    results: step.output.chunks,
    itemKeys,
    failed: typeof stats?.failed === "number" ? stats.failed : 0,
  };
}

/** Decode-time check of a results chunk. */
export function isResultsChunk(
  value: unknown,
  n?: number,
): value is ResultsChunk {
  const v = value as ResultsChunk | null;
  return typeof v === "object" && v !== null && v.v === 1 &&
    Array.isArray(v.results) && Array.isArray(v.errors) &&
    (n === undefined || v.results.length === n);
}
