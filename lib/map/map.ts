/**
 * Checkpointed, memoized mapping in the manner of purrr and SafeMapper: each
 * batch of items is one step of a cairn job (one results chunk and one
 * manifest record), so a killed call resumes where it stopped, and every
 * item's result is kept under its content key, so a later call over mostly
 * the same items (in any job) only computes the new ones.
 *
 * @module
 */
import {
  type BatchOut,
  inputHashOf,
  jobIdentity,
  type MapOp,
  type MapSource,
  resolveSettings,
  runMap,
} from "./_engine.ts";
import type { MapItemError, MapOptions } from "./options.ts";

/** What a map call resolves to: results in input order; with `onError: "skip"`, failed slots hold their {@linkcode MapItemError}. */
export type MapResults<R, O extends MapOptions> = O extends { onError: "skip" }
  ? (R | MapItemError)[]
  : R[];

/** One result of {@linkcode mapIter}: with `onError: "skip"`, a failed item yields its {@linkcode MapItemError}. */
export type MapResult<R, O extends MapOptions> = O extends { onError: "skip" }
  ? R | MapItemError
  : R;

function requireArray(what: string, items: unknown): readonly unknown[] {
  if (!Array.isArray(items)) {
    const got = items === null
      ? "null"
      : typeof items === "object"
      ? (items.constructor?.name ?? "object")
      : typeof items;
    throw new TypeError(
      `Cannot ${what}: items must be an array, got ${got}; use Array.from() or mapIter() for other iterables`,
    );
  }
  return items;
}

/**
 * Run a map call over `length` indexed items (item `i` calls `fn(...at(i))`)
 * to the end, and gather the results in input order: none unless
 * `keepResults`.
 */
async function collect(
  op: MapOp,
  length: number,
  at: (i: number) => unknown[],
  fn: unknown,
  options: MapOptions | undefined,
  keepResults = true,
): Promise<unknown[]> {
  const out: unknown[] = new Array(keepResults ? length : 0);
  const batches = runMap({
    op,
    source: indexed(length, at),
    fn: fn as (...args: unknown[]) => unknown,
    options: options ?? {},
    keepResults,
    readAhead: 16,
    ordered: false,
  });
  for (;;) {
    const next = await batches.next();
    if (next.done) break;
    const batch: BatchOut = next.value;
    for (let j = 0; j < batch.values.length; j++) {
      out[batch.start + j] = batch.values[j];
    }
  }
  return out;
}

function indexed(length: number, at: (i: number) => unknown[]): MapSource {
  return { kind: "indexed", length, at };
}

/**
 * Map `fn` over `items`, one checkpointed batch at a time. A killed or
 * interrupted call resumes from its last recorded batch when called again;
 * items computed by any earlier call with the same function identity and
 * `version` are not computed again.
 *
 * @param items The items (any CBOR-encodable values).
 * @param fn Computes one result (any CBOR-encodable value); may be async.
 * @param options Store, job, batching, retry, concurrency, worker and memo options.
 * @returns The results in input order.
 *
 * @example Square numbers; a second call computes nothing
 * ```ts
 * import assert from "node:assert/strict";
 * import { map } from "./map.ts";
 * let calls = 0;
 * const square = (x: number) => (calls++, x * x);
 * const options = { store: "memory:map-example", batchSize: 2 };
 * assert.deepEqual(await map([1, 2, 3], square, options), [1, 4, 9]);
 * assert.deepEqual(await map([1, 2, 3, 4], square, options), [1, 4, 9, 16]);
 * assert.ok(calls === 4);
 * ```
 */
export async function map<T, R, O extends MapOptions = MapOptions>(
  items: readonly T[],
  fn: (item: T) => R | PromiseLike<R>,
  options?: O,
): Promise<MapResults<R, O>> {
  const list = requireArray("map", items);
  return await collect(
    "map",
    list.length,
    (i) => [list[i]],
    fn,
    options,
  ) as MapResults<R, O>;
}

