import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import {
  checkTable,
  formatTable,
  runCampaign,
  TABLE_BEGIN,
  TABLE_END,
} from "../scripts/torture.ts";
import { Tally } from "../scripts/_torture_core.ts";
import { map } from "../lib/map/mod.ts";
import {
  loadPipelineConfig,
  pipelineOutput,
  runPipeline,
} from "../lib/pipeline/mod.ts";
import { jsonlNormalize, runProcessor } from "../lib/processor/mod.ts";
import { verifyStore } from "../lib/verify.ts";
import { openStore } from "../lib/open_store.ts";
import {
  countSyncs,
  type PowerCutJob,
  PowerCutModel,
  powerCutTrial,
} from "../scripts/power_cut.ts";
import { tempDir } from "./temp.ts";
import { testRandom } from "./test_seed.ts";

test("runCampaign() slice: SIGKILLs and power cuts of a plain job lose nothing", async () => {
  const { seed } = testRandom("torture slice");
  const result = await runCampaign({
    seed,
    kills: 2,
    only: ["kills", "power"],
    families: ["plain (runJob)"],
  });
  assert.deepEqual(
    result.tally.findings,
    [],
    `replay with deno task torture --seed ${seed}`,
  );
  const kills = result.tally.rows.get("SIGKILL, rerun\u0000plain (runJob)");
  assert.ok((kills?.kills ?? 0) >= 1, `seed ${seed}: no kill landed`);
  assert.equal(kills?.["lost items"], 0);
  const cuts = result.tally.rows.get(
    "power cut (unsynced writes dropped)\u0000plain (runJob)",
  );
  assert.equal(cuts?.cuts, 8);
  assert.equal(cuts?.["acknowledged steps lost"], 0);
  assert.deepEqual(checkTable(formatTable(result)), []);
});

test("checkTable() accepts the script's table and refuses a hand-edited one", () => {
  const tally = new Tally();
  tally.add("SIGKILL, rerun", "map", "kills", 3);
  tally.add("SIGKILL, rerun", "map", "corrupt outputs", 0);
  const table = formatTable({
    seed: 7,
    tally,
    command: "deno task torture --seed 7 --kills 3",
  });
  assert.deepEqual(checkTable(table), []);
  assert.notDeepEqual(
    checkTable(table.replace("3 kills", "lots of kills")),
    [],
  );
  assert.notDeepEqual(checkTable(table.replace(TABLE_END, "")), []);
});

test("docs/reliability.md holds the table scripts/torture.ts writes", async () => {
  const text = await readFile(
    new URL("../docs/reliability.md", import.meta.url),
    "utf8",
  );
  const begin = text.indexOf(TABLE_BEGIN);
  const end = text.indexOf(TABLE_END);
  assert.ok(begin >= 0 && end > begin, "the torture marks are missing");
  assert.deepEqual(
    checkTable(text.slice(begin, end + TABLE_END.length)),
    [],
  );
});

test("map() recomputes a batch whose chunk was corrupted in a completed run", async () => {
  const dir = await tempDir();
  const items = Array.from({ length: 200 }, (_, i) => i);
  const first = await map(items, (x: number) => x * 3, {
    store: dir,
    batchSize: 50,
    name: "flip",
  });
  let flipped = 0;
  for (const prefix of await readdir(join(dir, "chunks"))) {
    for (const name of await readdir(join(dir, "chunks", prefix))) {
      const path = join(dir, "chunks", prefix, name);
      const bytes = await readFile(path);
      bytes[bytes.length >> 1]! ^= 0x10;
      await writeFile(path, bytes);
      flipped++;
    }
  }
  assert.ok(flipped > 0);
  let calls = 0;
  const again = await map(items, (x: number) => {
    calls++;
    return x * 3;
  }, { store: dir, batchSize: 50, name: "flip" });
  assert.deepEqual(again, first);
  assert.ok(calls > 0, "nothing was recomputed");
});

test("FsChunkStore.put() of a chunk whose stored copy is corrupt replaces the copy", async () => {
  const { openFsStore } = await import("../store/fs.ts");
  const dir = await tempDir();
  const store = await openFsStore(dir);
  const bytes = new TextEncoder().encode("the same output, twice");
  const { hash } = await store.chunks.put(bytes);
  const path = join(dir, "chunks", hash.slice(0, 2), hash);
  const damaged = await readFile(path);
  damaged[3]! ^= 1;
  await writeFile(path, damaged);
  const again = await store.chunks.put(bytes);
  assert.equal(again.hash, hash);
  assert.equal(again.stored, true, "a damaged copy is not a dedup hit");
  assert.deepEqual(await store.chunks.get(hash), bytes);
});

