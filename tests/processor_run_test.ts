import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmod,
  mkdir,
  open,
  readFile,
  stat,
  truncate,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { forgetRuns } from "../lib/forget.ts";
import {
  BaseProcessor,
  fileIndex,
  listProcessorDatasets,
  type ProcessContext,
  processedItems,
  type Processor,
  type ProcessorEvent,
  processorStatus,
  resumeProcessor,
  runProcessor,
} from "../lib/processor/mod.ts";
import { InterruptedError } from "../lib/job.ts";
import { replayRun } from "../lib/replay.ts";
import { openFsStore } from "../store/fs.ts";
import { tempDir } from "./temp.ts";

interface Num {
  id: string;
  n: number;
}

/** Numbers 1..count; calls are counted; `stopAt` aborts the controller at that item. */
function numbers(
  count: number,
  hooks: {
    calls?: string[];
    stopAt?: number;
    controller?: AbortController;
    failOnce?: number;
  } = {},
): Processor<Num> {
  let failed = false;
  return {
    name: "numbers",
    count: () => count,
    *items() {
      for (let n = 1; n <= count; n++) {
        yield { id: `n${String(n).padStart(5, "0")}`, n };
      }
    },
    process(item, ctx) {
      hooks.calls?.push(item.id);
      if (item.n === hooks.stopAt) hooks.controller?.abort("SIGTERM");
      if (item.n === hooks.failOnce && !failed) {
        failed = true;
        throw Object.assign(new Error("disk hiccup"), { fatal: true });
      }
      if (item.n % 10 === 0) throw new Error(`ten divides ${item.n}`);
      if (item.n % 7 === 0) return ctx.skip("seven"), [];
      ctx.state.sum = (ctx.state.sum as number ?? 0) + item.n;
      return [{ id: ctx.nextId("S"), n: item.n, square: item.n * item.n }];
    },
  };
}

async function setup() {
  const dir = await tempDir();
  return {
    dir,
    store: await openFsStore(join(dir, "store")),
    out: join(dir, "out.jsonl"),
  };
}

async function referenceOutput(count: number): Promise<string> {
  const { dir, out } = await setup();
  await runProcessor(numbers(count), {
    store: `memory:ref-${Math.random()}`,
    dataset: "ref",
    input: dir,
    out,
    checkpointEvery: 1000,
  });
  return await readFile(out, "utf8");
}

test("runProcessor writes a checkpoint every N items and counts success, errors and skips", async () => {
  const { dir, store, out } = await setup();
  const events: ProcessorEvent[] = [];
  const result = await runProcessor(numbers(95), {
    store,
    dataset: "count",
    input: dir,
    out,
    checkpointEvery: 20,
    onEvent: (e) => events.push(e),
  });
  const checkpoints = events.filter((e) => e.type === "checkpoint");
  assert.deepEqual(checkpoints.map((e) => e.items), [20, 20, 20, 20, 15]);
  assert.equal(checkpoints.at(-1)!.status, "completed");
  const s = result.state;
  assert.equal(s.processed_count, 95);
  assert.equal(s.statistics.error_count, 9);
  assert.equal(s.statistics.skipped_count, 12); // 7..91 by 7, less 70
  assert.equal(s.statistics.success_count, 95 - 9 - 12);
  assert.equal(s.last_generated_id, `S${String(74).padStart(6, "0")}`);
  assert.equal(s.last_processed_id, "n00095");
  assert.equal(s.processor_state.total_items, 95);
  assert.equal(events.filter((e) => e.type === "item-error").length, 9);
  assert.equal(result.records, 74);
  assert.deepEqual(Object.keys(s), [
    "checkpoint_id",
    "dataset",
    "processor",
    "start_time",
    "last_update",
    "processed_count",
    "last_processed_id",
    "last_generated_id",
    "status",
    "error",
    "processor_state",
    "statistics",
    "version",
  ]);
  assert.equal(await readFile(out, "utf8"), await referenceOutput(95));
});

