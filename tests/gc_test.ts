import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import fc from "npm:fast-check@^4.3.0";
import { forgetRuns, type RetentionPolicy } from "../lib/forget.ts";
import { collectGarbage } from "../lib/gc.ts";
import { openJob, runJob } from "../lib/job.ts";
import { readValueChunks } from "../lib/output.ts";
import { chunksOf } from "../lib/records.ts";
import { replayRun } from "../lib/replay.ts";
import { verifyStore } from "../lib/verify.ts";
import { encodeValue } from "../store/cbor.ts";
import { openFsStore } from "../store/fs.ts";
import { blake3Hex } from "../store/hash.ts";
import { createMemoryStore } from "../store/memory.ts";
import type { Store } from "../store/store.ts";
import { killAfterLines, runScript, startScript } from "./child_process.ts";
import { tempDir } from "./temp.ts";
import { LONG, propertyRuns, testRandom } from "./test_seed.ts";

const GC_CHILD = new URL("./fixtures/gc_child.ts", import.meta.url);
const JOBS = ["alpha", "beta"];

/** A small value; equal `v` gives equal chunks, so runs share outputs. */
function pooled(v: number): { v: number; pad: string } {
  return { v, pad: "x".repeat(v * 7) };
}

type Op =
  | {
    kind: "run";
    job: number;
    steps: [number, number][];
    end: "completed" | "failed" | "interrupted";
  }
  | { kind: "forget"; policy: RetentionPolicy; job: number | undefined }
  | { kind: "gc" };

const policyArb: fc.Arbitrary<RetentionPolicy> = fc.record({
  keepLast: fc.integer({ min: 0, max: 2 }),
  keepWithinMs: fc.constant(0),
  keepDaily: fc.integer({ min: 0, max: 2 }),
  keepWeekly: fc.integer({ min: 0, max: 2 }),
  keepMonthly: fc.integer({ min: 0, max: 2 }),
}, { requiredKeys: [] }).filter((p) => Object.keys(p).length > 0);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("run" as const),
      job: fc.integer({ min: 0, max: JOBS.length - 1 }),
      steps: fc.uniqueArray(
        fc.tuple(
          fc.integer({ min: 0, max: 7 }),
          fc.integer({ min: 0, max: 40 }),
        ),
        { minLength: 1, maxLength: 6, selector: ([key]) => key },
      ),
      end: fc.constantFrom(
        "completed",
        "failed",
        "interrupted",
      ) as fc.Arbitrary<
        "completed" | "failed" | "interrupted"
      >,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("forget" as const),
      policy: policyArb,
      job: fc.option(fc.integer({ min: 0, max: JOBS.length - 1 }), {
        nil: undefined,
      }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: "gc" as const }) },
);

/** Run the ops; after every gc, check the store. */
async function check(store: Store, ops: Op[]): Promise<void> {
  // What each run's steps returned, by run id then key.
  const expected = new Map<string, Map<string, unknown>>();
  for (const op of [...ops, { kind: "gc" } as const]) {
    if (op.kind === "run") {
      const name = JOBS[op.job]!;
      const outputs = new Map<string, unknown>();
      const body = async (job: Awaited<ReturnType<typeof openJob>>) => {
        expected.set(job.run, outputs);
        for (const [key, v] of op.steps) {
          outputs.set(`k${key}`, await job.step(`k${key}`, () => pooled(v)));
        }
      };
      if (op.end === "interrupted") {
        const job = await openJob(name, { store, newRun: true });
        await body(job);
        await job.close();
      } else {
        await runJob(
          name,
          { store, newRun: true },
          async (job) => {
            await body(job);
            if (op.end === "failed") throw new Error("planned failure");
          },
        ).catch((error: Error) => {
          if (error.message !== "planned failure") throw error;
        });
      }
    } else if (op.kind === "forget") {
      await forgetRuns(store, {
        ...op.policy,
        ...(op.job === undefined ? {} : { jobs: [JOBS[op.job]!] }),
      });
    } else {
      // Chunks touched in the millisecond gc starts are kept by design.
      await new Promise((resolve) => setTimeout(resolve, 2));
      await collectGarbage(store, { graceMs: 0 });
      const referenced = new Set<string>();
      for (const job of await store.listJobs()) {
        for (const run of await store.listRuns(job)) {
          const state = await replayRun(store, job, run);
          const want = expected.get(run)!;
          assert.equal(state.steps.size, want.size);
          for (const [key, step] of state.steps) {
            for (const ref of chunksOf(step.output)) {
              referenced.add(ref.hash);
              assert.ok(
                await store.chunks.has(ref.hash),
                `chunk of ${job}/${run}/${key} is kept`,
              );
            }
            assert.deepEqual(
              step.output.kind === "value"
                ? await readValueChunks(store.chunks, step.output.chunks)
                : undefined,
              want.get(key),
            );
          }
        }
      }
      for await (const hash of store.chunks.list()) {
        assert.ok(referenced.has(hash), `unreferenced chunk ${hash} was swept`);
      }
      const report = await verifyStore(store, { readData: true });
      assert.deepEqual(report.problems, []);
      assert.equal(report.chunks, referenced.size);
    }
  }
}

