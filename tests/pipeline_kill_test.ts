import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { openStore } from "../lib/open_store.ts";
import { pipelineJobName } from "../lib/pipeline/mod.ts";
import { replayRun } from "../lib/replay.ts";
import { collect, runCairn, startCairn } from "./cli_command.ts";
import { tempDir } from "./temp.ts";
import { testRandom } from "./test_seed.ts";

const COMPONENTS = fileURLToPath(
  new URL("./fixtures/pipeline_components.ts", import.meta.url),
);
const PARTS = 24;

async function lines(path: string): Promise<string[]> {
  return (await readFile(path, "utf8").catch(() => "")).split("\n").filter((
    l,
  ) => l !== "");
}

test("cairn pipeline resume after a SIGKILL in the middle of a component reuses what was stored", async () => {
  const { seed, between } = testRandom("pipeline SIGKILL");
  // Part 0's done record is durable once part 1 has started, so kill at >= 2.
  const killAfter = between(2, PARTS - 2);
  const dir = await tempDir();
  const store = join(dir, "store");
  const log = join(dir, "log.txt");
  const config = join(dir, "kill.conf");
  await writeFile(
    config,
    `pipeline {
  pipeline-name = "Kill test"
  checkpoint { enabled = true, location = "${store}", cleanup-on-success = false }
  pipeline-components = [
    { instance-type = "${COMPONENTS}#Source", instance-name = Source, instance-config { log = "${log}", n = 40 } }
    { instance-type = "${COMPONENTS}#Slow", instance-name = Slow, instance-config { log = "${log}", parts = ${PARTS}, delayMs = 30 } }
    { instance-type = "${COMPONENTS}#Sum", instance-name = Sum, instance-config { log = "${log}" } }
  ]
}
`,
  );
  const child = startCairn(["pipeline", "run", config]);
  const exited = collect(child);
  let killed = false;
  while (!killed) {
    const slow = (await lines(log)).filter((l) => l.startsWith("Slow "));
    if (slow.length >= killAfter) {
      child.kill("SIGKILL");
      killed = true;
    } else await new Promise((r) => setTimeout(r, 5));
  }
  const result = await exited;
  assert.equal(result.signal, "SIGKILL", `seed ${seed}: ${result.stderr}`);
  const before = await lines(log);
  assert.deepEqual(before.filter((l) => !l.startsWith("Slow ")), ["Source"]);

  const ls = await runCairn(["pipeline", "ls", config, "--json"]);
  assert.equal(ls.code, 0, ls.stderr);
  const [killedRun, ...others] = JSON.parse(ls.stdout);
  assert.equal(others.length, 0);
  assert.equal(killedRun.status, "failed", "a killed run counts as failed");
  assert.equal(killedRun.failedAt.label, "component 2/3");
  assert.match(killedRun.error, /stopped without recording an end/);

  const resumed = await runCairn([
    "--json",
    "pipeline",
    "resume",
    config,
    "--run",
    killedRun.runId,
  ]);
  assert.equal(resumed.code, 0, `seed ${seed}: ${resumed.stderr}`);
  const record = JSON.parse(resumed.stdout);
  assert.equal(record.status, "completed");
  assert.equal(record.resumedFrom, killedRun.runId);

  const after = (await lines(log)).slice(before.length);
  const s = await openStore(store);
  const state = await replayRun(
    s,
    await pipelineJobName("Kill test"),
    record.runId,
  );
  const reusedParts =
    [...state.steps.values()].filter((step) =>
      step.key.startsWith("1/part-") && step.memoHit
    ).length;
  assert.ok(
    reusedParts >= killAfter - 1,
    `seed ${seed}: ${reusedParts} parts reused after ${killAfter} were noted`,
  );
  assert.deepEqual(
    after.filter((l) => !l.startsWith("Slow ")),
    ["Sum"],
    "Source came from the store",
  );
  assert.equal(
    after.length - 1,
    PARTS - reusedParts,
    `seed ${seed}: only the parts without a done record ran again`,
  );
  const output = await runCairn([
    "--store",
    store,
    "pipeline",
    "output",
    record.runId,
  ]);
  const expected = Array.from({ length: 40 }, (_, i) => (i + 1) ** 2).reduce(
    (a, b) => a + b,
  );
  assert.equal(JSON.parse(output.stdout), expected);
});

test("cairn pipeline run stops on SIGTERM with exit 143, and the interrupted run resumes", async () => {
  const dir = await tempDir();
  const store = join(dir, "store");
  const log = join(dir, "log.txt");
  const config = join(dir, "term.conf");
  await writeFile(
    config,
    `pipeline {
  pipeline-name = "Term test"
  checkpoint { enabled = true, location = "${store}" }
  pipeline-components = [
    { instance-type = "${COMPONENTS}#Source", instance-name = Source, instance-config { log = "${log}", n = 12 } }
    { instance-type = "${COMPONENTS}#Slow", instance-name = Slow, instance-config { log = "${log}", parts = 12, delayMs = 30 } }
  ]
}
`,
  );
  const child = startCairn(["pipeline", "run", config]);
  const exited = collect(child);
  while ((await lines(log)).filter((l) => l.startsWith("Slow ")).length < 3) {
    await new Promise((r) => setTimeout(r, 5));
  }
  // Not child.kill(): Deno's ChildProcess then reports the signal, not the exit code.
  process.kill(child.pid!, "SIGTERM");
  const result = await exited;
  assert.equal(result.code, 143, result.stderr);
  assert.match(result.stderr, /interrupted by SIGTERM/);
  const ls = await runCairn(["pipeline", "ls", config, "--json"]);
  const [run] = JSON.parse(ls.stdout);
  assert.equal(run.status, "failed");
  assert.equal(run.failedAt.label, "component 2/2");
  const resumed = await runCairn([
    "--json",
    "pipeline",
    "resume",
    config,
    "--run",
    run.runId,
  ]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.deepEqual(
    (await lines(log)).filter((l) => l === "Source"),
    ["Source"],
  );
  const parts = new Set(
    (await lines(log)).filter((l) => l.startsWith("Slow ")),
  );
  assert.equal(parts.size, 12, "every part ran");
});