const verifyDir = async (dir: string) =>
  (await verifyStore(await openStore(join(dir, "store")), { readData: true }))
    .problems.map((p) => JSON.stringify(p));

test("runPipeline() resumes a run cut by power when the next run has the same pid", async () => {
  // In process, the rebooted run has the crashed run's pid and host, as a
  // restarted container's pid 1 does: the crashed run must not look live.
  const base = await tempDir();
  const components =
    new URL("./fixtures/pipeline_components.ts", import.meta.url)
      .pathname;
  await writeFile(
    join(base, "p.conf"),
    `pipeline {
  pipeline-name = "Same pid"
  checkpoint { enabled = true, auto-resume = true }
  pipeline-components = [
    { instance-type = "${components}#Source", instance-name = Source, instance-config { n = 6 } }
    { instance-type = "${components}#Slow", instance-name = Slow, instance-config { parts = 3 } }
    { instance-type = "${components}#Sum", instance-name = Sum }
  ]
}
`,
  );
  const config = await loadPipelineConfig(join(base, "p.conf"));
  const runs: string[] = [];
  const job: PowerCutJob = async (dir, done) => {
    const store = join(dir, "store");
    const run = await runPipeline(config, {
      store,
      onEvent: (e) => {
        if (e.type === "step-done") done(e.key, e.cached);
      },
    });
    runs.push(run.resumedFrom ?? "");
    return new TextEncoder().encode(
      JSON.stringify(await pipelineOutput(run.runId, { store })),
    );
  };
  // The cut falls at the first sync after Source was reported done.
  const probe = new PowerCutModel(join(base, "probe"));
  await mkdir(probe.root);
  await probe.start();
  let cutAt = 0;
  let output: Uint8Array;
  try {
    output = await job(probe.root, (key) => {
      if (key === "0:Source") cutAt = probe.syncs + 1;
    });
  } finally {
    probe.stop();
  }
  assert.ok(
    cutAt > 1 && cutAt < probe.syncs,
    `cut at ${cutAt} of ${probe.syncs}`,
  );
  runs.length = 0;
  const o = await powerCutTrial(
    [join(base, "a"), join(base, "b")],
    cutAt,
    job,
    output,
    verifyDir,
  );
  assert.equal(o.cutAt, cutAt);
  assert.equal(o.error, undefined);
  assert.deepEqual(o.lost, [], "steps reported done were computed again");
  assert.ok(o.sameOutput);
  assert.deepEqual(o.problems, []);
  assert.notEqual(runs.at(-1), "", "the rerun did not resume the cut run");
});

test("runProcessor() output in a new directory survives a power cut after it returns", async () => {
  const base = await tempDir();
  const rows = join(base, "rows.jsonl");
  await writeFile(
    rows,
    Array.from({ length: 30 }, (_, i) => JSON.stringify({ id: i })).join("\n"),
  );
  const files = async (dir: string) =>
    new Uint8Array(await readFile(join(dir, "out", "new", "out.jsonl")));
  const job: PowerCutJob = async (dir) => {
    await runProcessor(jsonlNormalize, {
      store: join(dir, "store"),
      dataset: "rows",
      input: rows,
      out: join(dir, "out", "new", "out.jsonl"),
      params: { schema: { type: "object", required: ["id"] } },
      checkpointEvery: 10,
      maxRetries: 0,
    });
    return await files(dir);
  };
  const { syncs, output } = await countSyncs(join(base, "ref"), job);
  assert.ok(output.length > 0);
  const o = await powerCutTrial(
    [join(base, "a"), join(base, "b")],
    syncs + 1,
    job,
    output,
    verifyDir,
    files,
  );
  assert.equal(o.cutAt, 0, "the cut fell after the run returned");
  assert.equal(o.outputDurable, true, "the output file was lost");
  assert.ok(o.sameOutput);
  assert.deepEqual(o.problems, []);
});

