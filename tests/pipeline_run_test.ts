import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { collectGarbage } from "../lib/gc.ts";
import { openStore } from "../lib/open_store.ts";
import { verifyStore } from "../lib/verify.ts";
import {
  AuditHooks,
  CheckpointHooks,
  composeHooks,
  createMemoryCheckpointStore,
  listResumable,
  LoggingHooks,
  MetricsHooks,
  parsePipelineConfig,
  type PipelineConfig,
  PipelineConfigChangedError,
  type PipelineHooks,
  pipelineJobName,
  pipelineOutput,
  registerComponent,
  resumePipeline,
  runPipeline,
} from "../lib/pipeline/mod.ts";
import { tempDir } from "./temp.ts";

let unique = 0;

/** A test pipeline of registered components: source → scale → sum, counting real runs. */
function counted(options: {
  checkpoint?: Record<string, unknown>;
  failFast?: boolean;
  factor?: number;
  name?: string;
} = {}) {
  const id = `t${++unique}`;
  const calls: string[] = [];
  const failing = new Set<string>();
  // deno-lint-ignore no-explicit-any
  const make = (label: string, fn: (x: any) => unknown) => () => ({
    run: (x: unknown) => {
      if (failing.has(label)) throw new Error(`${label} is broken`);
      calls.push(label);
      return fn(x);
    },
  });
  registerComponent(`${id}-source`, make("source", () => [1, 2, 3, 4]));
  registerComponent(
    `${id}-scale`,
    (config: { factor: number }) =>
      make(
        "scale",
        (xs: number[] | undefined) => (xs ?? []).map((x) => x * config.factor),
      )(),
  );
  registerComponent(
    `${id}-sum`,
    make(
      "sum",
      (xs: number[] | undefined) => (xs ?? []).reduce((a, b) => a + b, 0),
    ),
  );
  const configFor = (factor = options.factor ?? 10): PipelineConfig =>
    parsePipelineConfig({
      pipeline: {
        "pipeline-name": options.name ?? `Pipeline ${id}`,
        "fail-fast": options.failFast ?? true,
        checkpoint: { enabled: true, ...options.checkpoint },
        "pipeline-components": [
          { "instance-type": `${id}-source`, "instance-name": "Source" },
          {
            "instance-type": `${id}-scale`,
            "instance-name": "Scale",
            "instance-config": { factor },
          },
          { "instance-type": `${id}-sum`, "instance-name": "Sum" },
        ],
      },
    });
  return { calls, failing, config: configFor(), configFor };
}

test("CheckpointHooks() index starts at -1 and completed components accumulate", async () => {
  const p = counted({ checkpoint: { "cleanup-on-success": false } });
  const checkpoints = createMemoryCheckpointStore();
  const seen: { index: number; completed: string[] }[] = [];
  const spy: PipelineHooks = {
    beforePipeline: async (_c, info) => {
      const s = await checkpoints.loadByRunId(info.runId);
      seen.push({ index: s!.lastCheckpointedIndex, completed: [] });
    },
    afterComponent: async (_c, _i, _t, _d, info) => {
      const s = await checkpoints.loadByRunId(info.runId);
      seen.push({
        index: s!.lastCheckpointedIndex,
        completed: s!.completedComponents.map((c) => c.name),
      });
    },
  };
  const run = await runPipeline(p.config, {
    store: "memory:pipeline-seed-1",
    hooks: composeHooks(CheckpointHooks(checkpoints), spy),
  });
  assert.equal(run.status, "completed");
  assert.deepEqual(seen, [
    { index: -1, completed: [] },
    { index: 0, completed: ["Source"] },
    { index: 1, completed: ["Source", "Scale"] },
    { index: 2, completed: ["Source", "Scale", "Sum"] },
  ]);
  assert.equal((await checkpoints.loadByRunId(run.runId))?.status, "completed");
});

test("CheckpointHooks() a failure records the failed index, and runPipeline() the run's record", async () => {
  const p = counted();
  p.failing.add("scale");
  const checkpoints = createMemoryCheckpointStore();
  const run = await runPipeline(p.config, {
    store: "memory:pipeline-seed-2",
    hooks: CheckpointHooks(checkpoints),
  });
  assert.equal(run.status, "failed");
  assert.equal(run.lastCheckpointedIndex, 0);
  assert.deepEqual(run.failedAt, {
    index: 1,
    name: "Scale",
    label: "component 2/3",
  });
  assert.match(run.error!, /scale is broken/);
  const saved = await checkpoints.loadLatest(run.pipelineName);
  assert.equal(saved?.runId, run.runId);
  assert.equal(saved?.status, "failed");
  assert.equal(saved?.failedAt?.index, 1);
  assert.deepEqual(
    (await checkpoints.listResumable(run.pipelineName)).map((s) => s.runId),
    [run.runId],
  );
});

