import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { tempDir } from "./temp.ts";
import {
  countSyncs,
  type PowerCutJob,
  PowerCutModel,
  powerCutTrial,
} from "../scripts/power_cut.ts";
import { openFsStore } from "../store/fs.ts";
import { runJob } from "../lib/job.ts";
import { knnJob } from "../lib/knn/mod.ts";
import { writeNpyFile } from "../lib/io/npy.ts";
import { verifyStore } from "../lib/verify.ts";
import { openStore } from "../lib/open_store.ts";

const verify = async (dir: string) => {
  const report = await verifyStore(await openStore(join(dir, "store")), {
    readData: true,
  });
  return report.problems.map((p) => JSON.stringify(p));
};

test("openFsStore() makes a new store's own name durable before its first run", async () => {
  const base = await tempDir();
  try {
    const model = new PowerCutModel(base);
    await model.start();
    try {
      await openFsStore(join(base, "a", "store"));
    } finally {
      model.stop();
    }
    await model.materialize(`${base}-img`);
    const config = await readFile(
      join(`${base}-img`, "a", "store", "config"),
      "utf8",
    );
    assert.match(config, /cairn-store/);
  } finally {
    await rm(`${base}-img`, { recursive: true, force: true });
    await rm(base, { recursive: true, force: true });
  }
});

test("runJob() steps reported done survive a power cut at every sync", async () => {
  const base = await tempDir();
  try {
    const job: PowerCutJob = async (dir, done) =>
      new TextEncoder().encode(JSON.stringify(
        await runJob("p", {
          store: join(dir, "store"),
          onEvent: (e) => {
            if (e.type === "step-done") done(e.key, e.cached);
          },
        }, async (job) => {
          const out = [];
          for (let i = 0; i < 4; i++) {
            out.push(await job.step(`s${i}`, () => ({ i, v: "x".repeat(i) })));
          }
          return out;
        }),
      ));
    const { syncs, output } = await countSyncs(join(base, "ref"), job);
    assert.ok(syncs > 10, `only ${syncs} syncs`);
    let acknowledged = 0;
    for (let cut = 1; cut <= syncs + 1; cut++) {
      const o = await powerCutTrial(
        [join(base, `${cut}a`), join(base, `${cut}b`)],
        cut,
        job,
        output,
        verify,
      );
      assert.equal(o.error, undefined, `cut at ${cut}`);
      assert.deepEqual(o.lost, [], `cut at ${cut}`);
      assert.deepEqual(o.problems, [], `cut at ${cut}`);
      assert.ok(o.sameOutput, `cut at ${cut}`);
      if (cut > syncs) acknowledged++;
    }
    assert.equal(acknowledged, 1);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

test("knnJob() output files survive a power cut right after it returns", async () => {
  const base = await tempDir();
  try {
    await mkdir(join(base, "in"));
    const ref = join(base, "in", "ref.npy");
    const data = new Float32Array(30 * 3).map((_, i) => Math.sin(i * 1.3));
    await writeNpyFile(ref, data, [30, 3]);
    const files = async (dir: string) =>
      new Uint8Array(Buffer.concat([
        await readFile(join(dir, "out", "nested", "index.npy")),
        await readFile(join(dir, "out", "nested", "distance.npy")),
      ]));
    const job: PowerCutJob = async (dir) => {
      await knnJob(ref, {
        store: join(dir, "store"),
        out: join(dir, "out", "nested"),
        k: 2,
        blockRows: 10,
        job: "k",
      });
      return await files(dir);
    };
    const { syncs, output } = await countSyncs(join(base, "ref"), job);
    const o = await powerCutTrial(
      [join(base, "a"), join(base, "b")],
      syncs + 1,
      job,
      output,
      verify,
      files,
    );
    assert.equal(o.cutAt, 0);
    assert.equal(o.outputDurable, true);
    assert.ok(o.sameOutput);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
