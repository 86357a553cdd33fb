import { test } from "node:test";
import assert from "node:assert/strict";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  checkTable,
  formatTable,
  runCampaign,
  TABLE_BEGIN,
  TABLE_END,
} from "../scripts/torture.ts";
import { Tally } from "../scripts/_torture_core.ts";
import { map } from "../lib/map/mod.ts";
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
