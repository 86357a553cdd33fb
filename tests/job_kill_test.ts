import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { readValueChunks } from "../lib/output.ts";
import { replayJob } from "../lib/replay.ts";
import { openFsStore } from "../store/fs.ts";
import { runScript, startScript } from "./child_process.ts";
import { stepOutput } from "./fixtures/kill_job.ts";
import { tempDir } from "./temp.ts";
import { testRandom } from "./test_seed.ts";

const FIXTURE = new URL("./fixtures/kill_job.ts", import.meta.url);
const MAIN = new URL("../cli/main.ts", import.meta.url);
const STEPS = 40;

/** Resolve when the child has exited; `onLine` sees each stdout or stderr line as it comes. */
function watch(
  child: ChildProcess,
  onLine: (line: string, stream: "stdout" | "stderr") => void,
): Promise<
  { code: number | null; signal: string | null; stdout: string; stderr: string }
> {
  const text = { stdout: "", stderr: "" };
  for (const stream of ["stdout", "stderr"] as const) {
    let pending = "";
    child[stream]!.on("data", (d) => {
      text[stream] += d;
      pending += d;
      const lines = pending.split("\n");
      pending = lines.pop()!;
      for (const line of lines) onLine(line, stream);
    });
  }
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, ...text }));
  });
}

/** Every step's output of the job's newest run, by key. */
async function outputs(
  root: string,
  job: string,
): Promise<Map<string, unknown>> {
  const store = await openFsStore(root);
  const runs = await replayJob(store, job);
  assert.equal(runs.length, 1, "every attempt resumed the same run");
  const state = runs[0]!;
  assert.equal(state.status, "completed");
  const values = new Map<string, unknown>();
  for (const [key, step] of state.steps) {
    assert.equal(step.output.kind, "value");
    if (step.output.kind === "value") {
      values.set(key, await readValueChunks(store.chunks, step.output.chunks));
    }
  }
  return values;
}

test("runJob survives SIGKILL at random points: each step's side effect happens once, except the step in flight", async () => {
  const dir = await tempDir();
  const root = join(dir, "store");
  const side = join(dir, "side.txt");
  let kills = 0;
  const { between } = testRandom("runJob kill points");
  for (let attempt = 0; attempt < 20; attempt++) {
    const killAt = between(2, 9);
    let computed = 0;
    let finished = false;
    const child = startScript(FIXTURE, [root, side, String(STEPS)]);
    const result = await watch(child, (line) => {
      if (line === "finished") finished = true;
      if (
        line.startsWith("computed ") && ++computed === killAt && attempt < 4
      ) {
        child.kill("SIGKILL");
      }
    });
    if (finished) {
      assert.equal(result.code, 0, result.stderr);
      break;
    }
    assert.equal(
      result.signal,
      "SIGKILL",
      `attempt ${attempt}: ${result.stderr}`,
    );
    kills++;
  }
  assert.equal(kills, 4, "the job was killed four times before it finished");

  const lines = (await readFile(side, "utf8")).trim().split("\n");
  const counts = new Map<string, number>();
  for (const key of lines) counts.set(key, (counts.get(key) ?? 0) + 1);
  assert.equal(counts.size, STEPS, "every step ran");
  const extra = [...counts.values()].reduce((n, c) => n + c - 1, 0);
  assert.ok(
    extra <= kills,
    `at most one repeated side effect per kill: ${extra} repeats after ${kills} kills`,
  );

  const reference = join(dir, "reference");
  const clean = await runScript(FIXTURE, [
    reference,
    join(dir, "side-ref.txt"),
    String(STEPS),
  ]);
  assert.equal(clean.code, 0, clean.stderr);
  const expected = await outputs(reference, "killme");
  assert.deepEqual(await outputs(root, "killme"), expected);
  assert.deepEqual(expected.get("step-007"), stepOutput(7));
});

test("cairn demo records SIGTERM as interrupted and exits 143, SIGINT exits 130, and a rerun resumes", async () => {
  const store = join(await tempDir(), "store");
  const demo = [
    "--store",
    store,
    "demo",
    "--steps",
    "10",
    "--rows",
    "1000",
    "--delay",
    "40ms",
    "--json",
  ];
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    let computed = 0;
    const child = startScript(MAIN, demo);
    const result = await watch(child, (line, stream) => {
      if (stream !== "stderr" || !line.startsWith("{")) return;
      const event = JSON.parse(line);
      if (event.type === "step-done" && !event.cached && ++computed === 3) {
        // Not child.kill(): Deno's ChildProcess then reports the signal it
        // sent instead of the exit code the child chose.
        process.kill(child.pid!, signal);
      }
    });
    assert.equal(result.code, code, result.stderr);
    const last = JSON.parse(result.stderr.trim().split("\n").at(-1)!);
    assert.equal(last.type, "error");
    assert.equal(last.exitCode, code);
    assert.match(
      last.message,
      new RegExp(`interrupted by ${signal}; rerun it to resume`),
    );
    const ls = await runScript(MAIN, ["--store", store, "ls", "--json"]);
    const [run] = JSON.parse(ls.stdout);
    assert.equal(run.status, "interrupted");
    assert.equal(run.error, `stopped by ${signal}`);
    assert.ok(run.steps >= 3 && run.steps < 21, `steps done: ${run.steps}`);
  }
  const rerun = await runScript(MAIN, demo);
  assert.equal(rerun.code, 0, rerun.stderr);
  const report = JSON.parse(rerun.stdout);
  assert.ok(report.reused >= 6, `reused ${report.reused}`);
  assert.equal(report.reused + report.computed, 21);
});
