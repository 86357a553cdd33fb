/**
 * Pipeline lifecycle hooks, as in the seed: every method optional, composed
 * in order, a failing hook isolated from the others.
 *
 * @module
 */
import type { PipelineConfig } from "./config.ts";
import type { PipelineRun } from "./state.ts";

/** What every hook gets last: the run and its state so far. */
export interface HookInfo {
  /** The run id. */
  runId: string;
  /** The pipeline's name. */
  pipelineName: string;
  /** The run's record so far (a snapshot). */
  state: PipelineRun;
  /** The component's `instance-name` (component hooks only). */
  componentName?: string;
  /** Bytes of the component's stored output (`afterComponent` only). */
  outputBytes?: number;
}

/** Lifecycle hooks; every method is optional and may be async. */
export interface PipelineHooks {
  /** Before the first component runs. */
  beforePipeline?(config: PipelineConfig, info: HookInfo): void | Promise<void>;
  /** After the run ended, completed or failed. */
  afterPipeline?(
    config: PipelineConfig,
    result: PipelineRun,
    info: HookInfo,
  ): void | Promise<void>;
  /** Before a component runs (not called for components reused from a failed run). */
  beforeComponent?(
    config: PipelineConfig,
    index: number,
    total: number,
    info: HookInfo,
  ): void | Promise<void>;
  /** After a component's output is stored. */
  afterComponent?(
    config: PipelineConfig,
    index: number,
    total: number,
    durationMs: number,
    info: HookInfo,
  ): void | Promise<void>;
  /**
   * A component was not run because its stored output was reused (a resumed
   * run); cairn's addition to the seed's hooks.
   */
  onComponentReused?(
    config: PipelineConfig,
    index: number,
    total: number,
    info: HookInfo,
  ): void | Promise<void>;
  /** A component threw. */
  onComponentFailure?(
    config: PipelineConfig,
    index: number,
    error: unknown,
    info: HookInfo,
  ): void | Promise<void>;
}

const METHODS = [
  "beforePipeline",
  "afterPipeline",
  "beforeComponent",
  "afterComponent",
  "onComponentReused",
  "onComponentFailure",
] as const;

/**
 * Combine hooks: each method calls the hooks' methods in order. A hook that
 * throws does not stop the others; once all ran, the errors are thrown
 * together as an `AggregateError` (the runner reports it as a warning).
 *
 * @param hooks The hooks, in calling order.
 * @returns One set of hooks.
 *
 * @example A failing hook does not stop the next one
 * ```ts
 * import assert from "node:assert/strict";
 * import { composeHooks } from "./hooks.ts";
 * const calls: string[] = [];
 * const hooks = composeHooks(
 *   { beforePipeline: () => { throw new Error("broken"); } },
 *   { beforePipeline: () => { calls.push("second"); } },
 * );
 * await assert.rejects(async () => await hooks.beforePipeline!({} as never, {} as never), AggregateError);
 * assert.deepEqual(calls, ["second"]);
 * ```
 */
export function composeHooks(...hooks: PipelineHooks[]): PipelineHooks {
  const composed: PipelineHooks = {};
  for (const method of METHODS) {
    if (!hooks.some((h) => typeof h[method] === "function")) continue;
    composed[method] = async (...args: unknown[]) => {
      const errors: unknown[] = [];
      for (const hook of hooks) {
        const fn = hook[method] as ((...a: unknown[]) => unknown) | undefined;
        if (typeof fn !== "function") continue;
        try {
          await fn.apply(hook, args);
        } catch (error) {
          errors.push(error);
        }
      }
      if (errors.length > 0) {
        throw new AggregateError(
          errors,
          `${errors.length} ${method} hook(s) failed: ${
            errors.map((e) => e instanceof Error ? e.message : String(e)).join(
              "; ",
            )
          }`,
        );
      }
    };
  }
  return composed;
}
