import { test } from "node:test";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { knnJob, matrixFrom, radiusJob, writeNpyFile } from "../lib/knn/mod.ts";
import type { ManifestRecord } from "../lib/records.ts";
import { randomFloat32 } from "../lib/random.ts";
import { openFsStore } from "../store/fs.ts";
import {
  collectOutput,
  killAfterLines,
  runScript,
  startScript,
} from "./child_process.ts";
import { tempDir } from "./temp.ts";
import { testRandom } from "./test_seed.ts";

const CHILD = new URL("./fixtures/knn_job_child.ts", import.meta.url);
const CLI = new URL("../cli/main.ts", import.meta.url);

/** 4,000 × 32 float32 rows, written to `dir/ref.npy`. */
async function writeReference(dir: string) {
  const data = randomFloat32(4000 * 32, 42, { min: -1, max: 1 });
  const path = join(dir, "ref.npy");
  await writeNpyFile(path, data, [4000, 32]);
  return { path, matrix: matrixFrom(data, 32) };
}

/** Step records per key over every run of a job, read from the raw logs. */
async function stepRecords(
  root: string,
  job: string,
): Promise<Map<string, number>> {
  const store = await openFsStore(root);
  const counts = new Map<string, number>();
  for (const run of await store.listRuns(job)) {
    const log = await store.readLog(job, run);
    try {
      for await (const entry of log.replay<ManifestRecord>()) {
        const record = entry.body;
        if (record.type === "step") {
          counts.set(record.key, (counts.get(record.key) ?? 0) + 1);
        }
      }
    } finally {
      await log.close();
    }
  }
  return counts;
}

/** SIGKILL the child once `count` matching lines appeared on stderr. */
function killAfterStderrLines(
  child: ChildProcess,
  pattern: RegExp,
  count: number,
): Promise<number> {
  let seen = 0;
  let buffer = "";
  return new Promise((resolve) => {
    child.stdout!.resume();
    child.stderr!.on("data", (d) => {
      buffer += d;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      seen += lines.filter((l) => pattern.test(l)).length;
      if (seen >= count) child.kill("SIGKILL");
    });
    child.on("close", () => resolve(seen));
  });
}

async function assertSameFiles(a: string, b: string, names: string[]) {
  for (const name of names) {
    assert.deepEqual(
      await readFile(join(a, name)),
      await readFile(join(b, name)),
      `${name} is byte-identical to the uninterrupted run's`,
    );
  }
}

/** Kill points for this file's tests, from one printed seed. */
const { between: random } = testRandom("knn kill points");

test(
  "knnJob() killed with SIGKILL at random points resumes to byte-identical outputs without recomputing blocks",
  { timeout: 60_000 },
  async () => {
    const dir = await tempDir();
    const ref = await writeReference(dir);
    const baseline = join(dir, "baseline");
    await knnJob(ref.matrix, {
      store: "memory:kill-baseline",
      k: 10,
      blockRows: 50,
      out: baseline,
    });
    const store = join(dir, "store");
    const out = join(dir, "out");
    const args = ["knn", store, ref.path, out, "50", "10"];
    let printed = 0;
    let kills = 0;
    for (let round = 0; round < 4; round++) {
      const child = startScript(CHILD, args);
      const lines = await killAfterLines(child, random(2, 14));
      if (lines.includes("done\n")) break;
      kills++;
      printed += lines.split("\n").filter((l) => l.startsWith("step block/"))
        .length;
    }
    assert.ok(kills >= 3, `the job was killed mid-run (${kills} kills)`);
    const before = await stepRecords(store, "knn-kill");
    assert.ok(before.size < 81, "the killed runs left work to do");
    const last = await runScript(CHILD, args);
    assert.equal(last.code, 0, last.stderr);
    printed +=
      last.stdout.split("\n").filter((l) => l.startsWith("step block/"))
        .length;

    await assertSameFiles(out, baseline, ["index.npy", "distance.npy"]);
    const records = await stepRecords(store, "knn-kill");
    const blocks = [...records].filter(([key]) => key.startsWith("block/"));
    assert.equal(blocks.length, 80, "every block has a step record");
    for (const [key, n] of blocks) {
      assert.equal(n, 1, `block ${key} was computed once`);
    }
    assert.ok(printed <= 80, `block computations reported: ${printed}`);
    assert.equal(
      (await runScript(CHILD, args)).stdout,
      "done\n",
      "a completed job computes nothing",
    );
  },
);

