/**
 * Cross-run memo lookups: a step recorded with a memo key in one run can be
 * reused by any run that shares the memo namespace, as long as its chunks are
 * still stored. The index is a replay of those runs' logs.
 *
 * @module
 */
import type { Store } from "../store/store.ts";
import type { StepRecord } from "./records.ts";
import { readRunHeader, replayRun } from "./replay.ts";

interface MemoIndex {
  /** Runs already read, so new runs can be added later. */
  runs: Set<string>;
  entries: Map<string, StepRecord>;
}

const indexes = new WeakMap<Store, Map<string, MemoIndex>>();

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
  let index = byNamespace.get(namespace);
  if (index === undefined) {
    byNamespace.set(namespace, index = { runs: new Set(), entries: new Map() });
  }
  for (const job of await store.listJobs()) {
    for (const run of await store.listRuns(job)) {
      const id = `${job}/${run}`;
      if (index.runs.has(id)) continue;
      // The header says which namespace a run is in: other runs cost one record, never a full replay.
      const header = await readRunHeader(store, job, run).catch(() =>
        undefined
      );
      if (header?.memo !== namespace) {
        if (header !== undefined) index.runs.add(id);
        continue;
      }
      const state = await replayRun(store, job, run).catch(() => undefined);
      if (state === undefined) continue;
      for (const step of state.steps.values()) {
        if (step.memo !== undefined) index.entries.set(step.memo, step);
      }
      // A run still being written may gain entries: read it again next time.
      if (state.status !== "running") index.runs.add(id);
    }
  }
  return index.entries;
}