test("FsChunkStore.put() deduplicating a chunk whose publish is in flight returns only once its directory is synced", async () => {
  const { openFsStore } = await import("../store/fs.ts");
  const { setSyncObserver } = await import("../store/files.ts");
  const dir = await tempDir();
  const store = await openFsStore(dir);
  const bytes = new TextEncoder().encode(
    "the same bytes, from two steps at once",
  );
  let second: Promise<unknown> | undefined;
  let settledDuringSync: boolean | undefined;
  const previous = setSyncObserver(async (path) => {
    // The first put's sync of the chunk's directory: the name is there, not
    // yet durable. A second put of the same bytes must not return now.
    if (second !== undefined || !/chunks\/[0-9a-f]{2}$/.test(path)) return;
    let settled = false;
    second = store.chunks.put(bytes).finally(() => {
      settled = true;
    });
    // Give it time to finish if it does not wait (no wall-clock assertion:
    // a slow machine can only hide the bug, never fail the fixed code).
    await Promise.race([second, new Promise((r) => setTimeout(r, 200))]);
    settledDuringSync = settled;
  });
  try {
    const first = await store.chunks.put(bytes);
    assert.equal(first.stored, true);
    assert.ok(second !== undefined, "the chunk directory was never synced");
    assert.equal(
      settledDuringSync,
      false,
      "a dedup hit returned before the chunk's name was durable",
    );
    assert.deepEqual(
      await second,
      { hash: first.hash, size: bytes.length, stored: false },
    );
  } finally {
    setSyncObserver(previous);
  }
});

test("FsChunkStore.put() deduplicating a chunk another process renamed into place syncs its name before it returns", async () => {
  const { openFsStore } = await import("../store/fs.ts");
  const { setSyncObserver } = await import("../store/files.ts");
  const { blake3Hex } = await import("../store/hash.ts");
  const dir = await tempDir();
  const store = await openFsStore(dir);
  const bytes = new TextEncoder().encode("published by another process");
  const hash = await blake3Hex(bytes);
  // What the other process did: its chunk written and renamed into place,
  // its directory not synced yet (it could be SIGSTOPped right there).
  const prefix = join(dir, "chunks", hash.slice(0, 2));
  await mkdir(prefix, { recursive: true });
  await writeFile(join(dir, "tmp", "other"), bytes);
  await rename(join(dir, "tmp", "other"), join(prefix, hash));
  const synced: string[] = [];
  const previous = setSyncObserver((path) => {
    synced.push(path);
    return Promise.resolve();
  });
  try {
    const put = await store.chunks.put(bytes);
    assert.deepEqual(put, { hash, size: bytes.length, stored: false });
  } finally {
    setSyncObserver(previous);
  }
  assert.ok(
    synced.some((p) => resolve(p) === resolve(prefix)),
    `the dedup hit synced the chunk's directory (synced: ${synced.join(", ")})`,
  );
  assert.ok(
    synced.some((p) => resolve(p) === resolve(dir, "chunks")),
    "and the prefix directory's own name",
  );
});

test("FsChunkStore.put() into a chunk directory another put just made returns only once its name is durable", async () => {
  const { openFsStore } = await import("../store/fs.ts");
  const { setSyncObserver } = await import("../store/files.ts");
  const { blake3Hex } = await import("../store/hash.ts");
  const dir = await tempDir();
  const store = await openFsStore(dir);
  const text = (i: number) => new TextEncoder().encode(`chunk ${i}`);
  const a = text(0);
  const prefix = (await blake3Hex(a)).slice(0, 2);
  let i = 1;
  while ((await blake3Hex(text(i))).slice(0, 2) !== prefix) i++;
  const b = text(i);
  let second: Promise<unknown> | undefined;
  let durableAfterStart = false;
  let settledUndurable: boolean | undefined;
  const previous = setSyncObserver(async (path) => {
    if (!/[/\\]chunks$/.test(path)) return;
    if (second !== undefined) {
      // A sync of chunks/ after the second put started covers the new name.
      durableAfterStart = true;
      return;
    }
    // The first put made chunks/<prefix> and syncs chunks/: the name is
    // there, not yet durable. A put into it must not return before it is.
    second = store.chunks.put(b).finally(() => {
      settledUndurable ??= !durableAfterStart;
    });
    await Promise.race([second, new Promise((r) => setTimeout(r, 200))]);
  });
  try {
    await store.chunks.put(a);
    assert.ok(second !== undefined, "chunks/ was never synced");
    await second;
    assert.equal(
      settledUndurable,
      false,
      "a chunk was stored in a directory whose name was not durable",
    );
  } finally {
    setSyncObserver(previous);
  }
});
