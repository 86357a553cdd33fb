/**
 * Audit hooks, as in the seed: one JSON event a line, appended to a file that
 * is never rewritten. Config values under keys that look secret are masked.
 *
 * @module
 */
import { open } from "node:fs/promises";
import { dirname } from "node:path";
import { syncDir, syncHandle } from "../../store/files.ts";
import type { PipelineHooks } from "./hooks.ts";

/** Options for {@linkcode AuditHooks.toFile}. */
export interface AuditFileOptions {
  /** Config keys whose values are written as "***". Default: /secret|password|passwd|token|api[-_]?key|credential/i. */
  secretKeys?: RegExp;
}

const SECRET_KEYS = /secret|password|passwd|token|api[-_]?key|credential/i;

function mask(value: unknown, secret: RegExp): unknown {
  if (Array.isArray(value)) return value.map((v) => mask(v, secret));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map((
        [k, v],
      ) => [k, secret.test(k) ? "***" : mask(v, secret)]),
    );
  }
  return value;
}

/**
 * Append-only JSONL audit trail.
 *
 * @example Each event is one JSON line
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readFile } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { AuditHooks } from "./audit_hooks.ts";
 * const path = join(await mkdtemp(join(tmpdir(), "cairn-audit-")), "audit.jsonl");
 * const hooks = AuditHooks.toFile(path);
 * await hooks.beforeComponent!({} as never, 0, 1, { runId: "r", pipelineName: "P", state: {} as never, componentName: "A" });
 * assert.equal(JSON.parse(await readFile(path, "utf8")).event, "component_start");
 * ```
 */
export const AuditHooks: {
  /**
   * Hooks that append one line per event to `path` (created if missing),
   * each synced to disk before the pipeline goes on.
   *
   * @param path The JSONL file.
   * @param options Which config keys to mask.
   * @returns The hooks.
   */
  toFile(path: string, options?: AuditFileOptions): PipelineHooks;
} = {
  toFile(path, options = {}) {
    const secret = options.secretKeys ?? SECRET_KEYS;
    // Appends are chained so lines keep the order of the events. Each line
    // is durable before the pipeline goes on (a power cut can tear only the
    // line being written), and the file's name once, at the first append.
    let tail: Promise<void> = Promise.resolve();
    let named = false;
    const appendDurably = async (line: string) => {
      const handle = await open(path, "a");
      try {
        await handle.write(line);
        await syncHandle(handle, path, true);
      } finally {
        await handle.close();
      }
      if (!named) {
        await syncDir(dirname(path));
        named = true;
      }
    };
    const append = (event: Record<string, unknown>) => {
      const line = JSON.stringify({ at: new Date().toISOString(), ...event }) +
        "\n";
      tail = tail.catch(() => {}).then(() => appendDurably(line));
      return tail;
    };
    return {
      beforePipeline: (config, info) =>
        append({
          event: "pipeline_start",
          run_id: info.runId,
          pipeline_name: info.pipelineName,
          resumed_from: info.state.resumedFrom ?? null,
          components: config.components.map((c) => ({
            instance_type: c.instanceType,
            instance_name: c.instanceName,
            instance_config: mask(c.instanceConfig, secret),
          })),
        }),
      beforeComponent: (_config, index, total, info) =>
        append({
          event: "component_start",
          run_id: info.runId,
          component_name: info.componentName,
          component_index: index,
          total_components: total,
        }),
      afterComponent: (_config, index, total, durationMs, info) =>
        append({
          event: "component_end",
          run_id: info.runId,
          component_name: info.componentName,
          component_index: index,
          total_components: total,
          duration_ms: durationMs,
          output_bytes: info.outputBytes ?? null,
        }),
      onComponentFailure: (_config, index, error, info) =>
        append({
          event: "component_error",
          run_id: info.runId,
          component_name: info.componentName,
          component_index: index,
          error_type: error instanceof Error ? error.name : typeof error,
          error_message: error instanceof Error ? error.message : String(error),
        }),
      afterPipeline: (_config, result) =>
        append({
          event: "pipeline_end",
          run_id: result.runId,
          pipeline_name: result.pipelineName,
          status: result.status,
          last_checkpointed_index: result.lastCheckpointedIndex,
          error_message: result.error ?? null,
        }),
    };
  },
};
