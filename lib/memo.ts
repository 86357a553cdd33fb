/**
 * Cross-run memo lookups: a step recorded with a memo key in one run can be
 * reused by any run that shares the memo namespace, as long as its chunks are
 * still stored. The index is built from those runs' logs and kept, per
 * namespace, both in the process and (for a directory store) in
 * `cache/memo/<hash>.cbor` under the store, so a process opening a store with
 * thousands of runs reads only the runs it has not seen before.
 *
 * The file is a cache: deleting it costs one rescan, and an entry whose run
 * was forgotten is harmless, because a hit reads and re-hashes its chunks and
 * recomputes when they are gone.
 *
 * @module
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeValue, encodeValue } from "../store/cbor.ts";
import { blake3HexSync } from "../store/hash.ts";
import type { Store } from "../store/store.ts";
import type { StepRecord } from "./records.ts";
import { readRunHeader, replayRun } from "./replay.ts";
import { writeFileAtomically } from "./write_file_atomically.ts";

interface MemoIndex {
  /** Finished runs already read (`job/run`), in or out of the namespace. */
  runs: Set<string>;
  entries: Map<string, StepRecord>;
}

/** The cache file's content. */
interface MemoCacheFile {
  format: 1;
  namespace: string;
  runs: string[];
  entries: [string, StepRecord][];
}

const indexes = new WeakMap<Store, Map<string, MemoIndex>>();

function cachePath(store: Store, namespace: string): string | undefined {
  // Only a directory store has a place for the file (not memory:, not s3://).
  if (/^(memory:|[a-z][a-z0-9+.-]*:\/\/)/i.test(store.location)) {
    return undefined;
  }
  const name = blake3HexSync(new TextEncoder().encode(namespace)).slice(0, 32);
  return join(store.location, "cache", "memo", `${name}.cbor`);
}

async function loadCache(
  path: string | undefined,
  namespace: string,
): Promise<MemoIndex | undefined> {
  if (path === undefined) return undefined;
  try {
    const file = decodeValue<MemoCacheFile>(await readFile(path));
    if (file.format !== 1 || file.namespace !== namespace) return undefined;
    return { runs: new Set(file.runs), entries: new Map(file.entries) };
  } catch {
    // Missing or unreadable: rebuild it from the logs.
    return undefined;
  }
}

async function saveCache(
  path: string,
  namespace: string,
  index: MemoIndex,
): Promise<void> {
  const file: MemoCacheFile = {
    format: 1,
    namespace,
    runs: [...index.runs],
    entries: [...index.entries],
  };
  try {
    await mkdir(join(path, ".."), { recursive: true });
    const bytes = encodeValue(file);
    await writeFileAtomically(path, (chunk) => chunk(bytes));
  } catch {
    // A cache that cannot be written only costs a rescan next time.
  }
}

/**
 * Refresh and return the memo index of a namespace.
 *
 * @param store The store.
 * @param namespace The memo namespace.
 * @returns Memo key to step record.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { memoIndex } from "./memo.ts";
 * import { createMemoryStore } from "../store/memory.ts";
 * assert.ok((await memoIndex(createMemoryStore(), "ns")).size === 0);
 * ```
 */
export async function memoIndex(
  store: Store,
  namespace: string,
): Promise<Map<string, StepRecord>> {
  let byNamespace = indexes.get(store);
  if (byNamespace === undefined) indexes.set(store, byNamespace = new Map());
  const path = cachePath(store, namespace);
  let index = byNamespace.get(namespace);
  if (index === undefined) {
    index = await loadCache(path, namespace) ??
      { runs: new Set(), entries: new Map() };
    byNamespace.set(namespace, index);
  }
  let learned = false;
  for (const job of await store.listJobs()) {
    for (const run of await store.listRuns(job)) {
      const id = `${job}/${run}`;
      if (index.runs.has(id)) continue;
      // The header says which namespace a run is in: other runs cost one record, never a full replay.
      const header = await readRunHeader(store, job, run).catch(() =>
        undefined
      );
      if (header?.memo !== namespace) {
        if (header !== undefined) {
          index.runs.add(id);
          learned = true;
        }
        continue;
      }
      const state = await replayRun(store, job, run).catch(() => undefined);
      if (state === undefined) continue;
      for (const step of state.steps.values()) {
        if (step.memo !== undefined) index.entries.set(step.memo, step);
      }
      // A run still being written may gain entries: read it again next time.
      if (state.status !== "running") {
        index.runs.add(id);
        learned = true;
      }
    }
  }
  if (learned && path !== undefined) await saveCache(path, namespace, index);
  return index.entries;
}
