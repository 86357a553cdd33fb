/**
 * The map family: `map` over 40 ids in checkpointed batches of 10, with
 * retries for a flaky call and `onError: "skip"` for an item that always
 * fails. A second call over the same ids plus three new ones computes only
 * the new ones (and tries the failed one again).
 *
 * ```sh
 * deno run -A examples/map_batches.ts [--store DIR]   # or: bun run examples/map_batches.ts
 * ```
 *
 * Without `--store` it uses a fresh temporary store and removes it after.
 *
 * @module
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { failuresOf, map, type MapOptions } from "../mod.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { store: { type: "string" } },
});
const temp = values.store === undefined
  ? await mkdtemp(join(tmpdir(), "cairn-example-"))
  : undefined;
const store = values.store ?? join(temp!, "store");

let calls = 0;
const attempts = new Map<number, number>();

/** A stand-in for a remote call: ids 3, 10, 17, … fail once; id 13 always fails. */
async function fetchScore(id: number): Promise<number> {
  calls++;
  const attempt = (attempts.get(id) ?? 0) + 1;
  attempts.set(id, attempt);
  await new Promise((ok) => setTimeout(ok, 1));
  if (id % 7 === 3 && attempt === 1) throw new Error(`Timeout fetching ${id}`);
  if (id === 13) throw new Error(`No score for id ${id}`);
  return id * 10;
}

const options = {
  store,
  name: "fetch-score", // the function's identity for memo hits across calls
  batchSize: 10, // one step (and one results chunk) per 10 items
  retries: 2, // after the first attempt
  retryDelayMs: 10, // doubles each retry
  onError: "skip", // a failed item's slot holds its MapItemError
  progress: process.stderr, // "[25%] items 1–10 of 40" lines; the library prints nothing itself
} satisfies MapOptions;

const ids = Array.from({ length: 40 }, (_, i) => i);
const results = await map(ids, fetchScore, options);
const failed = failuresOf(results);
console.log(
  `first call: ${
    results.length - failed.length
  } ok, ${failed.length} failed, ${calls} calls; ${failed[0]?.message}`,
);

calls = 0;
const more = await map([...ids, 40, 41, 42], fetchScore, options);
console.log(
  `second call: ${more.length} results, ${calls} calls (3 new ids, and id 13 tried again)`,
);
if (temp !== undefined) await rm(temp, { recursive: true });
