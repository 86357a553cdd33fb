/**
 * Checkpointing as a hook, as in the seed: `CheckpointHooks(store)` mirrors
 * each run's record into any `CheckpointStore` (Redis, a database, …). cairn's
 * own run logs are always written; a custom store gets a copy it can query.
 *
 * @module
 */
import type { PipelineHooks } from "./hooks.ts";
import type { CheckpointState } from "./state.ts";

/** Where checkpoint states are kept; implement it to plug in your own backend. */
export interface CheckpointStore {
  /** Store (or replace) a run's state. */
  save(state: CheckpointState): void | Promise<void>;
  /** The newest failed run of a pipeline, if any. */
  loadLatest(
    pipelineName: string,
  ): CheckpointState | undefined | Promise<CheckpointState | undefined>;
  /** A run's state by id. */
  loadByRunId(
    runId: string,
  ): CheckpointState | undefined | Promise<CheckpointState | undefined>;
  /** The failed runs of a pipeline, newest first. */
  listResumable(
    pipelineName: string,
  ): CheckpointState[] | Promise<CheckpointState[]>;
  /** Forget a run's state. */
  delete(runId: string): void | Promise<void>;
}

/**
 * Hooks that save the run's state to `store` when the run starts
 * (`lastCheckpointedIndex` -1), after each component, on a failure and at the
 * end; a completed run with `cleanup-on-success` is deleted instead.
 *
 * @param store The checkpoint store.
 * @returns The hooks.
 *
 * @example The state saved at the start has index -1
 * ```ts
 * import assert from "node:assert/strict";
 * import { CheckpointHooks, createMemoryCheckpointStore } from "./checkpoint_hooks.ts";
 * const store = createMemoryCheckpointStore();
 * const hooks = CheckpointHooks(store);
 * const state = { runId: "r1", pipelineName: "P", job: "j", startedAt: "", completedComponents: [], lastCheckpointedIndex: -1, totalComponents: 2, status: "running" as const, errors: [], checkpoint: true, cleanedUp: false };
 * await hooks.beforePipeline!({} as never, { runId: "r1", pipelineName: "P", state });
 * assert.equal((await store.loadByRunId("r1"))?.lastCheckpointedIndex, -1);
 * ```
 */
export function CheckpointHooks(store: CheckpointStore): PipelineHooks {
  return {
    beforePipeline: async (_config, info) => await store.save(info.state),
    afterComponent: async (_c, _i, _t, _d, info) =>
      await store.save(info.state),
    onComponentFailure: async (_config, index, error, info) =>
      await store.save({
        ...info.state,
        status: "failed",
        error: error instanceof Error ? error.message : String(error),
        failedAt: {
          index,
          name: info.componentName ?? String(index),
          label: `component ${index + 1}/${info.state.totalComponents}`,
        },
      }),
    afterPipeline: async (config, result) => {
      if (
        result.status === "completed" && config.checkpoint.cleanupOnSuccess
      ) await store.delete(result.runId);
      else await store.save(result);
    },
  };
}

/**
 * A `CheckpointStore` in memory: for tests, and a model for your own.
 *
 * @returns The store.
 *
 * @example An empty store has nothing to resume
 * ```ts
 * import assert from "node:assert/strict";
 * import { createMemoryCheckpointStore } from "./checkpoint_hooks.ts";
 * const store = createMemoryCheckpointStore();
 * assert.deepEqual(await store.listResumable("P"), []);
 * ```
 */
export function createMemoryCheckpointStore(): CheckpointStore {
  const states = new Map<string, CheckpointState>();
  const failed = (name: string) =>
    [...states.values()].filter((s) =>
      s.pipelineName === name && s.status === "failed"
    ).sort((a, b) => b.runId.localeCompare(a.runId));
  return {
    save: (state) => void states.set(state.runId, structuredClone(state)),
    loadLatest: (name) => failed(name)[0],
    loadByRunId: (runId) => states.get(runId),
    listResumable: (name) => failed(name),
    delete: (runId) => void states.delete(runId),
  };
}
