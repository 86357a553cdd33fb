/**
 * A resumable exact kNN job: run it, stop it half way, run it again.
 *
 * ```sh
 * deno run -A examples/knn_resumable.ts      # or: bun run examples/knn_resumable.ts
 * ```
 *
 * The second run resumes the same job run: the blocks the first run finished
 * are read back from the store, only the rest are computed, and the output
 * files are the same bytes an uninterrupted run writes.
 *
 * @module
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  abortOnSignals,
  InterruptedError,
  knnJob,
  type KnnJobOptions,
  matrixFrom,
  planKnnJob,
} from "../mod.ts";

const dir = await mkdtemp(join(tmpdir(), "cairn-knn-example-"));
const rows = 5_000;
const dim = 32;
const data = new Float32Array(rows * dim).map((_, i) =>
  Math.sin(i * 0.618) * Math.cos(i * 0.013)
);
const ref = matrixFrom(data, dim);
const options: KnnJobOptions = {
  k: 10,
  store: join(dir, "store"),
  out: join(dir, "knn"),
  memoryBudgetBytes: 16 * 1024 * 1024,
};
const plan = planKnnJob(ref, {
  k: 10,
  memoryBudgetBytes: options.memoryBudgetBytes!,
});
console.log(
  `plan: ${plan.blocks} blocks of ${plan.blockRows} rows, ${plan.steps} steps`,
);

// First run: stop after three blocks, as Ctrl-C would.
const stop = new AbortController();
let blocks = 0;
try {
  await knnJob(ref, {
    ...options,
    signal: stop.signal,
    onEvent(event) {
      if (
        event.type === "step-done" && event.key.startsWith("block/") &&
        ++blocks === 3
      ) {
        stop.abort();
      }
    },
  });
} catch (error) {
  if (!(error instanceof InterruptedError)) throw error;
  console.log(`stopped after ${blocks} blocks: ${error.message}`);
}

// Second run: resumes, computing only the blocks that are missing. Ctrl-C
// stops it cleanly (rerun to resume).
const signals = abortOnSignals({ exitOnSecondSignal: true });
const resumed = await knnJob(ref, { ...options, signal: signals.signal });
signals.dispose();
console.log(
  `resumed run ${resumed.run}: computed ${resumed.computedBlocks} of ${resumed.plan.blocks} blocks`,
);
console.log(`wrote ${Object.values(resumed.files).join(", ")}`);

// Third run: already complete, returns at once.
const again = await knnJob(ref, options);
console.log(
  `rerun: already complete = ${again.alreadyCompleted}, computed ${again.computedBlocks}`,
);
await rm(dir, { recursive: true });