test("CheckpointHooks() cleanup-on-success deletes the checkpoint; the final output stays readable", async () => {
  const p = counted();
  const checkpoints = createMemoryCheckpointStore();
  const store = await openStore(await tempDir());
  const run = await runPipeline(p.config, {
    store,
    hooks: CheckpointHooks(checkpoints),
  });
  assert.equal(run.status, "completed");
  assert.equal(run.cleanedUp, true);
  assert.equal(await checkpoints.loadByRunId(run.runId), undefined);
  const job = await pipelineJobName(run.pipelineName);
  const runs = await store.listRuns(job);
  assert.equal(runs.length, 1, "only the small completed record is left");
  assert.ok(!runs.includes(run.runId));
  const gc = await collectGarbage(store, { graceMs: 0 });
  assert.equal(gc.swept, 2, "the outputs of Source and Scale");
  assert.equal(await pipelineOutput(run.runId, { store }), 100);
  assert.equal(
    (await verifyStore(store, { readData: true })).problems.length,
    0,
  );
});

test("resumePipeline() sets resumedFrom, runs only the failed component and its successors, and reads the rest from the store", async () => {
  const p = counted();
  const store = "memory:pipeline-resume";
  p.failing.add("scale");
  const failed = await runPipeline(p.config, { store });
  assert.deepEqual(p.calls, ["source"]);
  p.failing.clear();
  p.calls.length = 0;
  const resumed = await resumePipeline(p.config, failed.runId, { store });
  assert.equal(resumed.status, "completed");
  assert.equal(resumed.resumedFrom, failed.runId);
  assert.notEqual(resumed.runId, failed.runId);
  assert.deepEqual(p.calls, ["scale", "sum"], "Source was not run again");
  assert.deepEqual(
    resumed.completedComponents.map((c) => [c.name, c.reused]),
    [["Source", true], ["Scale", false], ["Sum", false]],
  );
  assert.equal(await pipelineOutput(resumed.runId, { store }), 100);
  await assert.rejects(
    resumePipeline(p.config, failed.runId, { store }),
    /Cannot resume run .*: it is a run of pipeline .* cleaned up|already resumed it|no such run/,
  );
});

test("runPipeline() with auto-resume continues the latest failed run; without it starts over", async () => {
  const p = counted({ checkpoint: { "auto-resume": true } });
  const store = "memory:pipeline-auto";
  p.failing.add("sum");
  const first = await runPipeline(p.config, { store });
  assert.equal(first.failedAt?.label, "component 3/3");
  const again = await runPipeline(p.config, { store, autoResume: false });
  assert.equal(again.resumedFrom, undefined);
  assert.deepEqual(p.calls, ["source", "scale", "source", "scale"]);
  p.failing.clear();
  p.calls.length = 0;
  const auto = await runPipeline(p.config, { store });
  assert.equal(auto.status, "completed");
  assert.equal(auto.resumedFrom, again.runId, "the latest failed run");
  assert.deepEqual(p.calls, ["sum"]);
});

test("resumePipeline() detects a changed config; allowConfigChange reruns from the changed component only", async () => {
  const p = counted({ factor: 10 });
  const store = "memory:pipeline-changed";
  p.failing.add("sum");
  const failed = await runPipeline(p.config, { store });
  p.failing.clear();
  p.calls.length = 0;
  const changed = p.configFor(20);
  await assert.rejects(
    resumePipeline(changed, failed.runId, { store }),
    (error: unknown) =>
      error instanceof PipelineConfigChangedError &&
      error.changes.some((c) =>
        c === "pipeline-components.1.instance-config.factor: 10 -> 20"
      ),
  );
  assert.deepEqual(p.calls, [], "nothing ran");
  const resumed = await resumePipeline(changed, failed.runId, {
    store,
    allowConfigChange: true,
  });
  assert.equal(resumed.status, "completed");
  assert.deepEqual(p.calls, ["scale", "sum"], "Source reused, Scale rerun");
  assert.equal(await pipelineOutput(resumed.runId, { store }), 200);
});