test("collectGarbage after random runs and forgetRuns policies keeps every chunk a kept run references (memory store)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArb, { minLength: 4, maxLength: 24, size: "max" }),
      async (ops) => {
        await check(createMemoryStore(), ops);
      },
    ),
    propertyRuns(50),
  );
});

test("collectGarbage after random runs and forgetRuns policies keeps every chunk a kept run references (fs store)", async () => {
  const dir = await tempDir();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArb, { minLength: 1, maxLength: 8 }),
      async (ops) => {
        await check(await openFsStore(join(dir, `s${n++}`)), ops);
      },
    ),
    propertyRuns(6),
  );
});

/** Item i of the streams below; items of the kept and forgotten runs overlap. */
function item(i: number): { i: number; text: string } {
  return { i, text: `item ${i} `.repeat(3) };
}

/** The kept run's outputs, read back. */
async function keptOutputs(store: Store): Promise<unknown[]> {
  const [run] = await store.listRuns("keep");
  const state = await replayRun(store, "keep", run!);
  const values: unknown[] = [];
  for (const step of state.steps.values()) {
    const refs = step.output.kind === "value"
      ? [step.output.chunks]
      : step.output.items;
    for (const r of refs) values.push(await readValueChunks(store.chunks, r));
  }
  return values;
}

test("gc killed mid-sweep at random points leaves a store that verifies, with kept runs intact", async () => {
  const root = join(await tempDir(), "store");
  const store = await openFsStore(root);
  await runJob("keep", { store }, async (job) => {
    for (let i = 0; i < 30; i++) await job.step(`v${i}`, () => item(i));
    await job.stepStream("s", function* () {
      for (let i = 0; i < 100; i++) yield item(i);
    });
  });
  // More chunks (1,900 with CAIRN_LONG, 1,300 by default: four kills of at
  // most 240 examined chunks each leave some unswept), written straight into
  // place (fast; no fsync needed for a test), then referenced by a run that
  // is forgotten: only items 0-99 stay referenced.
  const total = LONG ? 2000 : 1400;
  for (let i = 100; i < total; i++) {
    const bytes = encodeValue(item(i));
    const hash = await blake3Hex(bytes);
    await mkdir(join(root, "chunks", hash.slice(0, 2)), { recursive: true });
    await writeFile(join(root, "chunks", hash.slice(0, 2), hash), bytes, {
      mode: 0o444,
    });
  }
  await runJob("old", { store }, async (job) => {
    await job.stepStream("all", function* () {
      for (let i = 0; i < total; i++) yield item(i);
    });
  });
  const forgot = await forgetRuns(store, { jobs: ["old"], keepLast: 0 });
  assert.equal(forgot.remove.length, 1);
  const expected = await keptOutputs(store);
  assert.equal(expected.length, 130);
  const count = async () => {
    let n = 0;
    for await (const _ of store.chunks.list()) n++;
    return n;
  };
  assert.equal(await count(), total);

  const { between } = testRandom("gc kill points");
  for (let round = 0; round < 4; round++) {
    const child = startScript(GC_CHILD, [root]);
    const out = await killAfterLines(child, between(1, 12));
    assert.ok(
      !out.includes("done"),
      `round ${round} was killed before it finished`,
    );
    const report = await verifyStore(store, { readData: true });
    assert.deepEqual(report.problems, [], `round ${round}`);
    assert.deepEqual(await keptOutputs(store), expected);
  }
  // A gc killed between moving a chunk aside and deleting it leaves it in
  // tmp/ (".gc-trash"); the next gc puts it back first, then judges it.
  const movedAside =
    (await readdir(join(root, "tmp"))).filter((f) => f.endsWith(".gc-trash"))
      .length;
  const left = await count() + movedAside;
  assert.ok(left < total, "the killed rounds swept some chunks");
  const finish = await runScript(GC_CHILD, [root]);
  assert.equal(finish.code, 0, finish.stderr);
  assert.match(finish.stdout, new RegExp(`done ${left - 100}\\n$`));
  assert.equal(await count(), 100, "only the kept run's chunks remain");
  assert.deepEqual((await verifyStore(store, { readData: true })).problems, []);
  assert.deepEqual(await keptOutputs(store), expected);
});