test("runProcessor writes a checkpoint when checkpointIntervalMs passed, before N items", async () => {
  const { dir, store, out } = await setup();
  const events: ProcessorEvent[] = [];
  const slow: Processor<Num> = {
    ...numbers(12),
    async process(item, ctx) {
      await new Promise((r) => setTimeout(r, 15));
      return [{ id: ctx.nextId("S"), n: item.n }];
    },
  };
  await runProcessor(slow, {
    store,
    dataset: "timed",
    input: dir,
    out,
    checkpointEvery: 1000,
    checkpointIntervalMs: 40,
    onEvent: (e) => events.push(e),
  });
  const sizes = events.flatMap((e) => e.type === "checkpoint" ? [e.items] : []);
  assert.ok(sizes.length >= 3, `checkpoints: ${sizes.join(",")}`);
  assert.ok(sizes.slice(0, -1).every((n) => n < 12));
  assert.equal(sizes.reduce((a, b) => a + b, 0), 12);
});

test("runProcessor stopped by its signal writes a final checkpoint, and a rerun resumes exactly there with a resuming record", async () => {
  const { dir, store, out } = await setup();
  const calls: string[] = [];
  const controller = new AbortController();
  await assert.rejects(
    runProcessor(numbers(60, { calls, stopAt: 23, controller }), {
      store,
      dataset: "stop",
      input: dir,
      out,
      checkpointEvery: 1000,
      signal: controller.signal,
    }),
    (error: unknown) =>
      error instanceof InterruptedError && error.exitCode === 143,
  );
  const stopped = await processorStatus("stop", { store });
  assert.equal(stopped.state.status, "in_progress");
  assert.equal(stopped.state.processor_state.current_position, 23);
  assert.equal(
    stopped.state.processor_state.dataset_specific_state.sum,
    1 + 2 + 3 + 4 + 5 + 6 + 8 + 9 + 11 + 12 + 13 + 15 + 16 + 17 + 18 + 19 + 22 +
      23,
  );
  const events: ProcessorEvent[] = [];
  const result = await runProcessor(numbers(60, { calls }), {
    store,
    dataset: "stop",
    input: dir,
    out,
    onEvent: (e) => events.push(e),
  });
  assert.equal(calls.length, 60, "no item processed twice");
  const resume = events.find((e) => e.type === "resume");
  assert.ok(resume?.type === "resume" && resume.position === 23);
  const statuses = events.flatMap((e) =>
    e.type === "checkpoint" ? [e.status] : []
  );
  assert.deepEqual(statuses, ["resuming", "completed"]);
  assert.ok(result.resumed);
  assert.equal(await readFile(out, "utf8"), await referenceOutput(60));
});

async function latestCheckpointChunk(
  store: Awaited<ReturnType<typeof openFsStore>>,
  job: string,
): Promise<{ path: string; log: string }> {
  const run = (await store.listRuns(job)).at(-1)!;
  const state = await replayRun(store, job, run);
  const key = [...state.steps.keys()].filter((k) => k.startsWith("checkpoint-"))
    .sort().at(-1)!;
  const record = state.steps.get(key)!;
  assert.equal(record.output.kind, "value");
  const hash = record.output.kind === "value"
    ? record.output.chunks[0]!.hash
    : "";
  return {
    path: join(store.location, "chunks", hash.slice(0, 2), hash),
    log: join(store.location, "jobs", job, `${run}.log`),
  };
}

