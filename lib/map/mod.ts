/**
 * The map family: checkpointed, memoized `map`, `map2`, `pmap`, `imap`,
 * `walk` and streaming `mapIter`, with SafeMapper's batching and retries, plus
 * purrr-style adverbs (`safely`, `possibly`, `quietly`). Each batch is one
 * step of a cairn job, so a killed call resumes from its last batch, and
 * each item's result is kept under its content key, so later calls only
 * compute new items.
 *
 * @example Map a function that may fail, keeping failures as data
 * ```ts
 * import assert from "node:assert/strict";
 * import { map, safely } from "./mod.ts";
 * const store = "memory:map-mod-example";
 * const half = safely((x: number) => {
 *   if (x % 2) throw new Error(`${x} is odd`);
 *   return x / 2;
 * });
 * const out = await map([2, 3, 4], half, { store });
 * assert.deepEqual(out.map((r) => r.result), [1, null, 2]);
 * assert.ok(out[1]!.error?.message === "3 is odd");
 * ```
 *
 * @module
 */
export {
  imap,
  map,
  map2,
  mapIter,
  mapJobName,
  type MapResult,
  type MapResults,
  pmap,
  walk,
} from "./map.ts";
export {
  failuresOf,
  MapItemError,
  type MapOptions,
  type MapProgress,
  type MapWorkers,
} from "./options.ts";
export {
  possibly,
  quietly,
  type QuietlyResult,
  safely,
  type SafelyResult,
} from "./wrappers.ts";
export {
  describeMapRun,
  describeMapStep,
  type MapBatchStats,
  type MapRunProgress,
  type MapStepView,
} from "./describe.ts";
