/**
 * Metrics hooks: per-component durations, runs, failures and output bytes,
 * and pipeline runs by status, kept in a prom-client registry of their own
 * and written (atomically, so a node exporter's textfile collector never
 * reads half a file) as the Prometheus text format and as JSON after each run.
 *
 * @module
 */
import { writeFileAtomically } from "../write_file_atomically.ts";
import type { PipelineHooks } from "./hooks.ts";

// prom-client loads on first use, so importing the pipeline family stays cheap.
let promClient: Promise<typeof import("npm:prom-client@^15.1.3")> | undefined;
function loadPromClient(): Promise<typeof import("npm:prom-client@^15.1.3")> {
  return promClient ??= import("npm:prom-client@^15.1.3");
}

/** Options for {@linkcode MetricsHooks}. */
export interface MetricsHooksOptions {
  /** Write the Prometheus text format here after each run (e.g. a node exporter textfile `.prom`). Default: none. */
  prometheusFile?: string;
  /** Write the metrics as JSON here after each run. Default: none. */
  jsonFile?: string;
  /** Prefix of every metric name. Default: "cairn_pipeline". */
  prefix?: string;
}

/** Hooks that also hand out what they measured. */
export interface MetricsHooksResult extends PipelineHooks {
  /** The metrics in the Prometheus text format. */
  prometheus(): Promise<string>;
  /** The metrics as JSON (prom-client's `getMetricsAsJSON`). */
  json(): Promise<unknown[]>;
}

/**
 * Metrics hooks backed by a registry of their own (never prom-client's global one).
 *
 * @param options Files to write and the name prefix.
 * @returns The hooks, with `prometheus()` and `json()`.
 *
 * @example A component's duration in the Prometheus text format
 * ```ts
 * import assert from "node:assert/strict";
 * import { MetricsHooks } from "./metrics_hooks.ts";
 * const metrics = MetricsHooks();
 * await metrics.afterComponent!({} as never, 0, 1, 1500, { runId: "r", pipelineName: "P", state: {} as never, componentName: "Load", outputBytes: 10 });
 * assert.match(await metrics.prometheus(), /cairn_pipeline_component_duration_seconds\{pipeline="P",component="Load"\} 1.5/);
 * ```
 */
export function MetricsHooks(
  options: MetricsHooksOptions = {},
): MetricsHooksResult {
  const prefix = options.prefix ?? "cairn_pipeline";
  const metrics = loadPromClient().then(({ Counter, Gauge, Registry }) => {
    const registry = new Registry();
    const labels = ["pipeline", "component"] as const;
    const duration = new Gauge({
      name: `${prefix}_component_duration_seconds`,
      help: "Duration of the component's latest run",
      labelNames: labels,
      registers: [registry],
    });
    const durationTotal = new Counter({
      name: `${prefix}_component_duration_seconds_total`,
      help: "Total time spent in the component",
      labelNames: labels,
      registers: [registry],
    });
    const componentRuns = new Counter({
      name: `${prefix}_component_runs_total`,
      help: "Component runs that finished",
      labelNames: labels,
      registers: [registry],
    });
    const failures = new Counter({
      name: `${prefix}_component_failures_total`,
      help: "Component runs that failed",
      labelNames: labels,
      registers: [registry],
    });
    const outputBytes = new Gauge({
      name: `${prefix}_component_output_bytes`,
      help: "Bytes of the component's latest stored output",
      labelNames: labels,
      registers: [registry],
    });
    const runs = new Counter({
      name: `${prefix}_runs_total`,
      help: "Pipeline runs by final status",
      labelNames: ["pipeline", "status"] as const,
      registers: [registry],
    });
    const lastRun = new Gauge({
      name: `${prefix}_last_run_timestamp_seconds`,
      help: "When the pipeline's latest run ended",
      labelNames: ["pipeline", "status"] as const,
      registers: [registry],
    });
    return {
      registry,
      duration,
      durationTotal,
      componentRuns,
      failures,
      outputBytes,
      runs,
      lastRun,
    };
  });
  // A failed load surfaces in the hook that awaits it, not as an unhandled rejection.
  metrics.catch(() => {});
  const write = async () => {
    const { registry } = await metrics;
    if (options.prometheusFile !== undefined) {
      const text = await registry.metrics();
      await writeFileAtomically(options.prometheusFile, (chunk) => chunk(text));
    }
    if (options.jsonFile !== undefined) {
      const text = JSON.stringify(await registry.getMetricsAsJSON(), null, 2);
      await writeFileAtomically(
        options.jsonFile,
        (chunk) => chunk(text + "\n"),
      );
    }
  };
  return {
    afterComponent: async (_config, _index, _total, durationMs, info) => {
      const m = await metrics;
      const l = {
        pipeline: info.pipelineName,
        component: info.componentName ?? "",
      };
      m.duration.set(l, durationMs / 1000);
      m.durationTotal.inc(l, durationMs / 1000);
      m.componentRuns.inc(l);
      if (info.outputBytes !== undefined) {
        m.outputBytes.set(l, info.outputBytes);
      }
    },
    onComponentFailure: async (_config, _index, _error, info) => {
      (await metrics).failures.inc({
        pipeline: info.pipelineName,
        component: info.componentName ?? "",
      });
    },
    afterPipeline: async (_config, result) => {
      const m = await metrics;
      m.runs.inc({ pipeline: result.pipelineName, status: result.status });
      m.lastRun.reset();
      m.lastRun.set(
        { pipeline: result.pipelineName, status: result.status },
        Date.now() / 1000,
      );
      await write();
    },
    prometheus: async () => (await metrics).registry.metrics(),
    json: async () =>
      (await metrics).registry.getMetricsAsJSON() as Promise<unknown[]>,
  };
}