/**
 * Map `fn` over two lists in parallel: `fn(xs[i], ys[i])`.
 *
 * @param xs The first arguments.
 * @param ys The second arguments; same length as `xs`.
 * @param fn Computes one result; may be async.
 * @param options As for {@linkcode map}.
 * @returns The results in input order.
 *
 * @example Pair up two lists
 * ```ts
 * import assert from "node:assert/strict";
 * import { map2 } from "./map.ts";
 * const sums = await map2([1, 2], [10, 20], (x, y) => x + y, { store: "memory:map2-example" });
 * assert.deepEqual(sums, [11, 22]);
 * ```
 */
export async function map2<X, Y, R, O extends MapOptions = MapOptions>(
  xs: readonly X[],
  ys: readonly Y[],
  fn: (x: X, y: Y) => R | PromiseLike<R>,
  options?: O,
): Promise<MapResults<R, O>> {
  const a = requireArray("map2", xs);
  const b = requireArray("map2", ys);
  if (a.length !== b.length) {
    throw new RangeError(
      `Cannot map2: xs has ${a.length} items and ys has ${b.length}; pass lists of the same length`,
    );
  }
  return await collect(
    "map2",
    a.length,
    (i) => [a[i], b[i]],
    fn,
    options,
  ) as MapResults<R, O>;
}

/**
 * Map `fn` over several lists in parallel: `fn(lists[0][i], lists[1][i], …)`.
 *
 * @param lists One or more lists of the same length.
 * @param fn Receives one element from each list; may be async.
 * @param options As for {@linkcode map}.
 * @returns The results in input order.
 *
 * @example One element from each list
 * ```ts
 * import assert from "node:assert/strict";
 * import { pmap } from "./map.ts";
 * const out = await pmap([[1, 2], ["a", "b"], [true, false]] as const, (n, s, f) => `${n}${s}${f}`, {
 *   store: "memory:pmap-example",
 * });
 * assert.deepEqual(out, ["1atrue", "2bfalse"]);
 * ```
 */
export async function pmap<
  L extends readonly (readonly unknown[])[],
  R,
  O extends MapOptions = MapOptions,
>(
  lists: L,
  fn: (
    ...args: { -readonly [K in keyof L]: L[K][number] }
  ) => R | PromiseLike<R>,
  options?: O,
): Promise<MapResults<R, O>> {
  if (!Array.isArray(lists) || lists.length === 0) {
    throw new TypeError(
      `Cannot pmap: lists must be a non-empty array of arrays; use map() for a single list`,
    );
  }
  const all = lists.map((l, k) => requireArray(`pmap list ${k}`, l));
  const length = all[0]!.length;
  const bad = all.findIndex((l) => l.length !== length);
  if (bad >= 0) {
    throw new RangeError(
      `Cannot pmap: list 0 has ${length} items and list ${bad} has ${
        all[bad]!.length
      }; pass lists of the same length`,
    );
  }
  return await collect(
    "pmap",
    length,
    (i) => all.map((l) => l[i]),
    fn,
    options,
  ) as MapResults<R, O>;
}

/**
 * Map `fn` over items and their global 0-based indices: `fn(items[i], i)`.
 * The index is the item's position in `items`, not within its batch.
 *
 * @param items The items.
 * @param fn Receives an item and its index; may be async.
 * @param options As for {@linkcode map}.
 * @returns The results in input order.
 *
 * @example Indices are global across batches
 * ```ts
 * import assert from "node:assert/strict";
 * import { imap } from "./map.ts";
 * const out = await imap(["a", "b", "c"], (x, i) => `${i}:${x}`, { store: "memory:imap-example", batchSize: 2 });
 * assert.deepEqual(out, ["0:a", "1:b", "2:c"]);
 * ```
 */
export async function imap<T, R, O extends MapOptions = MapOptions>(
  items: readonly T[],
  fn: (item: T, index: number) => R | PromiseLike<R>,
  options?: O,
): Promise<MapResults<R, O>> {
  const list = requireArray("imap", items);
  return await collect(
    "imap",
    list.length,
    (i) => [list[i], i],
    fn,
    options,
  ) as MapResults<R, O>;
}

