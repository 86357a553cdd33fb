/**
 * Logging hooks, as in the seed: JSON lines with its event names and fields,
 * or readable lines. The library never prints: pass the writer.
 *
 * @module
 */
import type { PipelineHooks } from "./hooks.ts";

/** Receives one log line (without a trailing newline). */
export type LineWriter = (line: string) => void;

function errorType(error: unknown): string {
  return error instanceof Error ? error.name : typeof error;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Structured (JSON lines) and human-readable logging hooks.
 *
 * @example Structured lines parse as JSON
 * ```ts
 * import assert from "node:assert/strict";
 * import { LoggingHooks } from "./logging_hooks.ts";
 * const lines: string[] = [];
 * const hooks = LoggingHooks.structured((line) => lines.push(line));
 * await hooks.beforeComponent!({ pipelineName: "P" } as never, 0, 2, { runId: "r", pipelineName: "P", state: {} as never, componentName: "Load" });
 * assert.equal(JSON.parse(lines[0]!).event, "component_start");
 * ```
 */
export const LoggingHooks: {
  /**
   * One JSON object per line: `pipeline_start`, `component_start`,
   * `component_end`, `component_error`, `pipeline_end`, with `run_id`,
   * `pipeline_name`, `component_name`, `component_index`,
   * `total_components`, `duration_ms`, `status` and `error_type`.
   *
   * @param write Receives each line.
   * @returns The hooks.
   */
  structured(write: LineWriter): PipelineHooks;
  /**
   * Readable lines such as `component 2/3 "Clean" finished in 12 ms`.
   *
   * @param write Receives each line.
   * @returns The hooks.
   */
  humanReadable(write: LineWriter): PipelineHooks;
} = {
  structured(write) {
    const emit = (fields: Record<string, unknown>) =>
      write(JSON.stringify({ timestamp: new Date().toISOString(), ...fields }));
    const started = new Map<string, number>();
    return {
      beforePipeline: (_config, info) => {
        started.set(info.runId, Date.now());
        emit({
          event: "pipeline_start",
          run_id: info.runId,
          pipeline_name: info.pipelineName,
          total_components: info.state.totalComponents,
          ...(info.state.resumedFrom === undefined
            ? {}
            : { resumed_from: info.state.resumedFrom }),
        });
      },
      beforeComponent: (_config, index, total, info) =>
        emit({
          event: "component_start",
          run_id: info.runId,
          pipeline_name: info.pipelineName,
          component_name: info.componentName,
          component_index: index,
          total_components: total,
        }),
      afterComponent: (_config, index, total, durationMs, info) =>
        emit({
          event: "component_end",
          run_id: info.runId,
          pipeline_name: info.pipelineName,
          component_name: info.componentName,
          component_index: index,
          total_components: total,
          duration_ms: durationMs,
          status: "success",
          output_bytes: info.outputBytes,
        }),
      onComponentFailure: (_config, index, error, info) =>
        emit({
          event: "component_error",
          run_id: info.runId,
          pipeline_name: info.pipelineName,
          component_name: info.componentName,
          component_index: index,
          total_components: info.state.totalComponents,
          status: "failed",
          error_type: errorType(error),
          error_message: errorText(error),
        }),
      afterPipeline: (_config, result, info) => {
        const start = started.get(info.runId);
        started.delete(info.runId);
        emit({
          event: "pipeline_end",
          run_id: result.runId,
          pipeline_name: result.pipelineName,
          total_components: result.totalComponents,
          status: result.status,
          ...(start === undefined ? {} : { duration_ms: Date.now() - start }),
          ...(result.error === undefined
            ? {}
            : { error_message: result.error }),
        });
      },
    };
  },
  humanReadable(write) {
    const started = new Map<string, number>();
    return {
      beforePipeline: (_config, info) => {
        started.set(info.runId, Date.now());
        write(
          `Pipeline "${info.pipelineName}" started: run ${info.runId}, ${info.state.totalComponents} components${
            info.state.resumedFrom === undefined
              ? ""
              : `, resuming run ${info.state.resumedFrom}`
          }`,
        );
      },
      beforeComponent: (_config, index, total, info) =>
        write(
          `component ${index + 1}/${total} "${info.componentName}" started`,
        ),
      afterComponent: (_config, index, total, durationMs, info) =>
        write(
          `component ${
            index + 1
          }/${total} "${info.componentName}" finished in ${
            seconds(durationMs)
          }`,
        ),
      onComponentReused: (_config, index, total, info) =>
        write(
          `component ${
            index + 1
          }/${total} "${info.componentName}" reused its stored output`,
        ),
      onComponentFailure: (_config, index, error, info) =>
        write(
          `component ${
            index + 1
          }/${info.state.totalComponents} "${info.componentName}" failed: ${
            errorType(error)
          }: ${errorText(error)}`,
        ),
      afterPipeline: (config, result, info) => {
        const start = started.get(info.runId);
        started.delete(info.runId);
        const took = start === undefined
          ? ""
          : ` in ${seconds(Date.now() - start)}`;
        write(
          result.status === "completed"
            ? `Pipeline "${result.pipelineName}" completed${took}: run ${result.runId}`
            : `Pipeline "${result.pipelineName}" failed${took}${
              result.failedAt === undefined
                ? ""
                : ` at ${result.failedAt.label}`
            }: run ${result.runId}; resume it with \`cairn pipeline resume ${
              config.file ?? "CONFIG"
            } --run ${result.runId}\``,
        );
      },
    };
  },
};
