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
  type: "run";
  job: string;
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
  startedAt: string;
  host: string;
  pid: number;
  /** Run this one was started to replace, if any. */
  resumedFrom?: string;
  /** Labels for retention (`keepTags`) and listing. */
  tags?: string[];
}

/** A process (re)opened the run. */
export interface AttemptRecord {
  type: "attempt";
  at: string;
  host: string;
  pid: number;
  /** The expected number of steps, when the caller knows it. */
  total?: number;
}

/** A step finished; its output is durable in the chunks it names. */
export interface StepRecord {
  type: "step";
  key: string;
  output: OutputRef;
  durationMs: number;
  attempt: number;
  at: string;
  /** Memo key, when the step can be reused by other runs. */
  memo?: string;
  /** True when the output came from another run's memo. */
  memoHit?: boolean;
  /** Caller-provided statistics. */
  stats?: Record<string, unknown>;
}

/** A step attempt failed. */
export interface FailRecord {
  type: "fail";
  key: string;
  attempt: number;
  error: string;
  at: string;
  /** Whether the runtime retries it. */
  willRetry: boolean;
}

/** Final state of an attempt at the run. */
export interface EndRecord {
  type: "end";
  status: "completed" | "failed" | "interrupted";
  at: string;
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