test(
  "radiusJob() killed in its count and collect phases resumes to byte-identical CSR outputs",
  { timeout: 60_000 },
  async () => {
    const dir = await tempDir();
    const ref = await writeReference(dir);
    const baseline = join(dir, "baseline");
    const expected = await radiusJob(ref.matrix, {
      store: "memory:kill-radius-baseline",
      radius: 3,
      blockRows: 100,
      out: baseline,
    });
    assert.ok(expected.totalMatches > 1000);
    const store = join(dir, "store");
    const out = join(dir, "out");
    const args = ["radius", store, ref.path, out, "100", "3"];
    const phases = async () => {
      const records = await stepRecords(store, "radius-kill");
      const keys = [...records.keys()];
      return {
        count: keys.filter((k) => k.startsWith("count/")).length,
        collect: keys.filter((k) => k.startsWith("collect/")).length,
      };
    };
    // Kill once in the count phase, then twice in the collect phase.
    await killAfterLines(startScript(CHILD, args), random(3, 20));
    const first = await phases();
    assert.ok(
      first.count > 0 && first.count < 40,
      `count phase: ${first.count}`,
    );
    assert.equal(first.collect, 0);
    await killAfterLines(
      startScript(CHILD, args),
      40 - first.count + random(3, 15),
    );
    const second = await phases();
    assert.equal(second.count, 40);
    assert.ok(
      second.collect > 0 && second.collect < 40,
      `collect phase: ${second.collect}`,
    );
    await killAfterLines(startScript(CHILD, args), random(2, 8));
    const last = await runScript(CHILD, args);
    assert.equal(last.code, 0, last.stderr);
    await assertSameFiles(out, baseline, [
      "offset.npy",
      "index.npy",
      "distance.npy",
    ]);
    const records = await stepRecords(store, "radius-kill");
    const counts = [...records].filter(([k]) => k.startsWith("count/"));
    const collects = [...records].filter(([k]) => k.startsWith("collect/"));
    assert.equal(counts.length, 40);
    assert.equal(collects.length, 40);
    for (const [key, n] of [...counts, ...collects]) {
      assert.equal(n, 1, `${key} was computed once`);
    }
  },
);

test("cairn knn killed with SIGKILL resumes through the CLI", {
  timeout: 60_000,
}, async () => {
  const dir = await tempDir();
  const ref = await writeReference(dir);
  const store = join(dir, "store");
  const out = join(dir, "out");
  const args = [
    "knn",
    "--store",
    store,
    "--ref",
    ref.path,
    "--k",
    "10",
    "--block-rows",
    "50",
    "--out",
    out,
    "--job",
    "cli-kill",
    "--json",
  ];
  const computed = /"type":"step-done".*"key":"block\/.*"cached":false/;
  for (let round = 0; round < 2; round++) {
    const seen = await killAfterStderrLines(
      startScript(CLI, args),
      computed,
      random(3, 25),
    );
    assert.ok(seen < 80);
  }
  const last = await runScript(CLI, args);
  assert.equal(last.code, 0, last.stderr);
  const result = JSON.parse(last.stdout) as {
    computedBlocks: number;
    resumed: boolean;
  };
  assert.ok(result.resumed);
  assert.ok(result.computedBlocks < 80);
  const baseline = join(dir, "baseline");
  await knnJob(ref.matrix, {
    store: "memory:kill-cli-baseline",
    k: 10,
    blockRows: 50,
    out: baseline,
  });
  await assertSameFiles(out, baseline, ["index.npy", "distance.npy"]);
  const records = await stepRecords(store, "cli-kill");
  assert.equal(
    [...records.keys()].filter((k) => k.startsWith("block/")).length,
    80,
  );
  assert.ok([...records.values()].every((n) => n === 1));
});

test(
  "cairn knn stops cleanly on SIGTERM with exit code 143, and a rerun resumes",
  {
    timeout: 60_000,
  },
  async () => {
    const dir = await tempDir();
    const ref = await writeReference(dir);
    const store = join(dir, "store");
    const args = [
      "knn",
      "--store",
      store,
      "--ref",
      ref.path,
      "--k",
      "10",
      "--block-rows",
      "50",
      "--out",
      join(dir, "out"),
      "--job",
      "cli-term",
      "--json",
    ];
    const child = startScript(CLI, args);
    const done = collectOutput(child);
    let seen = 0;
    let buffer = "";
    child.stderr!.on("data", (d) => {
      buffer += d;
      const lines = buffer.split("\n");
      buffer = lines.pop()!;
      for (const line of lines) {
        if (/"type":"step-done".*"key":"block\//.test(line) && ++seen === 3) {
          // Not child.kill(): Deno then reports the signal, not the exit code.
          process.kill(child.pid!, "SIGTERM");
        }
      }
    });
    const result = await done;
    assert.equal(result.code, 143, result.stderr);
    const records = await stepRecords(store, "cli-term");
    assert.ok(records.size >= 3 && records.size < 81, `${records.size} steps`);
    const rerun = await runScript(CLI, args);
    assert.equal(rerun.code, 0, rerun.stderr);
    const report = JSON.parse(rerun.stdout) as {
      resumed: boolean;
      computedBlocks: number;
    };
    assert.ok(report.resumed);
    assert.ok(report.computedBlocks < 80);
  },
);