test("runPipeline() with fail-fast off runs every component and lists every error", async () => {
  const p = counted({ failFast: false });
  p.failing.add("source");
  p.failing.add("sum");
  const run = await runPipeline(p.config, {
    store: "memory:pipeline-failfast",
  });
  assert.equal(run.status, "failed");
  assert.deepEqual(p.calls, ["scale"], "Scale ran on undefined");
  assert.deepEqual(run.errors.map((e) => e.name), ["Source", "Sum"]);
  assert.match(run.error!, /source is broken.*sum is broken/);
  assert.equal(run.lastCheckpointedIndex, -1);
  assert.equal(run.failedAt?.label, "component 1/3");
});

test("runPipeline() with checkpointing off still runs, and nothing resumes", async () => {
  const p = counted({ checkpoint: { enabled: false, "auto-resume": true } });
  const store = "memory:pipeline-nocheckpoint";
  p.failing.add("sum");
  const failed = await runPipeline(p.config, { store });
  assert.equal(failed.checkpoint, false);
  assert.deepEqual(await listResumable(failed.pipelineName, { store }), []);
  await assert.rejects(
    resumePipeline(p.config, failed.runId, { store }),
    /checkpointing is off/,
  );
  p.failing.clear();
  const again = await runPipeline(p.config, { store });
  assert.equal(again.resumedFrom, undefined);
  assert.deepEqual(p.calls, ["source", "scale", "source", "scale", "sum"]);
});

test("listResumable() is right after several failed and successful runs", async () => {
  const p = counted();
  const store = "memory:pipeline-list";
  p.failing.add("scale");
  const a = await runPipeline(p.config, { store });
  const b = await runPipeline(p.config, { store });
  p.failing.clear();
  p.failing.add("sum");
  const c = await runPipeline(p.config, { store });
  p.failing.clear();
  await runPipeline(p.config, { store }); // a fresh success
  let list = await listResumable(p.config.pipelineName, { store });
  assert.deepEqual(list.map((r) => r.runId), [c.runId, b.runId, a.runId]);
  assert.deepEqual(list.map((r) => r.failedAt?.label), [
    "component 3/3",
    "component 2/3",
    "component 2/3",
  ]);
  assert.equal(list[0]!.totalComponents, 3);
  assert.match(list[0]!.error!, /sum is broken/);
  p.failing.add("sum");
  const d = await resumePipeline(p.config, b.runId, { store }); // fails again
  list = await listResumable(p.config.pipelineName, { store });
  assert.deepEqual(list.map((r) => r.runId), [d.runId, c.runId, a.runId]);
  p.failing.clear();
  await resumePipeline(p.config, d.runId, { store });
  list = await listResumable(p.config.pipelineName, { store });
  assert.deepEqual(list.map((r) => r.runId), [c.runId, a.runId]);
});

test("composeHooks() hooks fire in order, and a failing hook is isolated", async () => {
  const p = counted();
  const order: string[] = [];
  const record = (tag: string): PipelineHooks => ({
    beforePipeline: () => void order.push(`${tag}:beforePipeline`),
    beforeComponent: (_c, i) => void order.push(`${tag}:beforeComponent ${i}`),
    afterComponent: (_c, i) => void order.push(`${tag}:afterComponent ${i}`),
    onComponentFailure: (_c, i) => void order.push(`${tag}:failure ${i}`),
    afterPipeline: (_c, r) =>
      void order.push(`${tag}:afterPipeline ${r.status}`),
  });
  const broken: PipelineHooks = {
    beforeComponent: () => {
      throw new Error("Hook is broken");
    },
  };
  const warnings: string[] = [];
  p.failing.add("sum");
  const run = await runPipeline(p.config, {
    store: "memory:pipeline-hooks",
    hooks: composeHooks(record("a"), broken, record("b")),
    onEvent: (e) => e.type === "warning" && warnings.push(e.message),
  });
  assert.equal(run.status, "failed");
  assert.deepEqual(order, [
    "a:beforePipeline",
    "b:beforePipeline",
    "a:beforeComponent 0",
    "b:beforeComponent 0",
    "a:afterComponent 0",
    "b:afterComponent 0",
    "a:beforeComponent 1",
    "b:beforeComponent 1",
    "a:afterComponent 1",
    "b:afterComponent 1",
    "a:beforeComponent 2",
    "b:beforeComponent 2",
    "a:failure 2",
    "b:failure 2",
    "a:afterPipeline failed",
    "b:afterPipeline failed",
  ]);
  assert.equal(warnings.length, 3);
  assert.match(
    warnings[0]!,
    /Hook beforeComponent .* failed: .*Hook is broken/,
  );
});

