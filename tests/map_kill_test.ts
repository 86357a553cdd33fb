import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { replayJob } from "../lib/replay.ts";
import { openFsStore } from "../store/fs.ts";
import { runScript, startScript } from "./child_process.ts";
import { tempDir } from "./temp.ts";
import { testRandom } from "./test_seed.ts";

const CHILD = new URL("./fixtures/map_kill_child.ts", import.meta.url);
const ITEMS = 5000;
const BATCH = 100;

function sideEffects(path: string): number[] {
  if (!existsSync(path)) return [];
  const lines = readFileSync(path, "utf8").split("\n");
  lines.pop(); // the text after the last newline (empty, or a line being written)
  return lines.map(Number);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Kill a map() child at random points (`rounds` times), rerun it to the end,
 * and check the results and that repeats stay within the batches in flight
 * (at most `concurrency` per kill).
 */
async function killAndResume(
  concurrency: number,
  rounds: number,
  label: string,
): Promise<void> {
  const CONCURRENCY = concurrency;
  const dir = await tempDir();
  const root = join(dir, "store");
  const side = join(dir, "side-effects.txt");
  const resultFile = join(dir, "results.json");
  const args = [root, side, resultFile, String(concurrency)];
  let kills = 0;
  // Kill points come from a printed seed: CAIRN_SEED=<seed> replays them.
  const { seed, random } = testRandom(label);
  const log: string[] = [`seed ${seed} (replay with CAIRN_SEED=${seed})`];
  for (let round = 0; round < rounds; round++) {
    const before = sideEffects(side).length;
    const target = before + 150 + Math.floor(random() * 900);
    const child = startScript(CHILD, args);
    let stderr = "";
    child.stderr!.on("data", (d) => (stderr += d));
    const closed = new Promise<number | null>((resolve) =>
      child.on("close", (code) => resolve(code))
    );
    let exited = false;
    void closed.then(() => (exited = true));
    while (!exited && sideEffects(side).length < target) await sleep(5);
    if (exited) {
      assert.equal(await closed, 0, `the child failed: ${stderr}`);
      log.push(`round ${round}: finished before the kill`);
      break;
    }
    child.kill("SIGKILL");
    await closed;
    kills++;
    log.push(`round ${round}: killed at ${sideEffects(side).length} calls`);
  }
  const final = await runScript(CHILD, args);
  assert.equal(final.code, 0, `the final run failed: ${final.stderr}`);

  const results = JSON.parse(readFileSync(resultFile, "utf8")) as number[];
  const expected = Array.from({ length: ITEMS }, (_, i) => i * i);
  assert.deepEqual(results, expected, "results equal Array.map");

  const calls = sideEffects(side);
  const counts = new Array<number>(ITEMS).fill(0);
  for (const i of calls) counts[i]!++;
  assert.ok(counts.every((c) => c >= 1), "every item ran");
  const extra = calls.length - ITEMS;
  assert.ok(kills >= 1, `at least one kill happened (${log.join("; ")})`);
  assert.ok(
    extra <= kills * BATCH * CONCURRENCY,
    `${extra} repeated calls over ${kills} kills (${log.join("; ")})`,
  );
  assert.ok(
    counts.every((c) => c <= 1 + kills),
    `no item ran more than once per kill (${log.join("; ")})`,
  );
  const repeatedBatches = new Set(
    counts.flatMap((c, i) => (c > 1 ? [Math.floor(i / BATCH)] : [])),
  );
  assert.ok(
    repeatedBatches.size <= kills * CONCURRENCY,
    `repeats fall in ${repeatedBatches.size} batches, at most ${CONCURRENCY} per kill (${
      log.join("; ")
    })`,
  );
  const store = await openFsStore(root);
  const [job] = await store.listJobs();
  const runs = await replayJob(store, job!);
  assert.equal(runs.length, 1, "every rerun resumed the same run");
  assert.equal(runs[0]!.status, "completed");
  assert.equal(runs[0]!.steps.size, ITEMS / BATCH);
  assert.equal(
    runs[0]!.attempts,
    kills + 1,
    "one attempt per process that ran",
  );
  if (process.env.MAP_KILL_DEBUG) {
    console.error(`${log.join("; ")}; ${extra} repeated calls`);
  }
}

test("map() survives SIGKILL at random points: each item runs once except batches in flight at a kill", async () => {
  await killAndResume(2, 5, "map() kill points");
});

// At concurrency 8, up to 8 batches are in flight, several of them writing
// their chunks and records while later ones compute: a kill there still loses
// no item and repeats none beyond the batches in flight.
test("map() survives SIGKILL at concurrency 8 while batch writes overlap later batches", async () => {
  await killAndResume(8, 3, "map() kill points, concurrency 8");
});
