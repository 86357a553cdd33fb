import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { knnJob, matrixFrom, writeNpyFile } from "../lib/knn/mod.ts";
import { randomFloat32 } from "../lib/random.ts";
import { openStore } from "../lib/open_store.ts";
import { replayRun } from "../lib/replay.ts";
import {
  collectOutput,
  killAfterLines,
  runScript,
  startScript,
} from "./child_process.ts";
import { runCairn } from "./cli_command.ts";
import { freshS3Url, s3 } from "./s3_env.ts";
import { tempDir } from "./temp.ts";
import { testRandom } from "./test_seed.ts";

const CHILD = new URL("./fixtures/knn_shared_child.ts", import.meta.url);
const ROWS = 3000;
const BLOCK_ROWS = 200; // 15 blocks

const { between: random } = testRandom("shared worker kill points");

async function writeReference(dir: string) {
  const data = randomFloat32(ROWS * 32, 7, { min: -1, max: 1 });
  const path = join(dir, "ref.npy");
  await writeNpyFile(path, data, [ROWS, 32]);
  const baseline = join(dir, "baseline");
  await knnJob(matrixFrom(data, 32), {
    store: "memory:",
    k: 8,
    blockRows: BLOCK_ROWS,
    out: baseline,
  });
  return { path, baseline };
}

async function assertSameFiles(a: string, b: string) {
  for (const name of ["index.npy", "distance.npy"]) {
    assert.deepEqual(
      await readFile(join(a, name)),
      await readFile(join(b, name)),
      `${name} in ${a} is byte-identical to the single-process run's`,
    );
  }
}

/** Two workers on one job; the second is SIGKILLed several times and restarted. */
async function killCampaign(store: string, env: Record<string, string>) {
  const dir = await tempDir();
  const ref = await writeReference(dir);
  const args = (
    out: string,
  ) => [store, ref.path, join(dir, out), String(BLOCK_ROWS), "8"];
  const steady = collectOutput(startScript(CHILD, args("a"), env));
  let kills = 0;
  let killedSteps = 0;
  for (let round = 0; round < 3; round++) {
    const child = startScript(CHILD, args("b"), env);
    const lines = await killAfterLines(child, random(1, 4));
    if (lines.includes("done\n")) break;
    kills++;
    killedSteps += lines.split("\n").filter((l) =>
      l.startsWith("step ")
    ).length;
  }
  const last = await runScript(CHILD, args("b"), env);
  const first = await steady;
  assert.equal(first.code, 0, first.stderr);
  assert.equal(last.code, 0, last.stderr);
  await assertSameFiles(join(dir, "a"), ref.baseline);
  await assertSameFiles(join(dir, "b"), ref.baseline);
  // Every block was committed once as a part, and the job's run reuses them all.
  const opened = await openStore(store);
  const run = (await opened.listRuns("shared")).at(-1)!;
  const state = await replayRun(opened, "shared", run);
  assert.equal(state.status, "completed");
  const blocks = [...state.steps.values()].filter((s) =>
    s.key.startsWith("block/")
  );
  assert.equal(blocks.length, ROWS / BLOCK_ROWS);
  assert.ok(
    blocks.every((s) => s.memoHit === true),
    "the assembler computed no block",
  );
  const parts = (await opened.listJobs()).filter((j) =>
    j.startsWith("shared.part.")
  );
  assert.equal(parts.length, ROWS / BLOCK_ROWS);
  const verify = await runCairn(["--store", store, "verify", "--read-data"], {
    env: { NO_COLOR: "", ...env },
  });
  assert.equal(verify.code, 0, verify.stdout + verify.stderr);
  // `cairn ls` counts the part jobs instead of listing them; --parts lists them.
  const cliEnv = { env: { NO_COLOR: "", ...env } };
  const listed = await runCairn(["--store", store, "ls"], cliEnv);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /^shared\s/m);
  assert.doesNotMatch(listed.stdout, /\.part\./);
  assert.match(
    listed.stderr,
    new RegExp(`Job "shared" has ${ROWS / BLOCK_ROWS} part jobs`),
  );
  const all = await runCairn(["--store", store, "ls", "--parts"], cliEnv);
  assert.equal(all.code, 0, all.stderr);
  assert.equal(
    new Set(all.stdout.match(/shared\.part\.\S+/g)).size,
    ROWS / BLOCK_ROWS,
  );
  return { kills, killedSteps };
}

test(
  "knnJob({ sharedWorkers }) with two workers, one SIGKILLed several times, gives byte-identical outputs on the fs store",
  { timeout: 120_000 },
  async () => {
    const store = join(await tempDir(), "store");
    const { kills } = await killCampaign(store, {});
    assert.ok(
      kills >= 1,
      `the second worker was killed mid-run (${kills} kills)`,
    );
  },
);

test(
  "knnJob({ sharedWorkers }) with two workers, one SIGKILLed several times, gives byte-identical outputs on S3",
  { skip: s3.skip, timeout: 180_000 },
  async () => {
    const { kills } = await killCampaign(await freshS3Url("shared"), s3.env!);
    assert.ok(
      kills >= 1,
      `the second worker was killed mid-run (${kills} kills)`,
    );
    // The memo cache file is for directory stores: nothing lands in the cwd.
    assert.equal(existsSync("s3:"), false);
  },
);

test(
  "cairn knn --workers-shared: two processes split the blocks and both write the outputs",
  { timeout: 120_000 },
  async () => {
    const dir = await tempDir();
    const ref = await writeReference(dir);
    const store = join(dir, "store");
    const run = (out: string) =>
      runCairn([
        "--store",
        store,
        "--json",
        "knn",
        "--ref",
        ref.path,
        "--k",
        "8",
        "--block-rows",
        String(BLOCK_ROWS),
        "--out",
        join(dir, out),
        "--job",
        "cli-shared",
        "--workers-shared",
        "--lease",
        "5s",
      ], { env: { NO_COLOR: "" } });
    const [a, b] = await Promise.all([run("a"), run("b")]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    await assertSameFiles(join(dir, "a"), ref.baseline);
    await assertSameFiles(join(dir, "b"), ref.baseline);
    const results = [JSON.parse(a.stdout), JSON.parse(b.stdout)];
    // One assembled the run, the other found it completed.
    assert.equal(results.filter((r) => r.alreadyCompleted).length, 1);
    const bad = await runCairn([
      "--store",
      store,
      "knn",
      "--ref",
      ref.path,
      "--k",
      "8",
      "--out",
      join(dir, "c"),
      "--workers-shared",
      "--lease",
      "soon",
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Invalid --lease/);
  },
);