test("AuditHooks.toFile() syncs each line before the pipeline goes on", async () => {
  const { setSyncObserver } = await import("../store/files.ts");
  const path = join(await tempDir(), "audit.jsonl");
  const synced: number[] = [];
  const previous = setSyncObserver(async (syncedPath) => {
    if (syncedPath !== path) return;
    const text = await readFile(path, "utf8");
    synced.push(text.split("\n").length - 1);
  });
  try {
    const hooks = AuditHooks.toFile(path);
    const info = {
      runId: "r",
      pipelineName: "P",
      state: {} as never,
      componentName: "A",
    };
    await hooks.beforeComponent!({} as never, 0, 2, info);
    await hooks.afterComponent!({} as never, 0, 2, 5, info);
    await hooks.beforeComponent!({} as never, 1, 2, info);
  } finally {
    setSyncObserver(previous);
  }
  // Each append was durable, whole lines only, by the time it resolved.
  assert.deepEqual(synced, [1, 2, 3]);
});

test("LoggingHooks, AuditHooks and MetricsHooks write output that parses", async () => {
  const p = counted();
  const dir = await tempDir();
  const audit = join(dir, "audit.jsonl");
  const prom = join(dir, "pipeline.prom");
  const json = join(dir, "metrics.json");
  const lines: string[] = [];
  const human: string[] = [];
  p.failing.add("sum");
  const store = "memory:pipeline-builtin-hooks";
  const hooks = () =>
    composeHooks(
      LoggingHooks.structured((l) => lines.push(l)),
      LoggingHooks.humanReadable((l) => human.push(l)),
      AuditHooks.toFile(audit),
      MetricsHooks({ prometheusFile: prom, jsonFile: json }),
    );
  const failed = await runPipeline(p.config, { store, hooks: hooks() });
  p.failing.clear();
  await resumePipeline(p.config, failed.runId, { store, hooks: hooks() });
  const events = lines.map((l) => JSON.parse(l));
  assert.deepEqual(events.map((e) => e.event), [
    "pipeline_start",
    "component_start",
    "component_end",
    "component_start",
    "component_end",
    "component_start",
    "component_error",
    "pipeline_end",
    "pipeline_start",
    "component_start",
    "component_end",
    "pipeline_end",
  ]);
  const end = events.find((e) => e.event === "component_end");
  for (
    const field of [
      "run_id",
      "pipeline_name",
      "component_name",
      "component_index",
      "total_components",
      "duration_ms",
      "status",
    ]
  ) assert.ok(field in end, field);
  assert.equal(events[6].error_type, "Error");
  assert.equal(events[7].status, "failed");
  assert.equal(events[11].status, "completed");
  assert.ok(
    human.some((l) =>
      /component 3\/3 "Sum" failed: Error: sum is broken/.test(l)
    ),
  );
  const auditLines = (await readFile(audit, "utf8")).trimEnd().split("\n");
  assert.equal(auditLines.length, events.length);
  assert.deepEqual(
    auditLines.map((l) => JSON.parse(l).event),
    events.map((e) => e.event),
  );
  const text = await readFile(prom, "utf8");
  const sample = (name: string) =>
    text.split("\n").filter((l) => l.startsWith(name + "{"));
  assert.equal(sample("cairn_pipeline_runs_total").length, 1, text);
  assert.match(
    text,
    /cairn_pipeline_runs_total\{pipeline="Pipeline t\d+",status="completed"\} 1/,
  );
  assert.match(
    text,
    /cairn_pipeline_component_output_bytes\{pipeline="[^"]+",component="Sum"\} \d+/,
  );
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    assert.match(line, /^[a-z_]+\{[^}]*\} -?[\d.e+-]+$/, line);
  }
  const metrics = JSON.parse(await readFile(json, "utf8"));
  assert.ok(
    metrics.some((m: { name: string }) =>
      m.name === "cairn_pipeline_component_duration_seconds"
    ),
  );
});

test("resumePipeline() recomputes a finished component whose stored output was lost", async () => {
  const p = counted();
  const store = await openStore(await tempDir());
  p.failing.add("sum");
  const failed = await runPipeline(p.config, { store });
  const source = failed.completedComponents.find((c) => c.name === "Source")!;
  for (const chunk of source.outputChunks!) {
    await store.chunks.delete(chunk.hash);
  }
  p.failing.clear();
  p.calls.length = 0;
  const resumed = await resumePipeline(p.config, failed.runId, { store });
  assert.equal(resumed.status, "completed");
  assert.deepEqual(
    p.calls,
    ["source", "sum"],
    "Scale's output was still stored",
  );
  assert.equal(await pipelineOutput(resumed.runId, { store }), 100);
});
