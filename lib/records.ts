/**
 * The records a run's manifest log holds. A run is a replay of these; see
 * `docs/format.md` for their fields.
 *
 * @module
 */
import type { ChunkRef } from "../store/chunk_store.ts";

/** Where a step's output lives: one chunk, or several pieces of one encoding, or a stream of items. */
export type OutputRef =
  | { kind: "value"; chunks: ChunkRef[] }
  | { kind: "stream"; items: ChunkRef[][] };

/** First record of every run. */
export interface RunRecord {
  /** Record type. */
  type: "run";
  /** The job name. */
  job: string;
  /** The run id. */
  run: string;
  /** The step family or tool that made the run ("job", "map", "knn", …). */
  kind: string;
  /** Fingerprint of `config`. */
  configHash: string;
  /** The config the run was opened with (small, CBOR-encodable). */
  config: unknown;
  /** The code version the run was opened with. */
  version: string;
  /** Namespace for cross-run step memo hits, if the run shares one. */
  memo?: string;
  /** Fingerprint of the code the caller declared, to warn on edits without a version bump. */
  codeHash?: string;
  /** When the run was created (ISO time). */
  startedAt: string;
  /** The host that created it. */
  host: string;
  /** The process that created it. */
  pid: number;
  /** Run this one was started to replace, if any. */
  resumedFrom?: string;
  /** Labels for retention (`keepTags`) and listing. */
  tags?: string[];
}

/** A process (re)opened the run. */
export interface AttemptRecord {
  /** Record type. */
  type: "attempt";
  /** When the process opened the run (ISO time). */
  at: string;
  /** The host of that process. */
  host: string;
  /** Its process id. */
  pid: number;
  /** The expected number of steps, when the caller knows it. */
  total?: number;
}

/** A step finished; its output is durable in the chunks it names. */
export interface StepRecord {
  /** Record type. */
  type: "step";
  /** The step key. */
  key: string;
  /** Where the output is stored. */
  output: OutputRef;
  /** How long the step took, in ms. */
  durationMs: number;
  /** The attempt that succeeded (1 for the first). */
  attempt: number;
  /** When it finished (ISO time). */
  at: string;
  /** Memo key, when the step can be reused by other runs. */
  memo?: string;
  /** True when the output came from another run's memo. */
  memoHit?: boolean;
  /** Caller-provided statistics. */
  stats?: Record<string, unknown>;
  /** Per-item data of a step that batches items (map batches). */
  items?: StepItems;
}

/** Per-item data of a batch step. */
export interface StepItems {
  /**
   * Item keys in batch order, a fixed number of bytes each (map: 16, a BLAKE3
   * prefix of the item's arguments; all zero for an item that must not be reused).
   */
  keys: Uint8Array;
}

/** A step attempt failed. */
export interface FailRecord {
  /** Record type. */
  type: "fail";
  /** The step key. */
  key: string;
  /** The attempt that failed (1 for the first). */
  attempt: number;
  /** The error message. */
  error: string;
  /** When it failed (ISO time). */
  at: string;
  /** Whether the runtime retries it. */
  willRetry: boolean;
}

/** Final state of an attempt at the run. */
export interface EndRecord {
  /** Record type. */
  type: "end";
  /** How the attempt ended. */
  status: "completed" | "failed" | "interrupted";
  /** When it ended (ISO time). */
  at: string;
  /** Why it failed or stopped, if it did. */
  error?: string;
  /** Caller-provided summary (a completed run's result description). */
  summary?: unknown;
}

/** Any manifest record. */
export type ManifestRecord =
  | RunRecord
  | AttemptRecord
  | StepRecord
  | FailRecord
  | EndRecord;

/**
 * Every chunk an output references.
 *
 * @param output A step output reference.
 * @returns Its chunk references.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { chunksOf } from "./records.ts";
 * const ref = { hash: "a".repeat(64), size: 1 };
 * assert.ok(chunksOf({ kind: "stream", items: [[ref], [ref]] }).length === 2);
 * ```
 */
export function chunksOf(output: OutputRef): ChunkRef[] {
  return output.kind === "value" ? output.chunks : output.items.flat();
}