test("runProcessor falls back to the previous checkpoint when the latest one is corrupted, says so, and the output is unchanged", async () => {
  const { dir, store, out } = await setup();
  const controller = new AbortController();
  await assert.rejects(
    runProcessor(numbers(80, { stopAt: 45, controller }), {
      store,
      dataset: "corrupt",
      input: dir,
      out,
      checkpointEvery: 20,
      signal: controller.signal,
    }),
    InterruptedError,
  );
  // Checkpoints at 20, 40 and the final one at 45: damage the last.
  const { path } = await latestCheckpointChunk(store, "processor-corrupt");
  await chmod(path, 0o644);
  const bytes = await readFile(path);
  bytes[bytes.length - 3]! ^= 0xff;
  await writeFile(path, bytes);
  const calls: string[] = [];
  const events: ProcessorEvent[] = [];
  await runProcessor(numbers(80, { calls }), {
    store,
    dataset: "corrupt",
    input: dir,
    out,
    checkpointEvery: 20,
    onEvent: (e) => events.push(e),
  });
  const resume = events.find((e) => e.type === "resume");
  assert.ok(resume?.type === "resume");
  assert.equal(resume.position, 40, "the previous good checkpoint");
  assert.match(
    resume.fallback ?? "",
    /is damaged .*falling back to checkpoint "corrupt_\d+_2"/,
  );
  assert.ok(
    events.some((e) => e.type === "warning" && /damaged/.test(e.message)),
  );
  assert.equal(
    calls.length,
    40,
    "only the items after the good checkpoint ran",
  );
  // The manifest log says so too, on the resuming checkpoint.
  const run = (await store.listRuns("processor-corrupt")).at(-1)!;
  const notes = [
    ...(await replayRun(store, "processor-corrupt", run)).steps.values(),
  ]
    .map((r) =>
      (r.stats?.processor as { fallback?: string } | undefined)?.fallback
    )
    .filter((n) => n !== undefined);
  assert.equal(notes.length, 1);
  assert.match(notes[0]!, /is damaged/);
  assert.equal(await readFile(out, "utf8"), await referenceOutput(80));
});

test("runProcessor falls back past a torn last checkpoint record", async () => {
  const { dir, store, out } = await setup();
  const controller = new AbortController();
  await assert.rejects(
    runProcessor(numbers(50, { stopAt: 30, controller }), {
      store,
      dataset: "torn",
      input: dir,
      out,
      checkpointEvery: 20,
      signal: controller.signal,
    }),
    InterruptedError,
  );
  const { log } = await latestCheckpointChunk(store, "processor-torn");
  // The log ends with the checkpoint at 30 and the end record; tear into the checkpoint.
  const size = (await stat(log)).size;
  const handle = await open(log, "r");
  const all = new Uint8Array(size);
  await handle.read(all, 0, size, 0);
  await handle.close();
  const text = new TextDecoder("latin1").decode(all);
  const cut = text.lastIndexOf("checkpoint-000002");
  assert.ok(cut > 0);
  await truncate(log, cut);
  const events: ProcessorEvent[] = [];
  const calls: string[] = [];
  await runProcessor(numbers(50, { calls }), {
    store,
    dataset: "torn",
    input: dir,
    out,
    checkpointEvery: 20,
    onEvent: (e) => events.push(e),
  });
  assert.ok(events.some((e) => e.type === "warning" && /torn/.test(e.message)));
  const resume = events.find((e) => e.type === "resume");
  assert.ok(resume?.type === "resume" && resume.position === 20);
  assert.equal(calls.length, 30);
  assert.equal(await readFile(out, "utf8"), await referenceOutput(50));
});

test("runProcessor retries a failure from the newest checkpoint (maxRetries, retryDelayMs)", async () => {
  const { dir, store, out } = await setup();
  let failedOnce = false;
  const failing: Processor<Num> = {
    ...numbers(50),
    async *items() {
      for (let n = 1; n <= 50; n++) {
        if (n === 33 && !failedOnce) {
          failedOnce = true;
          throw new Error("Source went away");
        }
        yield { id: `n${String(n).padStart(5, "0")}`, n };
      }
    },
  };
  const events: ProcessorEvent[] = [];
  const result = await runProcessor(failing, {
    store,
    dataset: "retry",
    input: dir,
    out,
    checkpointEvery: 10,
    retryDelayMs: 1,
    onEvent: (e) => events.push(e),
  });
  assert.equal(result.attempts, 2);
  const retry = events.find((e) => e.type === "retry");
  assert.ok(retry?.type === "retry" && /Source went away/.test(retry.error));
  const statuses = events.flatMap((e) =>
    e.type === "checkpoint" ? [e.status] : []
  );
  assert.ok(statuses.includes("failed") && statuses.includes("resuming"));
  assert.equal(await readFile(out, "utf8"), await referenceOutput(50));
});

