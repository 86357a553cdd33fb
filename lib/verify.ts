/**
 * Checking a store the way restic's `check` does: every manifest replays, and
 * every chunk a run references exists with the right size; optionally every
 * (or a subset of) referenced chunk is re-hashed.
 *
 * @module
 */
import { CorruptChunkError, MissingChunkError } from "../store/chunk_store.ts";
import type { Store } from "../store/store.ts";
import { replayRun, runChunks } from "./replay.ts";

/** Options for {@linkcode verifyStore}. */
export interface VerifyOptions {
  /** Re-hash every referenced chunk. Default: false. */
  readData?: boolean;
  /** Re-hash a subset: `n/t` (group n of t, by hash) or `x%` (a random sample). Default: none. */
  readDataSubset?: string;
  /** Only these jobs. Default: every job. */
  jobs?: string[];
  /** Called after each chunk is checked. */
  onProgress?: (checked: number, total: number) => void;
}

/** One problem found. */
export interface VerifyProblem {
  /** What is wrong. */
  kind:
    | "unreadable-log"
    | "missing-chunk"
    | "size-mismatch"
    | "corrupt-chunk"
    | "foreign-entry";
  /** The job of the run affected. */
  job: string;
  /** The run affected. */
  run: string;
  /** The damaged chunk, for chunk problems. */
  hash?: string;
  /** What was found, for people. */
  message: string;
}

/** What {@linkcode verifyStore} found. */
export interface VerifyReport {
  /** Jobs checked. */
  jobs: number;
  /** Runs checked. */
  runs: number;
  /** Distinct referenced chunks. */
  chunks: number;
  /** Chunks whose bytes were re-hashed. */
  chunksRead: number;
  /** Bytes re-hashed. */
  bytesRead: number;
  /** Every problem found (empty when the store is healthy). */
  problems: VerifyProblem[];
  /** Things worth knowing that are not damage (e.g. a torn tail a writer will repair). */
  notes: string[];
}

/**
 * Parse a `--read-data-subset` value into a chunk filter.
 *
 * @param subset `n/t` or `x%`.
 * @returns A predicate over chunk hashes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { subsetFilter } from "./verify.ts";
 * const first = subsetFilter("1/2");
 * const second = subsetFilter("2/2");
 * const h = "ab".repeat(32);
 * assert.ok(first(h) !== second(h));
 * ```
 */
export function subsetFilter(subset: string): (hash: string) => boolean {
  const group = /^(\d+)\/(\d+)$/.exec(subset);
  if (group) {
    const n = Number(group[1]);
    const t = Number(group[2]);
    if (t < 1 || n < 1 || n > t) {
      throw new RangeError(
        `Cannot use readDataSubset "${subset}": expected n/t with 1 <= n <= t`,
      );
    }
    return (hash) => parseInt(hash.slice(0, 8), 16) % t === n - 1;
  }
  const percent = /^(\d+(?:\.\d+)?)%$/.exec(subset);
  if (percent) {
    const p = Number(percent[1]);
    if (p <= 0 || p > 100) {
      throw new RangeError(
        `Cannot use readDataSubset "${subset}": the percentage must be in (0, 100]`,
      );
    }
    return () => Math.random() * 100 < p;
  }
  throw new SyntaxError(
    `Cannot parse readDataSubset "${subset}": expected "n/t" (e.g. 1/5) or "x%" (e.g. 10%)`,
  );
}

/**
 * Verify a store. Needs no lock; a run being written may show a torn tail, which is noted, not counted.
 *
 * @param store The store.
 * @param options What to check.
 * @returns The report; `problems` is empty for a healthy store.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { verifyStore } from "./verify.ts";
 * import { runJob } from "./job.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * const store = createMemoryStore();
 * await runJob("v", { store }, (job) => job.step("a", () => [1, 2, 3]));
 * const report = await verifyStore(store, { readData: true });
 * assert.ok(report.problems.length === 0 && report.chunksRead === 1);
 * ```
 */
export async function verifyStore(
  store: Store,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const report: VerifyReport = {
    jobs: 0,
    runs: 0,
    chunks: 0,
    chunksRead: 0,
    bytesRead: 0,
    problems: [],
    notes: [],
  };
  const pick = options.readData
    ? () => true
    : options.readDataSubset
    ? subsetFilter(options.readDataSubset)
    : () => false;
  // Each chunk is checked once; every run that references it is named.
  const owners = new Map<string, { size: number; runs: [string, string][] }>();
  const known = await store.listJobs();
  for (const job of options.jobs ?? []) {
    if (!known.includes(job)) {
      throw new RangeError(
        `Cannot verify job "${job}": the store at "${store.location}" has no such job`,
      );
    }
  }
  for (const job of options.jobs ?? known) {
    report.jobs++;
    for (const run of await store.listRuns(job)) {
      report.runs++;
      try {
        const state = await replayRun(store, job, run, {
          verifyChain: true,
        });
        if (state.tornTail) {
          report.notes.push(
            `Run "${job}/${run}" has a torn tail (${state.tornTail.reason}); the next writer truncates it`,
          );
        }
        for (const ref of runChunks(state).values()) {
          const entry = owners.get(ref.hash) ?? { size: ref.size, runs: [] };
          entry.runs.push([job, run]);
          owners.set(ref.hash, entry);
        }
      } catch (error) {
        report.problems.push({
          kind: "unreadable-log",
          job,
          run,
          message: (error as Error).message,
        });
      }
    }
  }
  // Links and devices inside the store: cairn never follows or reads them.
  for (const message of (await store.listForeignEntries?.()) ?? []) {
    report.problems.push({ kind: "foreign-entry", job: "", run: "", message });
  }
  report.chunks = owners.size;
  let checked = 0;
  for (const [hash, { size, runs }] of owners) {
    const problem = await checkChunk(store, hash, size, pick(hash));
    if (problem === "read") {
      report.chunksRead++;
      report.bytesRead += size;
    } else if (problem !== undefined) {
      if (problem.kind === "corrupt-chunk") report.chunksRead++;
      for (const [job, run] of runs) {
        report.problems.push({ ...problem, job, run, hash });
      }
    }
    options.onProgress?.(++checked, owners.size);
  }
  return report;
}

async function checkChunk(
  store: Store,
  hash: string,
  size: number,
  read: boolean,
): Promise<Pick<VerifyProblem, "kind" | "message"> | "read" | undefined> {
  let stat;
  try {
    stat = await store.chunks.stat(hash);
  } catch (error) {
    // A link or device where the chunk belongs: unusable, like a corrupt chunk.
    return { kind: "corrupt-chunk", message: (error as Error).message };
  }
  if (stat === undefined) {
    return { kind: "missing-chunk", message: `chunk "${hash}" is missing` };
  }
  if (stat.size !== size) {
    return {
      kind: "size-mismatch",
      message: `chunk "${hash}" has ${stat.size} bytes, the log says ${size}`,
    };
  }
  if (!read) return undefined;
  try {
    await store.chunks.get(hash, { size });
    return "read";
  } catch (error) {
    if (error instanceof CorruptChunkError) {
      return {
        kind: "corrupt-chunk",
        message: `chunk "${hash}" hashes to "${error.actual}"`,
      };
    }
    if (error instanceof MissingChunkError) {
      return { kind: "missing-chunk", message: `chunk "${hash}" is missing` };
    }
    throw error;
  }
}
