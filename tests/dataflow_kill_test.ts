import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { replayJob } from "../lib/replay.ts";
import { openFsStore } from "../store/fs.ts";
import { killAfterLines, runScript, startScript } from "./child_process.ts";
import { tempDir } from "./temp.ts";
import { LONG, testRandom } from "./test_seed.ts";

const CHILD = new URL("./fixtures/dataflow_kill_child.ts", import.meta.url);

async function finish(store: string, phase: number): Promise<string> {
  const done = await runScript(CHILD, [store, String(phase)]);
  assert.equal(done.code, 0, done.stderr);
  const line = done.stdout.split("\n").find((l) => l.startsWith("result "));
  assert.ok(line, done.stdout);
  return line;
}

test("Dataflow.run() killed by SIGKILL mid-run, then rerun, equals an uninterrupted run", async () => {
  const { seed, random } = testRandom("dataflow kill");
  const dir = await tempDir();
  const reference = join(dir, "reference");
  await finish(reference, 1);
  const expected = await finish(reference, 2);
  // Phase 2 makes 15 map calls, 6 group calls and 1 node call.
  for (let attempt = 0; attempt < (LONG ? 15 : 3); attempt++) {
    const store = join(dir, `killed-${attempt}`);
    await finish(store, 1);
    const killAt = 1 + Math.floor(random() * 21);
    const printed = await killAfterLines(
      startScript(CHILD, [store, "2"]),
      killAt,
    );
    assert.ok(!printed.includes("result "), `killed after ${killAt} calls`);
    assert.equal(
      await finish(store, 2),
      expected,
      `seed ${seed}, kill after ${killAt} calls`,
    );
    const runs = await replayJob(await openFsStore(store), "killme");
    assert.equal(runs.length, 2, "the killed run was resumed, not replaced");
    assert.equal(runs[1]!.status, "completed");
    assert.ok(runs[1]!.attempts >= 2);
  }
});