test("runProcessor gives up after maxRetries and the run is failed", async () => {
  const { dir, store, out } = await setup();
  const broken: Processor<Num> = {
    ...numbers(5),
    // deno-lint-ignore require-yield
    *items() {
      throw new Error("No such corpus");
    },
  };
  let retries = 0;
  await assert.rejects(
    runProcessor(broken, {
      store,
      dataset: "broken",
      input: dir,
      out,
      maxRetries: 2,
      retryDelayMs: 1,
      onEvent: (e) => e.type === "retry" && retries++,
    }),
    /No such corpus/,
  );
  assert.equal(retries, 2);
  const status = await processorStatus("broken", { store });
  assert.equal(status.state.status, "failed");
  assert.match(status.state.error ?? "", /No such corpus/);
});

test("resumeProcessor resumes from an older checkpoint id and the output is unchanged", async () => {
  const { dir, store, out } = await setup();
  const first = await runProcessor(numbers(40), {
    store,
    dataset: "older",
    input: dir,
    out,
    checkpointEvery: 10,
  });
  assert.equal(first.state.status, "completed");
  const { checkpoints } = await processorStatus("older", { store });
  const second = checkpoints.find((c) => c.current_position === 20)!;
  const calls: string[] = [];
  const again = await resumeProcessor("older", {
    store,
    checkpoint: second.checkpoint_id,
    processor: numbers(40, { calls }),
    checkpointEvery: 10,
  });
  assert.equal(calls.length, 20);
  assert.equal(again.state.status, "completed");
  assert.equal(await readFile(out, "utf8"), await referenceOutput(40));
  const items = await processedItems("older", { store, offset: 18, limit: 4 });
  assert.deepEqual(items.ids, ["n00019", "n00020", "n00021", "n00022"]);
  assert.equal(items.total, 40);
  await assert.rejects(
    resumeProcessor("older", {
      store,
      checkpoint: "older_19990101000000_1",
      processor: numbers(40),
    }),
    /no such checkpoint/,
  );
});

test("runProcessor keeps exactly maxCheckpoints restore points per dataset and forgets older runs", async () => {
  const { dir, store, out } = await setup();
  for (let i = 0; i < 4; i++) {
    await runProcessor(numbers(30), {
      store,
      dataset: "kept",
      input: dir,
      out,
      checkpointEvery: 10,
      maxCheckpoints: 5,
      newRun: true,
    });
  }
  const [dataset] = await listProcessorDatasets({ store });
  assert.equal(dataset!.checkpoints.length, 5);
  // Each run: checkpoints at 10 and 20 items, then the completed one at 30.
  assert.deepEqual(
    dataset!.checkpoints.map((c) => [c.status, c.processed_count]),
    [
      ["completed", 30],
      ["in_progress", 20],
      ["in_progress", 10],
      ["completed", 30],
      ["in_progress", 20],
    ],
  );
  // The newest 5 span the two newest runs.
  assert.equal((await store.listRuns("processor-kept")).length, 2);
  await assert.rejects(
    resumeProcessor("kept", {
      store,
      checkpoint: (await processorStatus("kept", { store })).checkpoints[4]!
        .checkpoint_id,
      processor: numbers(30),
      maxCheckpoints: 5,
    }),
    /no such checkpoint/,
  );
});

test("runProcessor refuses to resume when the input changed, naming newRun", async () => {
  const { dir, store, out } = await setup();
  const controller = new AbortController();
  await assert.rejects(
    runProcessor(numbers(30, { stopAt: 15, controller }), {
      store,
      dataset: "changed",
      input: dir,
      out,
      signal: controller.signal,
    }),
    InterruptedError,
  );
  const shifted: Processor<Num> = {
    ...numbers(30),
    *items() {
      for (let n = 2; n <= 31; n++) {
        yield { id: `n${String(n).padStart(5, "0")}`, n };
      }
    },
  };
  await assert.rejects(
    runProcessor(shifted, {
      store,
      dataset: "changed",
      input: dir,
      out,
      maxRetries: 0,
    }),
    (e: unknown) =>
      e instanceof RangeError && /input changed.*newRun/.test(e.message),
  );
});

