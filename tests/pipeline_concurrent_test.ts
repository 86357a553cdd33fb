import { test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runPipeline } from "../lib/pipeline/mod.ts";
import { openFsStore } from "../store/fs.ts";
import {
  type ChildResult,
  collectOutput,
  startScript,
} from "./child_process.ts";
import { tempDir } from "./temp.ts";

const COMPONENTS = fileURLToPath(
  new URL("./fixtures/pipeline_components.ts", import.meta.url),
);
const CHILD = new URL("./fixtures/pipeline_resume_child.ts", import.meta.url);

/** A failed run of Source → Scale → Sum (Scale refused), and its files. */
async function failedRun() {
  const dir = await tempDir();
  const store = join(dir, "store");
  const marker = join(dir, "fail-scale");
  const config = join(dir, "race.conf");
  await writeFile(marker, "");
  await writeFile(
    config,
    `pipeline {
  pipeline-name = "Race test"
  checkpoint { enabled = true, location = "${store}", auto-resume = true, cleanup-on-success = false }
  pipeline-components = [
    { instance-type = "${COMPONENTS}#Source", instance-name = Source }
    { instance-type = "${COMPONENTS}#Scale", instance-name = Scale, instance-config { failIf = "${marker}" } }
    { instance-type = "${COMPONENTS}#Sum", instance-name = Sum }
  ]
}
`,
  );
  const failed = await runPipeline(config);
  assert.equal(failed.status, "failed");
  await rm(marker);
  return { store, config, failed };
}

/**
 * Start two invocations while the test holds the pipeline's job lock, so both
 * have read the store before either can take the lock; then let them go.
 */
async function race(
  store: string,
  job: string,
  args: string[],
): Promise<ChildResult[]> {
  const lock = await (await openFsStore(store)).lock(job);
  const children = [startScript(CHILD, args), startScript(CHILD, args)];
  const seen = children.map((child) =>
    new Promise<void>((resolve) => {
      let out = "";
      child.stdout!.on("data", (d) => {
        out += d;
        if (out.includes("locking")) resolve();
      });
    })
  );
  const results = children.map((child) => collectOutput(child));
  await Promise.race([Promise.all(seen), Promise.all(results)]);
  await lock.release();
  return await Promise.all(results);
}

function recordOf(
  result: ChildResult,
): { resumedFrom?: string; status: string } | undefined {
  const line = result.stdout.split("\n").find((l) => l.startsWith("{"));
  return line === undefined ? undefined : JSON.parse(line);
}

test("runPipeline() with auto-resume: two concurrent invocations never resume the same failed run", async () => {
  const { store, config, failed } = await failedRun();
  const results = await race(store, failed.job, ["auto", config, store]);
  for (const r of results) assert.equal(r.code, 0, r.stdout + r.stderr);
  const records = results.map(recordOf);
  assert.ok(records.every((r) => r?.status === "completed"));
  const resumers = records.filter((r) => r?.resumedFrom === failed.runId);
  assert.equal(resumers.length, 1, JSON.stringify(records));
  assert.equal(
    records.filter((r) => r?.resumedFrom === undefined).length,
    1,
    "the second invocation finds nothing to resume and starts afresh",
  );
});

test("resumePipeline() by id: of two concurrent resumes of one run, the second is refused", async () => {
  const { store, config, failed } = await failedRun();
  const results = await race(store, failed.job, [
    "resume",
    config,
    store,
    failed.runId,
  ]);
  const ok = results.filter((r) => r.code === 0);
  const refused = results.filter((r) => r.code !== 0);
  assert.equal(ok.length, 1, results.map((r) => r.stdout).join("\n"));
  assert.equal(recordOf(ok[0]!)?.resumedFrom, failed.runId);
  assert.equal(refused.length, 1);
  assert.match(refused[0]!.stdout, /already resumed it/);
});