/**
 * Call `fn` on each item for its side effects, checkpointed like
 * {@linkcode map}: after a crash, items of recorded batches are not called
 * again. Results are not kept. With `onError: "skip"`, failures are reported
 * as `warning` events and in the run's step stats.
 *
 * @param items The items.
 * @param fn The side effect; may be async.
 * @param options As for {@linkcode map}.
 * @returns Nothing.
 *
 * @example A finished walk does not run again
 * ```ts
 * import assert from "node:assert/strict";
 * import { walk } from "./map.ts";
 * const seen: number[] = [];
 * await walk([1, 2, 3], (x) => { seen.push(x); }, { store: "memory:walk-example" });
 * await walk([1, 2, 3], (x) => { seen.push(x); }, { store: "memory:walk-example" });
 * assert.deepEqual(seen, [1, 2, 3]);
 * ```
 */
export async function walk<T>(
  items: readonly T[],
  fn: (item: T) => unknown,
  options?: MapOptions,
): Promise<void> {
  const list = requireArray("walk", items);
  await collect("walk", list.length, (i) => [list[i]], fn, options, false);
}

/**
 * Map `fn` over an iterable or async iterable and yield the results in input
 * order, batch by batch, so memory stays flat for millions of items: at most
 * `concurrency + 1` batches are held. An array input is named like
 * {@linkcode map}; another iterable cannot be hashed up front, so its
 * default job name covers only the function, version and options, and a
 * finished run is never reused (its items still are, through the memo).
 * Breaking out of the loop leaves the run resumable.
 *
 * @param items The items.
 * @param fn Computes one result; may be async.
 * @param options As for {@linkcode map}.
 * @returns An async iterator of results.
 *
 * @example Stream a generator
 * ```ts
 * import assert from "node:assert/strict";
 * import { mapIter } from "./map.ts";
 * function* numbers() { for (let i = 0; i < 5; i++) yield i; }
 * const out: number[] = [];
 * for await (const y of mapIter(numbers(), (x) => x * 10, { store: "memory:mapiter-example", batchSize: 2 })) {
 *   out.push(y);
 * }
 * assert.deepEqual(out, [0, 10, 20, 30, 40]);
 * ```
 */
export async function* mapIter<T, R, O extends MapOptions = MapOptions>(
  items: Iterable<T> | AsyncIterable<T>,
  fn: (item: T) => R | PromiseLike<R>,
  options?: O,
): AsyncGenerator<MapResult<R, O>, void, undefined> {
  let source: MapSource;
  if (Array.isArray(items)) {
    const list = items as readonly unknown[];
    source = indexed(list.length, (i) => [list[i]]);
  } else if (
    items !== null && typeof items === "object" &&
    (Symbol.asyncIterator in items || Symbol.iterator in items)
  ) {
    const iterator = Symbol.asyncIterator in items
      ? (items as AsyncIterable<unknown>)[Symbol.asyncIterator]()
      : (items as Iterable<unknown>)[Symbol.iterator]();
    source = { kind: "stream", iterator, args: (x) => [x] };
  } else {
    throw new TypeError(
      `Cannot mapIter: items must be an iterable or async iterable, got ${
        items === null ? "null" : typeof items
      }`,
    );
  }
  const batches = runMap({
    op: "map",
    source,
    fn: fn as (...args: unknown[]) => unknown,
    options: options ?? {},
    keepResults: true,
    readAhead: 1,
    ordered: true,
  });
  for await (const batch of batches) {
    for (const value of batch.values) yield value as MapResult<R, O>;
  }
}

/**
 * The job name a {@linkcode map} call would use (`options.job` when given),
 * for `cairn show` or `cairn forget`.
 *
 * @param items The items.
 * @param fn The function.
 * @param options The call's options.
 * @returns The job name.
 *
 * @example Same length, ends and version but another middle: another job
 * ```ts
 * import assert from "node:assert/strict";
 * import { mapJobName } from "./map.ts";
 * const f = (x: number) => x + 1;
 * const a = await mapJobName([1, 2, 3], f);
 * assert.ok(a.startsWith("map-") && a !== await mapJobName([1, 5, 3], f));
 * ```
 */
export async function mapJobName<T>(
  items: readonly T[],
  fn: (item: T) => unknown,
  options: MapOptions = {},
): Promise<string> {
  if (options.job !== undefined) return options.job;
  const list = requireArray("name a map job", items);
  const op: MapOp = "map";
  const settings = await resolveSettings(fn, options);
  const { input } = await inputHashOf(
    indexed(list.length, (i) => [list[i]]),
    settings.batchSize,
  );
  return (await jobIdentity(op, settings, input, list.length)).name;
}