test("BaseProcessor subclasses run and resume; tags on runs work with forgetRuns keepTags", async () => {
  const { dir, store, out } = await setup();
  class Letters extends BaseProcessor<{ id: string }> {
    readonly name = "letters";
    *items() {
      for (const c of "abcdef") yield { id: c };
    }
    process(item: { id: string }, ctx: ProcessContext) {
      return [{ id: ctx.nextId("L"), letter: item.id }];
    }
  }
  await new Letters().run({
    store,
    dataset: "letters",
    input: dir,
    out,
    tags: ["keep-me"],
  });
  await new Letters().run({
    store,
    dataset: "letters",
    input: dir,
    out,
    newRun: true,
  });
  const forgot = await forgetRuns(store, {
    jobs: ["processor-letters"],
    keepTags: [["keep-me"]],
  });
  assert.equal(forgot.keep.length, 1);
  assert.deepEqual(forgot.keep[0]!.tags, ["keep-me"]);
  assert.equal(
    (await readFile(out, "utf8")).split("\n")[5],
    '{"id":"L000006","letter":"f"}',
  );
});

test("runProcessor refuses bad options with errors naming them", async () => {
  const { dir, store, out } = await setup();
  await assert.rejects(
    runProcessor(numbers(1), {
      store,
      dataset: "x",
      input: dir,
      out,
      checkpointEvery: 0,
    }),
    /checkpointEvery must be a whole number >= 1, found 0/,
  );
  await assert.rejects(
    runProcessor(numbers(1), { store, dataset: "bad name!", input: dir, out }),
    TypeError,
  );
  await assert.rejects(
    runProcessor({ name: "nope" } as unknown as Processor, {
      store,
      dataset: "x",
      input: dir,
      out,
    }),
    /expected an object with name, items\(\) and process\(\)/,
  );
});

test("runProcessor writes no empty completed checkpoint when the item count is a multiple of N", async () => {
  const { dir, store, out } = await setup();
  const events: ProcessorEvent[] = [];
  const result = await runProcessor(numbers(40), {
    store,
    dataset: "even",
    input: dir,
    out,
    checkpointEvery: 20,
    onEvent: (e) => events.push(e),
  });
  const checkpoints = events.filter((e) => e.type === "checkpoint");
  assert.deepEqual(checkpoints.map((e) => [e.items, e.status]), [
    [20, "in_progress"],
    [20, "completed"],
  ]);
  assert.equal(result.state.processed_count, 40);
  assert.equal(await readFile(out, "utf8"), await referenceOutput(40));
});

test("runProcessor removes the temp file a killed writer left beside the output, and keeps a live one's", async () => {
  const { dir, store, out } = await setup();
  // Above Linux's largest pid: no such process. Pid 1 always exists.
  const dead = join(dir, ".out.jsonl.2147483646-0a1b2c.tmp");
  const live = join(dir, ".out.jsonl.1-0a1b2c.tmp");
  await writeFile(dead, "partial output of a killed run\n");
  await writeFile(live, "another writer's output\n");
  await runProcessor(numbers(5), { store, dataset: "temps", input: dir, out });
  assert.equal(await stat(dead).then(() => "there", () => "gone"), "gone");
  assert.equal(await stat(live).then(() => "there", () => "gone"), "there");
  assert.equal(await readFile(out, "utf8"), await referenceOutput(5));
});

test("runProcessor reprocesses a completed dataset whose input changed, and says so", async () => {
  const { dir, store } = await setup();
  const input = join(dir, "input");
  const out = join(dir, "index.jsonl");
  await mkdir(input);
  await writeFile(join(input, "a.txt"), "a\n");
  await writeFile(join(input, "b.txt"), "b\n");
  const options = { store, dataset: "files", input, out };
  const first = await runProcessor(fileIndex, options);
  assert.equal(first.records, 2);
  const same = await runProcessor(fileIndex, options);
  assert.equal(same.alreadyCompleted, true, "an unchanged input is not redone");
  await writeFile(join(input, "c.txt"), "c\n");
  const events: ProcessorEvent[] = [];
  const again = await runProcessor(fileIndex, {
    ...options,
    onEvent: (e) => events.push(e),
  });
  assert.equal(again.alreadyCompleted, false);
  assert.notEqual(again.run, first.run, "a new run");
  assert.equal(again.records, 3);
  assert.equal((await readFile(out, "utf8")).trim().split("\n").length, 3);
  const warning = events.find((e) => e.type === "warning");
  assert.match(
    (warning as { message: string } | undefined)?.message ?? "",
    /input ".*" of dataset "files" changed since run ".*" completed/,
  );
});
