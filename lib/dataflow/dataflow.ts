/**
 * A persistent dataflow of keyed collections. Each run is a cairn job: every
 * operator keeps its state (its output and what it last read) as
 * content-addressed indexes in the store, diffs each input against the version
 * it last read, and recomputes only the keys, groups or nodes that changed.
 * When an operator's output comes out the same, its dependents do not run.
 *
 * @module
 */
import {
  type ChunkRef,
  CorruptChunkError,
  MissingChunkError,
} from "../../store/chunk_store.ts";
import { fingerprint } from "../../store/cbor.ts";
import { blake3HexSync } from "../../store/hash.ts";
import type { AcquireLockOptions } from "../../store/lock.ts";
import type { Store } from "../../store/store.ts";
import type { JobEvent } from "../events.ts";
import { InterruptedError, type Job, openJob } from "../job.ts";
import { resolveStore } from "../open_store.ts";
import { readValueChunks } from "../output.ts";
import { compareRuns, replayRun } from "../replay.ts";
import type { Update } from "./consolidate.ts";
import { type InputSource, normalizeInput } from "./_inputs.ts";
import {
  compareTime,
  planRecompute,
  type RecomputePlan,
  type RecomputeRequest,
  type Time,
  timeRangeContains,
} from "./plan.ts";
import {
  compare,
  sameValue,
  type TreeEdit,
  type TreeRef,
  TreeStore,
} from "./_tree.ts";

/** A keyed collection in a dataflow: a map from string keys to values of type `V`. */
export interface Collection<V = unknown> {
  /** The operator's name. */
  readonly name: string;
  /** Always "collection". */
  readonly output: "collection";
  /** Type marker only; never set. */
  readonly valueType?: V;
}

/** A whole-value node in a dataflow, whose value has type `V`. */
export interface Node<V = unknown> {
  /** The node's name. */
  readonly name: string;
  /** Always "value". */
  readonly output: "value";
  /** Type marker only; never set. */
  readonly valueType?: V;
}

/** What a `node` function receives for an input: a collection as a `Map`, a node's value as it is. */
export type InputValue<T> = T extends Collection<infer V> ? Map<string, V>
  : T extends Node<infer V> ? V
  : never;

/** Options for a {@linkcode Dataflow}. */
export interface DataflowOptions {
  /** The store, or its location (`memory:NAME` is one in-process store per name). Default: `$CAIRN_STORE`, else `./.cairn`. */
  store?: Store | string;
  /** Job events of each run (progress, warnings). Default: none. */
  onEvent?: (event: JobEvent) => void;
  /** Lock options for runs (wait, staleness). Default: fail at once when locked. */
  lock?: AcquireLockOptions;
}

/** Options for an operator. */
export interface OperatorOptions<R = unknown> {
  /** Version of the operator's code: changing it recomputes this operator and what depends on its output. Default: "1". */
  version?: string;
  /** False when the function may give another result for the same input: then it runs on every run and is never cached. Default: true. */
  deterministic?: boolean;
  /** The part of an output that counts as a change (drop timestamps and other volatile fields). Default: the whole output. */
  fingerprint?: (output: R) => unknown;
}

/** Options for {@linkcode Dataflow.input}. */
export interface InputOptions<V = unknown> {
  /** The logical time of a record (a day, say), for time-range plans. Default: the input is not partitioned. */
  time?: (value: V, key: string) => Time;
}

/** What an operator did in a run. */
export interface NodeStats {
  /** `ran`: its function ran and its output changed; `cutoff`: it ran, output unchanged; `hit`: nothing to do or a memo hit; `skipped`: not in the run's plan. */
  status: "ran" | "hit" | "cutoff" | "skipped";
  /** Executions of the operator's function in the run. */
  calls: number;
  /** Output keys added (a node counts as one key). */
  added: number;
  /** Output keys whose value changed. */
  changed: number;
  /** Output keys removed. */
  removed: number;
}

/** Why an operator ran in the last run. */
export interface Explanation {
  /** The operator. */
  node: string;
  /** Its status in that run. */
  status: NodeStats["status"];
  /** The reason: `new`, `version`, `nondeterministic`, `inputs`, `unchanged`, `source` (an input's data changed) or `not-in-plan`. */
  reason:
    | "new"
    | "version"
    | "nondeterministic"
    | "inputs"
    | "unchanged"
    | "source"
    | "not-in-plan";
  /** The version before and after, when it changed. */
  version?: { before: string; after: string };
  /** Inputs whose content changed: how many keys, the first few, and their hashes before and after. */
  inputs: {
    name: string;
    before: string;
    after: string;
    changedKeys?: number;
    keys?: string[];
  }[];
  /** One sentence saying the same. */
  message: string;
}

/** The outcome of {@linkcode Dataflow.run}. */
export interface DataflowResult {
  /** The job run id. */
  run: string;
  /** The logical time of this run (1 for the first run, then 2, …). */
  time: number;
  /** What each operator did. */
  nodes: Record<string, NodeStats>;
  /** Warnings, such as code that changed without a version bump. */
  warnings: string[];
  /** Index chunks and bytes this run newly stored. */
  written: { chunks: number; bytes: number };
  /** A collection's full current output as a `Map`, or a node's value. */
  get<T = unknown>(name: string): T;
}

/** Options for {@linkcode Dataflow.run}. */
export interface RunOptions {
  /** Override the dataflow's store for this run. Default: the dataflow's. */
  store?: Store | string;
  /** Run only this plan's nodes, and replace only its time range of its source. Default: every node. */
  plan?: RecomputePlan;
  /** Aborting it stops the run cleanly (recorded as interrupted; rerun to resume). */
  signal?: AbortSignal;
  /** Keep every output in memory so that `result.get` works. Default: true. */
  materialize?: boolean;
}

/** Options for reading a dataflow's stored state (`plan`, `explain`, `changes`). */
export interface ReadOptions {
  /** Override the dataflow's store. Default: the dataflow's. */
  store?: Store | string;
}

type OpKind = "input" | "map" | "filter" | "groupReduce" | "join" | "node";

interface OpDef {
  name: string;
  kind: OpKind;
  inputs: string[];
  // deno-lint-ignore no-explicit-any
  fn?: (...args: any[]) => unknown;
  // deno-lint-ignore no-explicit-any
  keyFn?: (...args: any[]) => unknown;
  version: string;
  deterministic: boolean;
  // deno-lint-ignore no-explicit-any
  project?: (output: any) => unknown;
  // deno-lint-ignore no-explicit-any
  time?: (value: any, key: string) => Time;
}

/** An operator's persistent state after a run. */
interface OpState {
  kind: OpKind;
  version: string;
  codeHash: string;
  /** Output collection (collections) or null. */
  out: TreeRef | null;
  /** Output before the last run (for `changes`). */
  prevOut: TreeRef | null;
  /** A node's value: its chunks and the fingerprint of its projection. */
  value?: { fp: string; chunks: ChunkRef[] };
  /** Identity of each input as last read. */
  consumed: Record<string, string>;
  /** Each collection input's index as last read. */
  consumedTrees: Record<string, TreeRef | null>;
  /** Operator indexes besides the output (group members, time index). */
  aux: Record<string, TreeRef | null>;
  /** Latest time seen by a partitioned input. */
  maxTime?: Time;
  /** A sink's completed frontier. */
  frontier?: Time;
  stats: NodeStats;
  explain: Omit<Explanation, "node" | "status" | "message">;
}

interface FlowState {
  time: number;
  ops: Record<string, OpState>;
}

/** One key's change: the value before and after (undefined when absent). */
interface TreeChangeLike {
  key: string;
  before?: unknown;
  after?: unknown;
}

const SEP = "\u0000";
const SEP_END = "\u0001";

/** A stored chunk of an operator's state could not be read (internal: `run` recovers or explains). */
class LostStateError extends Error {
  readonly node: string | undefined;
  readonly chunk: MissingChunkError | CorruptChunkError;
  constructor(
    node: string | undefined,
    chunk: MissingChunkError | CorruptChunkError,
  ) {
    super(chunk.message, { cause: chunk });
    this.node = node;
    this.chunk = chunk;
  }
}

/** `error` as a lost-state error of `node`, or undefined when it is not about a chunk. */
function lostState(error: unknown, node?: string): LostStateError | undefined {
  if (error instanceof LostStateError) return error;
  if (
    error instanceof MissingChunkError || error instanceof CorruptChunkError
  ) {
    return new LostStateError(node, error);
  }
  return undefined;
}

function short(hex: string): string {
  return hex.slice(0, 24);
}

function hashText(text: string): string {
  return blake3HexSync(new TextEncoder().encode(text));
}

/** The previous state again, as a hit, when neither the operator nor any of its inputs changed. */
function unchangedHit(
  op: OpDef,
  prev: OpState | undefined,
  why: { full: boolean },
  ids: string[],
  prevOut: OpState["prevOut"],
): OpState | undefined {
  if (why.full || !op.inputs.every((n, i) => prev!.consumed[n] === ids[i])) {
    return undefined;
  }
  return {
    ...prev!,
    prevOut,
    stats: { status: "hit", calls: 0, added: 0, changed: 0, removed: 0 },
    explain: { reason: "unchanged", inputs: [] },
  };
}

function identity(state: OpState): string {
  if (state.value !== undefined) return `v:${state.value.fp}`;
  return state.out === null ? "empty" : `t:${state.out.hash}`;
}

function timeKey(name: string, time: unknown): string {
  if (typeof time === "number" && Number.isSafeInteger(time) && time >= 0) {
    return `n${String(time).padStart(16, "0")}`;
  }
  if (typeof time === "string") return `s${time}`;
  throw new TypeError(
    `Cannot partition input "${name}" by time: the time option must return a non-negative integer or a string, found ${
      JSON.stringify(time)
    }`,
  );
}

function maxOf(a: Time | undefined, b: Time | undefined): Time | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return compareTime(a, b) >= 0 ? a : b;
}

const treeStores = new WeakMap<Store, TreeStore>();

function treesOf(store: Store): TreeStore {
  let trees = treeStores.get(store);
  if (trees === undefined) {
    treeStores.set(store, trees = new TreeStore(store.chunks));
  }
  return trees;
}

/**
 * An incremental dataflow over keyed collections, persisted in a cairn store.
 *
 * @example Only the edited key is recomputed
 * ```ts
 * import assert from "node:assert/strict";
 * import { Dataflow } from "./dataflow.ts";
 * const df = new Dataflow("doc-prices", { store: "memory:dataflow-doc" });
 * const prices = df.input<number>("prices");
 * const doubled = df.map("doubled", prices, (p) => p * 2);
 * const total = df.node("total", [doubled], (m) => [...m.values()].reduce((a, b) => a + b, 0));
 * await df.run({ prices: { a: 1, b: 2, c: 3 } });
 * const result = await df.run({ prices: { a: 1, b: 20, c: 3 } });
 * assert.equal(result.nodes.doubled!.calls, 1);
 * assert.equal(result.get("total"), 48);
 * void total;
 * ```
 */
export class Dataflow {
  /** The dataflow's name, also its job name in the store. */
  readonly name: string;
  readonly #options: DataflowOptions;
  readonly #ops: OpDef[] = [];
  readonly #byName = new Map<string, OpDef>();
  #last: { store: Store; run: string; state: FlowState } | undefined;
  /** Output changes of the operators computed in this process's last run, for materializing. */
  #deltas = new Map<
    string,
    { from: string; to: string; changes: TreeChangeLike[] }
  >();
  #materialized = new Map<string, Materialized>();
  #materializedStore: Store | undefined;

  /**
   * Declare a dataflow; add its inputs and operators, then `run` it.
   *
   * @param name The dataflow's name: its job name (`[A-Za-z0-9._-]`).
   * @param options Store, events and lock options.
   */
  constructor(name: string, options: DataflowOptions = {}) {
    if (
      typeof name !== "string" ||
      !/^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/.test(name)
    ) {
      throw new TypeError(
        `Cannot create dataflow "${
          String(name)
        }": use 1 to 128 characters from A-Z, a-z, 0-9, ".", "_" and "-", not starting with "." or "-"`,
      );
    }
    this.name = name;
    this.#options = options;
  }

  #add(def: OpDef): void {
    if (
      typeof def.name !== "string" || def.name.length === 0 ||
      def.name.length > 200
    ) {
      throw new TypeError(
        `Cannot add operator "${
          String(def.name)
        }" to dataflow "${this.name}": a name is a string of 1 to 200 characters`,
      );
    }
    if (this.#byName.has(def.name)) {
      throw new TypeError(
        `Cannot add operator "${def.name}" to dataflow "${this.name}": the name is taken`,
      );
    }
    for (const input of def.inputs) {
      if (!this.#byName.has(input)) {
        throw new TypeError(
          `Cannot add operator "${def.name}" to dataflow "${this.name}": its input "${input}" is not an operator of this dataflow`,
        );
      }
    }
    if (typeof def.fn !== "function" && def.kind !== "input") {
      throw new TypeError(
        `Cannot add operator "${def.name}" to dataflow "${this.name}": expected a function, found ${typeof def
          .fn}`,
      );
    }
    this.#ops.push(def);
    this.#byName.set(def.name, def);
  }

  #collectionInput(op: string, input: Collection | undefined): string {
    const def = input && this.#byName.get(input.name);
    if (def === undefined || def.kind === "node") {
      throw new TypeError(
        `Cannot add operator "${op}" to dataflow "${this.name}": expected a collection of this dataflow as input, found ${
          def ? `node "${def.name}"` : JSON.stringify(input?.name)
        }`,
      );
    }
    return def.name;
  }

  #operatorOptions(
    kind: OpKind,
    name: string,
    // deno-lint-ignore no-explicit-any
    options: OperatorOptions<any>,
  ): Pick<OpDef, "version" | "deterministic" | "project"> {
    const version = options.version ?? "1";
    if (typeof version !== "string") {
      throw new TypeError(
        `Cannot add ${kind} "${name}": version must be a string, found ${typeof version}`,
      );
    }
    return {
      version,
      deterministic: options.deterministic ?? true,
      ...(options.fingerprint === undefined
        ? {}
        : { project: options.fingerprint }),
    };
  }

  /**
   * Declare an input collection; `run` receives its data by name.
   *
   * @param name The input's name.
   * @param options A time function, for time-range plans.
   * @returns The collection.
   */
  input<V = unknown>(
    name: string,
    options: InputOptions<V> = {},
  ): Collection<V> {
    this.#add({
      name,
      kind: "input",
      inputs: [],
      version: "1",
      deterministic: true,
      ...(options.time === undefined ? {} : { time: options.time }),
    });
    return { name, output: "collection" };
  }

  /**
   * A collection with `fn` applied to each value; memoised per key and version.
   *
   * @param name The operator's name.
   * @param input The collection to map.
   * @param fn Computes a key's output from its value.
   * @param options Version, determinism, output fingerprint.
   * @returns The mapped collection.
   */
  map<V, R>(
    name: string,
    input: Collection<V>,
    fn: (value: V, key: string) => R | Promise<R>,
    options: OperatorOptions<R> = {},
  ): Collection<R> {
    this.#add({
      name,
      kind: "map",
      inputs: [this.#collectionInput(name, input)],
      fn,
      ...this.#operatorOptions("map", name, options),
    });
    return { name, output: "collection" };
  }

  /**
   * The entries of a collection that `predicate` keeps.
   *
   * @param name The operator's name.
   * @param input The collection to filter.
   * @param predicate True to keep a key.
   * @param options Version and determinism.
   * @returns The filtered collection.
   */
  filter<V>(
    name: string,
    input: Collection<V>,
    predicate: (value: V, key: string) => boolean | Promise<boolean>,
    options: OperatorOptions<boolean> = {},
  ): Collection<V> {
    this.#add({
      name,
      kind: "filter",
      inputs: [this.#collectionInput(name, input)],
      fn: predicate,
      ...this.#operatorOptions(
        "filter",
        name,
        options,
      ),
    });
    return { name, output: "collection" };
  }

  /**
   * Group a collection's values by `groupKey` and reduce each group; only the
   * groups that received a change are reduced again.
   *
   * @param name The operator's name.
   * @param input The collection to group.
   * @param groupKey A value's group (a string without NUL characters).
   * @param reduce A group's output from its values, in key order.
   * @param options Version, determinism, output fingerprint.
   * @returns A collection keyed by group.
   */
  groupReduce<V, R>(
    name: string,
    input: Collection<V>,
    groupKey: (value: V, key: string) => string,
    reduce: (group: string, values: V[]) => R | Promise<R>,
    options: OperatorOptions<R> = {},
  ): Collection<R> {
    if (typeof groupKey !== "function") {
      throw new TypeError(
        `Cannot add groupReduce "${name}": groupKey must be a function, found ${typeof groupKey}`,
      );
    }
    this.#add({
      name,
      kind: "groupReduce",
      inputs: [this.#collectionInput(name, input)],
      fn: reduce,
      keyFn: groupKey,
      ...this.#operatorOptions(
        "groupReduce",
        name,
        options,
      ),
    });
    return { name, output: "collection" };
  }

  /**
   * Join two collections on their keys: a key present in both gets `combine(left, right)`.
   *
   * @param name The operator's name.
   * @param left The left collection.
   * @param right The right collection.
   * @param combine The output for a key present on both sides.
   * @param options Version, determinism, output fingerprint.
   * @returns The joined collection.
   */
  join<L, Rt, R>(
    name: string,
    left: Collection<L>,
    right: Collection<Rt>,
    combine: (left: L, right: Rt, key: string) => R | Promise<R>,
    options: OperatorOptions<R> = {},
  ): Collection<R> {
    this.#add({
      name,
      kind: "join",
      inputs: [
        this.#collectionInput(name, left),
        this.#collectionInput(name, right),
      ],
      fn: combine,
      ...this.#operatorOptions("join", name, options),
    });
    return { name, output: "collection" };
  }

  /**
   * A whole-value step over collections (each arrives as a `Map`) and nodes,
   * memoised on the content hashes of those inputs.
   *
   * @param name The node's name.
   * @param inputs Collections and nodes, passed to `fn` in order.
   * @param fn Computes the value.
   * @param options Version, determinism, output fingerprint.
   * @returns The node.
   */
  node<const I extends readonly (Collection<unknown> | Node<unknown>)[], R>(
    name: string,
    inputs: I,
    fn: (...values: { [K in keyof I]: InputValue<I[K]> }) => R | Promise<R>,
    options: OperatorOptions<R> = {},
  ): Node<R> {
    if (!Array.isArray(inputs)) {
      throw new TypeError(
        `Cannot add node "${name}": inputs must be an array of collections and nodes`,
      );
    }
    for (const input of inputs) {
      if (!this.#byName.has(input?.name)) {
        throw new TypeError(
          `Cannot add node "${name}" to dataflow "${this.name}": its input ${
            JSON.stringify(input?.name)
          } is not an operator of this dataflow`,
        );
      }
    }
    this.#add({
      name,
      kind: "node",
      inputs: inputs.map((i) => i.name),
      fn,
      ...this.#operatorOptions("node", name, options),
    });
    return { name, output: "value" };
  }

  /** Operator names in topological order (the order they were declared). */
  get nodes(): string[] {
    return this.#ops.map((op) => op.name);
  }

  /**
   * The operators that read an operator's output directly.
   *
   * @param name The operator.
   * @returns Their names.
   */
  dependents(name: string): string[] {
    return this.#ops.filter((op) => op.inputs.includes(name)).map((op) =>
      op.name
    );
  }

  /**
   * Run the dataflow: bring every operator up to date with the given inputs.
   * An input left out keeps its stored data.
   *
   * @param inputs Input name to a snapshot (`Record`, `Map`, `[key, value][]`,
   *   `{ file, key }`) or a delta (`{ upsert, delete }`).
   * @param options Store, plan, abort signal.
   * @returns What ran, and the outputs.
   */
  async run(
    inputs: Record<string, InputSource<unknown>> = {},
    options: RunOptions = {},
  ): Promise<DataflowResult> {
    for (const name of Object.keys(inputs)) {
      if (this.#byName.get(name)?.kind !== "input") {
        throw new RangeError(
          `Cannot run dataflow "${this.name}": "${name}" is not one of its inputs (${
            this.#ops.filter((o) => o.kind === "input").map((o) =>
              `"${o.name}"`
            )
              .join(", ")
          })`,
        );
      }
    }
    if (options.plan !== undefined) {
      for (const node of options.plan.nodes) {
        if (!this.#byName.has(node)) {
          throw new RangeError(
            `Cannot run dataflow "${this.name}" with plan: node "${node}" is not one of its operators`,
          );
        }
      }
    }
    const store = await resolveStore(options.store ?? this.#options.store);
    const trees = treesOf(store);
    const before = { ...trees.written };
    // Events of a completed run opened only to be replaced are dropped.
    let forward = false;
    const held: JobEvent[] = [];
    const relay = (event: JobEvent) => {
      if (forward) this.#options.onEvent?.(event);
      else held.push(event);
    };
    const jobOptions = (newRun: boolean, onEvent?: (e: JobEvent) => void) => ({
      store,
      kind: "dataflow",
      memo: `dataflow:${this.name}`,
      newRun,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
      ...(this.#options.lock === undefined ? {} : { lock: this.#options.lock }),
      ...(onEvent === undefined ? {} : { onEvent }),
    });
    // When this process completed the newest run, a new run is due: skip the look at it.
    const known = this.#last?.store === store &&
      (await store.listRuns(this.name)).sort(compareRuns).at(-1) ===
        this.#last.run;
    let job = await openJob(this.name, jobOptions(known, relay));
    if (job.status === "completed") {
      await job.close();
      held.length = 0;
      job = await openJob(this.name, jobOptions(true, relay));
    }
    forward = true;
    for (const event of held) this.#options.onEvent?.(event);
    const warnings: string[] = [];
    try {
      this.#deltas.clear();
      const attempt = async (base: FlowState | undefined) => {
        const state = await this.#execute(
          job,
          trees,
          base,
          inputs,
          options,
          warnings,
        );
        // Read before the run completes, so that a lost chunk is found here.
        const values = options.materialize === false
          ? undefined
          : await this.#materialize(store, trees, state);
        return { state, values };
      };
      let base: FlowState | undefined;
      let lost: LostStateError | undefined;
      try {
        base = await this.#previousState(store, job);
      } catch (error) {
        lost = lostState(error);
        if (lost === undefined) throw error;
      }
      let done: Awaited<ReturnType<typeof attempt>> | undefined;
      if (lost === undefined) {
        try {
          done = await attempt(base);
        } catch (error) {
          lost = base === undefined ? undefined : lostState(error);
          if (lost === undefined) throw error;
        }
      }
      if (done === undefined) {
        // A stored chunk is gone: recompute every operator from the inputs,
        // which must all be full snapshots, or say what would fix it.
        await this.#checkRecoverable(lost!, inputs, options);
        if (lost!.chunk instanceof CorruptChunkError) {
          await store.chunks.delete(lost!.chunk.hash).catch(() => {});
        }
        const message = `${
          lost!.node === undefined
            ? `The stored state of dataflow "${this.name}"`
            : `The stored state of operator "${
              lost!.node
            }" in dataflow "${this.name}"`
        } is unreadable (${
          lost!.message
        }); recomputing every operator from the input snapshots`;
        warnings.push(message);
        this.#options.onEvent?.({ type: "warning", job: this.name, message });
        this.#materialized.clear();
        this.#deltas.clear();
        done = await attempt({ time: base?.time ?? 0, ops: {} });
      }
      const { state, values } = done;
      const key = `state:${short(await fingerprint(state))}`;
      await job.step(key, () => state);
      if (job.refusedSteps > 0) throw job.signal.reason;
      await job.complete({
        time: state.time,
        state: key,
        nodes: Object.fromEntries(
          Object.entries(state.ops).map(([n, s]) => [n, s.stats]),
        ),
      });
      this.#last = { store, run: job.run, state };
      const written = {
        chunks: trees.written.chunks - before.chunks,
        bytes: trees.written.bytes - before.bytes,
      };
      return {
        run: job.run,
        time: state.time,
        nodes: Object.fromEntries(
          Object.entries(state.ops).map(([n, s]) => [n, s.stats]),
        ),
        warnings,
        written,
        get: <T>(name: string): T => {
          if (values === undefined) {
            throw new RangeError(
              `Cannot get "${name}" of dataflow "${this.name}": the run was made with materialize: false`,
            );
          }
          if (!values.has(name)) {
            throw new RangeError(
              `Cannot get "${name}" of dataflow "${this.name}": expected one of ${
                [...values.keys()].map((k) => `"${k}"`).join(", ")
              }`,
            );
          }
          return force(values.get(name)!) as T;
        },
      };
    } catch (error) {
      if (job.stopping) {
        await job.close();
        throw job.signal.reason instanceof InterruptedError
          ? job.signal.reason
          : new InterruptedError(this.name);
      }
      await job.fail(error);
      throw error;
    } finally {
      await job.close();
    }
  }

  /**
   * Throw a clear error naming the node and the fix unless every input has a
   * full snapshot in `inputs` (a delta or a plan needs the lost state).
   */
  async #checkRecoverable(
    lost: LostStateError,
    inputs: Record<string, unknown>,
    options: RunOptions,
  ): Promise<void> {
    const missing: string[] = [];
    for (const op of this.#ops) {
      if (op.kind !== "input") continue;
      const source = inputs[op.name];
      if (
        source === undefined ||
        (await normalizeInput(op.name, source)).kind === "delta"
      ) missing.push(op.name);
    }
    if (missing.length === 0 && options.plan === undefined) return;
    const what = lost.node === undefined
      ? `its stored state`
      : `the stored state of operator "${lost.node}"`;
    throw new Error(
      `Cannot run dataflow "${this.name}": ${what} is unreadable (${lost.message}), and ${
        options.plan !== undefined
          ? "a plan run"
          : `input${missing.length === 1 ? "" : "s"} ${
            missing.map((n) => `"${n}"`).join(", ")
          } (no full snapshot given)`
      } cannot rebuild it; rerun without a plan, with a full snapshot of every input (not an { upsert, delete } delta), to recompute every operator`,
      { cause: lost.chunk },
    );
  }

  /** The state this run starts from: the one this process just wrote, or the store's newest. */
  async #previousState(store: Store, job: Job): Promise<FlowState | undefined> {
    const last = this.#last;
    if (last?.store === store && !job.resumed) {
      const runs = (await store.listRuns(this.name)).sort(compareRuns);
      if (runs.at(-1) === job.run && runs.at(-2) === last.run) {
        return last.state;
      }
    }
    return await this.#readLatest(store, job.run);
  }

  /** The state of the newest completed run (other than `exceptRun`), read without the lock. */
  async #readLatest(
    store: Store,
    exceptRun?: string,
  ): Promise<FlowState | undefined> {
    const runs = (await store.listRuns(this.name)).sort(compareRuns);
    for (let i = runs.length - 1; i >= 0; i--) {
      if (runs[i] === exceptRun) continue;
      const run = await replayRun(store, this.name, runs[i]!);
      if (run.status !== "completed") continue;
      const key = (run.end?.summary as { state?: string } | undefined)?.state;
      const step = key === undefined ? undefined : run.steps.get(key);
      if (step === undefined || step.output.kind !== "value") return undefined;
      return await readValueChunks<FlowState>(store.chunks, step.output.chunks);
    }
    return undefined;
  }

  async #latest(
    options: ReadOptions,
  ): Promise<{ store: Store; state: FlowState | undefined }> {
    const store = await resolveStore(options.store ?? this.#options.store);
    if (this.#last?.store === store) {
      const runs = (await store.listRuns(this.name)).sort(compareRuns);
      if (runs.at(-1) === this.#last.run) {
        return { store, state: this.#last.state };
      }
    }
    return { store, state: await this.#readLatest(store) };
  }

  async #codeHash(op: OpDef): Promise<string> {
    return await fingerprint([
      op.fn?.toString() ?? "",
      op.keyFn?.toString() ?? "",
      op.project?.toString() ?? "",
      op.time?.toString() ?? "",
    ]);
  }

  async #execute(
    job: Job,
    trees: TreeStore,
    base: FlowState | undefined,
    inputs: Record<string, unknown>,
    options: RunOptions,
    warnings: string[],
  ): Promise<FlowState> {
    const time = (base?.time ?? 0) + 1;
    const next: Record<string, OpState> = {};
    const plan = options.plan;
    for (const op of this.#ops) {
      job.signal.throwIfAborted();
      const prior = base?.ops[op.name];
      const prev = prior?.kind === op.kind ? prior : undefined;
      const codeHash = await this.#codeHash(op);
      if (
        prev !== undefined && prev.version === op.version &&
        prev.codeHash !== codeHash && op.kind !== "input"
      ) {
        const message =
          `The code of operator "${op.name}" in dataflow "${this.name}" changed but its version "${op.version}" did not; its stored results are reused. Change the version to recompute`;
        warnings.push(message);
        this.#options.onEvent?.({ type: "warning", job: this.name, message });
      }
      let state: OpState;
      try {
        if (
          plan !== undefined && !plan.nodes.includes(op.name) &&
          prev !== undefined
        ) {
          state = {
            ...prev,
            prevOut: prev.out,
            stats: {
              status: "skipped",
              calls: 0,
              added: 0,
              changed: 0,
              removed: 0,
            },
            explain: { reason: "not-in-plan", inputs: [] },
          };
        } else if (op.kind === "input") {
          state = await this.#runInput(
            op,
            prev,
            trees,
            inputs[op.name],
            plan,
            codeHash,
          );
        } else if (op.kind === "node") {
          state = await this.#runNode(job, op, prev, next, trees, codeHash);
        } else {
          state = await this.#runCollection(
            job,
            op,
            prev,
            next,
            trees,
            codeHash,
          );
        }
        await this.#keep(job, trees, op.name, state);
      } catch (error) {
        throw lostState(error, op.name) ?? error;
      }
      next[op.name] = state;
    }
    // Sinks record how far in time their output is complete.
    for (const op of this.#ops) {
      if (this.dependents(op.name).length > 0) continue;
      const state = next[op.name]!;
      let frontier = base?.ops[op.name]?.frontier;
      if (state.stats.status !== "skipped") {
        if (plan !== undefined) frontier = maxOf(frontier, plan.timeRange.to);
        const seen = this.#upstreamInputs(op.name)
          .map((n) => next[n]?.maxTime)
          .filter((t): t is Time => t !== undefined);
        if (seen.length > 0) {
          frontier = maxOf(
            frontier,
            seen.reduce((a, b) => (compareTime(a, b) <= 0 ? a : b)),
          );
        }
      }
      if (frontier === undefined) delete state.frontier;
      else state.frontier = frontier;
    }
    return { time, ops: next };
  }

  #upstreamInputs(name: string): string[] {
    const out = new Set<string>();
    const walk = (n: string) => {
      const def = this.#byName.get(n)!;
      if (def.kind === "input" && def.time !== undefined) out.add(n);
      def.inputs.forEach(walk);
    };
    walk(name);
    return [...out];
  }

  /** Record every chunk an operator's state refers to, so that gc keeps them while this run exists. */
  async #keep(
    job: Job,
    trees: TreeStore,
    name: string,
    state: OpState,
  ): Promise<void> {
    const roots = [state.out, ...Object.values(state.aux)];
    const refs: ChunkRef[] = [];
    for (const root of roots) refs.push(...await trees.refs(root));
    if (state.value !== undefined) refs.push(...state.value.chunks);
    if (refs.length === 0) return;
    const id = hashText(
      JSON.stringify([roots.map((r) => r?.hash ?? null), state.value?.chunks]),
    );
    await job.recordChunks(`refs:${name}:${short(id)}`, refs);
  }

  async #countChanges(
    trees: TreeStore,
    before: TreeRef | null,
    after: TreeRef | null,
    record?: string,
  ): Promise<
    { added: number; changed: number; removed: number; keys: string[] }
  > {
    const counts = { added: 0, changed: 0, removed: 0, keys: [] as string[] };
    if ((before?.hash ?? null) === (after?.hash ?? null)) return counts;
    const changes: TreeChangeLike[] = [];
    for await (const change of trees.diff(before, after)) {
      if (change.before === undefined) counts.added++;
      else if (change.after === undefined) counts.removed++;
      else counts.changed++;
      if (counts.keys.length < 10) counts.keys.push(change.key);
      if (record !== undefined) changes.push(change);
    }
    if (record !== undefined) {
      this.#deltas.set(record, {
        from: before?.hash ?? "",
        to: after?.hash ?? "",
        changes,
      });
    }
    return counts;
  }

  /** An output this process holds in memory for exactly the stored version `tree`, if any. */
  #knownOutput(
    trees: TreeStore,
    name: string,
    tree: TreeRef | null,
  ): Map<string, unknown> | undefined {
    const entry = this.#materialized.get(name);
    if (
      this.#materializedStore === undefined ||
      treesOf(this.#materializedStore) !== trees || entry === undefined ||
      entry.id !== (tree === null ? "empty" : `t:${tree.hash}`)
    ) return undefined;
    return force(entry) as Map<string, unknown>;
  }

  /** Count what applied edits changed (reading old values the update just cached), and keep the changes for materializing. */
  async #countEdits(
    name: string,
    trees: TreeStore,
    before: TreeRef | null,
    after: TreeRef | null,
    edits: TreeEdit[],
  ): Promise<
    { added: number; changed: number; removed: number; keys: string[] }
  > {
    const counts = { added: 0, changed: 0, removed: 0, keys: [] as string[] };
    const changes: TreeChangeLike[] = [];
    for (const [key, value] of edits) {
      const old = await trees.get(before, key);
      if (old === undefined && value === undefined) continue;
      if (old === undefined) counts.added++;
      else if (value === undefined) counts.removed++;
      else if (!sameValue(old, value)) counts.changed++;
      else continue;
      changes.push({ key, before: old, after: value });
      if (counts.keys.length < 10) counts.keys.push(key);
    }
    this.#deltas.set(name, {
      from: before?.hash ?? "",
      to: after?.hash ?? "",
      changes: changes.sort((a, b) => compare(a.key, b.key)),
    });
    return counts;
  }

  async #runInput(
    op: OpDef,
    prev: OpState | undefined,
    trees: TreeStore,
    source: unknown,
    plan: RecomputePlan | undefined,
    codeHash: string,
  ): Promise<OpState> {
    const old = prev?.out ?? null;
    let out = old;
    let byTime = prev?.aux.byTime ?? null;
    let maxTime = prev?.maxTime;
    if (source !== undefined) {
      const input = await normalizeInput(op.name, source);
      if (input.kind === "delta") {
        const edits: TreeEdit[] = [...input.upsert];
        for (const key of input.delete) edits.push([key, undefined]);
        out = await trees.update(old, edits);
      } else if (plan !== undefined && op.time !== undefined) {
        // Replace only the plan's partitions: keys timed inside the range.
        const range = plan.timeRange;
        const edits: TreeEdit[] = [];
        const lo = `${timeKey(op.name, range.from)}${SEP}`;
        const hi = `${timeKey(op.name, range.to)}${SEP_END}`;
        for await (const [tk] of trees.entries(byTime, lo, hi)) {
          const key = tk.slice(tk.indexOf(SEP) + 1);
          if (!input.entries.has(key)) edits.push([key, undefined]);
        }
        for (const [key, value] of input.entries) {
          if (timeRangeContains(range, op.time(value, key))) {
            edits.push([key, value]);
          }
        }
        out = await trees.update(old, edits);
      } else {
        const known = this.#knownOutput(trees, op.name, old);
        if (known === undefined) out = await trees.build(input.entries);
        else {
          // The stored version is in memory: diff against it, write only what changed.
          const edits: TreeEdit[] = [];
          for (const key of known.keys()) {
            if (!input.entries.has(key)) edits.push([key, undefined]);
          }
          for (const [key, value] of input.entries) {
            if (!sameValue(known.get(key), value)) edits.push([key, value]);
          }
          out = await trees.update(old, edits);
        }
      }
    }
    const counts = await this.#countChanges(trees, old, out, op.name);
    if (op.time !== undefined && (old?.hash ?? null) !== (out?.hash ?? null)) {
      const edits: TreeEdit[] = [];
      for await (const change of trees.diff(old, out)) {
        if (change.before !== undefined) {
          edits.push([
            `${
              timeKey(op.name, op.time(change.before, change.key))
            }${SEP}${change.key}`,
            undefined,
          ]);
        }
        if (change.after !== undefined) {
          const t = op.time(change.after, change.key);
          edits.push([`${timeKey(op.name, t)}${SEP}${change.key}`, 0]);
          maxTime = maxOf(maxTime, t);
        }
      }
      byTime = await trees.update(byTime, edits);
    }
    const changed = (old?.hash ?? null) !== (out?.hash ?? null);
    return {
      kind: "input",
      version: op.version,
      codeHash,
      out,
      prevOut: old,
      consumed: {},
      consumedTrees: {},
      aux: op.time === undefined ? {} : { byTime },
      ...(maxTime === undefined ? {} : { maxTime }),
      stats: {
        status: changed ? "ran" : "hit",
        calls: 0,
        added: counts.added,
        changed: counts.changed,
        removed: counts.removed,
      },
      explain: {
        reason: prev === undefined ? "new" : changed ? "source" : "unchanged",
        inputs: [],
      },
    };
  }

  #reason(
    op: OpDef,
    prev: OpState | undefined,
  ): {
    full: boolean;
    reason: Explanation["reason"];
    version?: { before: string; after: string };
  } {
    if (prev === undefined) return { full: true, reason: "new" };
    if (prev.version !== op.version) {
      return {
        full: true,
        reason: "version",
        version: { before: prev.version, after: op.version },
      };
    }
    if (!op.deterministic) return { full: true, reason: "nondeterministic" };
    return { full: false, reason: "inputs" };
  }

  async #runCollection(
    job: Job,
    op: OpDef,
    prev: OpState | undefined,
    next: Record<string, OpState>,
    trees: TreeStore,
    codeHash: string,
  ): Promise<OpState> {
    const ins = op.inputs.map((n) => next[n]!);
    const ids = ins.map(identity);
    const why = this.#reason(op, prev);
    const hit = unchangedHit(op, prev, why, ids, prev?.out ?? null);
    if (hit !== undefined) return hit;
    const stepKey = `op:${op.name}:${
      short(
        await fingerprint({
          prev: prev === undefined
            ? null
            : [identity(prev), prev.aux, prev.version],
          ids,
          version: op.version,
          nonce: op.deterministic ? null : crypto.randomUUID(),
        }),
      )
    }`;
    return await job.step(stepKey, async (ctx) => {
      const counter = { calls: 0 };
      const changedInputs: Explanation["inputs"] = [];
      const deltas: { key: string; before?: unknown; after?: unknown }[][] = [];
      if (!why.full) {
        for (let i = 0; i < op.inputs.length; i++) {
          const name = op.inputs[i]!;
          const list: { key: string; before?: unknown; after?: unknown }[] = [];
          if (prev!.consumed[name] !== ids[i]) {
            for await (
              const change of trees.diff(
                prev!.consumedTrees[name] ?? null,
                ins[i]!.out,
              )
            ) {
              list.push(change);
            }
            changedInputs.push({
              name,
              before: prev!.consumed[name] ?? "none",
              after: ids[i]!,
              changedKeys: list.length,
              keys: list.slice(0, 10).map((c) => c.key),
            });
          }
          deltas.push(list);
        }
      }
      const oldOut = why.full ? prev?.out ?? null : prev!.out;
      const result = await this.#compute(
        op,
        why.full,
        prev,
        ins,
        deltas,
        trees,
        counter,
        ctx.signal,
      );
      const counts = why.full
        ? await this.#countChanges(trees, oldOut, result.out)
        : await this.#countEdits(
          op.name,
          trees,
          oldOut,
          result.out,
          result.applied,
        );
      const state: OpState = {
        kind: op.kind,
        version: op.version,
        codeHash,
        out: result.out,
        prevOut: prev?.out ?? null,
        consumed: Object.fromEntries(op.inputs.map((n, i) => [n, ids[i]!])),
        consumedTrees: Object.fromEntries(
          op.inputs.map((n, i) => [n, ins[i]!.out]),
        ),
        aux: result.aux,
        stats: {
          status: counts.added + counts.changed + counts.removed > 0
            ? "ran"
            : counter.calls > 0
            ? "cutoff"
            : "hit",
          calls: counter.calls,
          added: counts.added,
          changed: counts.changed,
          removed: counts.removed,
        },
        explain: {
          reason: why.reason,
          ...(why.version === undefined ? {} : { version: why.version }),
          inputs: changedInputs,
        },
      };
      await this.#keep(job, trees, op.name, state);
      return state;
    });
  }

  /** Compute a collection operator's new output (and indexes) from its input deltas, or from scratch. */
  async #compute(
    op: OpDef,
    full: boolean,
    prev: OpState | undefined,
    ins: OpState[],
    deltas: { key: string; before?: unknown; after?: unknown }[][],
    trees: TreeStore,
    counter: { calls: number },
    signal: AbortSignal,
  ): Promise<
    {
      out: TreeRef | null;
      aux: Record<string, TreeRef | null>;
      applied: TreeEdit[];
    }
  > {
    const fn = op.fn!;
    const prevOut = prev?.out ?? null;
    const call = async (...args: unknown[]) => {
      if ((++counter.calls & 255) === 0) signal.throwIfAborted();
      return await fn(...args);
    };
    const checked = (key: string, value: unknown) => {
      if (value === undefined) {
        throw new TypeError(
          `Cannot store the output of ${op.kind} "${op.name}" for key "${key}": the function returned undefined; return null, or drop keys with filter`,
        );
      }
      return value;
    };
    // With a fingerprint projection, an output whose projection is unchanged keeps its stored value.
    const settle = async (edits: TreeEdit[]): Promise<TreeEdit[]> => {
      if (op.project === undefined || prevOut === null) return edits;
      const out: TreeEdit[] = [];
      for (const edit of edits) {
        const [key, value] = edit;
        const old = value === undefined
          ? undefined
          : await trees.get(prevOut, key);
        const same = old !== undefined &&
          sameValue(op.project(old), op.project(value));
        out.push(same ? [key, old] : edit);
      }
      return out;
    };
    let applied: TreeEdit[] = [];
    const apply = async (edits: TreeEdit[]) => {
      applied = await settle(edits);
      return full
        ? await trees.build(
          applied.filter((e) => e[1] !== undefined) as [string, unknown][],
        )
        : await trees.update(prevOut, applied);
    };
    const changesOf = async function* (i: number) {
      if (!full) {
        yield* deltas[i]!;
        return;
      }
      for await (const [key, after] of trees.entries(ins[i]!.out)) {
        yield { key, after } as {
          key: string;
          before?: unknown;
          after?: unknown;
        };
      }
    };
    switch (op.kind) {
      case "map": {
        const edits: TreeEdit[] = [];
        for await (const c of changesOf(0)) {
          edits.push([
            c.key,
            c.after === undefined
              ? undefined
              : checked(c.key, await call(c.after, c.key)),
          ]);
        }
        return { out: await apply(edits), aux: {}, applied };
      }
      case "filter": {
        const edits: TreeEdit[] = [];
        for await (const c of changesOf(0)) {
          const keep = c.after !== undefined &&
            Boolean(await call(c.after, c.key));
          edits.push([c.key, keep ? c.after : undefined]);
        }
        return { out: await apply(edits), aux: {}, applied };
      }
      case "groupReduce": {
        const groupOf = (value: unknown, key: string): string => {
          const g = op.keyFn!(value, key);
          if (typeof g !== "string" || g.includes(SEP)) {
            throw new TypeError(
              `Cannot group key "${key}" in groupReduce "${op.name}": groupKey must return a string without NUL characters, found ${
                JSON.stringify(g)
              }`,
            );
          }
          return g;
        };
        const memberEdits: TreeEdit[] = [];
        const touched = new Set<string>();
        for await (const c of changesOf(0)) {
          if (c.before !== undefined) {
            const g = groupOf(c.before, c.key);
            touched.add(g);
            memberEdits.push([`${g}${SEP}${c.key}`, undefined]);
          }
          if (c.after !== undefined) {
            const g = groupOf(c.after, c.key);
            touched.add(g);
            memberEdits.push([`${g}${SEP}${c.key}`, c.after]);
          }
        }
        const members = full
          ? await trees.build(memberEdits as [string, unknown][])
          : await trees.update(prev!.aux.members ?? null, memberEdits);
        const edits: TreeEdit[] = [];
        if (full) {
          let group: string | undefined;
          let rows: unknown[] = [];
          const flush = async () => {
            if (group !== undefined) {
              edits.push([group, checked(group, await call(group, rows))]);
            }
          };
          for await (const [k, v] of trees.entries(members)) {
            const g = k.slice(0, k.indexOf(SEP));
            if (g !== group) {
              await flush();
              group = g;
              rows = [];
            }
            rows.push(v);
          }
          await flush();
        } else {
          for (const g of [...touched].sort(compare)) {
            const rows: unknown[] = [];
            for await (
              const [, v] of trees.entries(
                members,
                `${g}${SEP}`,
                `${g}${SEP_END}`,
              )
            ) {
              rows.push(v);
            }
            edits.push([
              g,
              rows.length === 0 ? undefined : checked(g, await call(g, rows)),
            ]);
          }
        }
        return { out: await apply(edits), aux: { members }, applied };
      }
      case "join": {
        const [left, right] = [ins[0]!.out, ins[1]!.out];
        const edits: TreeEdit[] = [];
        if (full) {
          const rightValues = new Map<string, unknown>();
          for await (const [k, v] of trees.entries(right)) {
            rightValues.set(k, v);
          }
          for await (const [k, l] of trees.entries(left)) {
            if (rightValues.has(k)) {
              edits.push([k, checked(k, await call(l, rightValues.get(k), k))]);
            }
          }
        } else {
          // Δleft ⋈ right + left' ⋈ Δright: every key that changed on either side.
          const keys = new Set<string>();
          for (const list of deltas) for (const c of list) keys.add(c.key);
          for (const k of [...keys].sort(compare)) {
            const l = await trees.get(left, k);
            const r = await trees.get(right, k);
            edits.push([
              k,
              l === undefined || r === undefined
                ? undefined
                : checked(k, await call(l, r, k)),
            ]);
          }
        }
        return { out: await apply(edits), aux: {}, applied };
      }
      default:
        throw new TypeError(`Cannot compute operator kind "${op.kind}"`);
    }
  }

  async #runNode(
    job: Job,
    op: OpDef,
    prev: OpState | undefined,
    next: Record<string, OpState>,
    trees: TreeStore,
    codeHash: string,
  ): Promise<OpState> {
    const ins = op.inputs.map((n) => next[n]!);
    const ids = ins.map(identity);
    const why = this.#reason(op, prev);
    const hit = unchangedHit(op, prev, why, ids, null);
    if (hit !== undefined) return hit;
    const memo = op.deterministic
      ? await fingerprint({
        dataflow: this.name,
        node: op.name,
        version: op.version,
        inputs: ids,
      })
      : undefined;
    const key = `node:${op.name}:${
      short(memo ?? crypto.randomUUID().replaceAll("-", ""))
    }`;
    let calls = 0;
    const value = await job.step(key, async () => {
      const args = [];
      for (const input of ins) {
        args.push(await this.#valueOf(trees, job.store, input));
      }
      calls++;
      return await op.fn!(...args);
    }, memo === undefined ? {} : { memo });
    const record = job.stepRecord(key);
    if (record === undefined || record.output.kind !== "value") {
      throw new Error(
        `Cannot find the output of node "${op.name}" after it ran`,
      );
    }
    const fp = await fingerprint(
      op.project === undefined ? value : op.project(value),
    );
    const same = prev?.value?.fp === fp;
    return {
      kind: "node",
      version: op.version,
      codeHash,
      out: null,
      prevOut: null,
      value: { fp, chunks: record.output.chunks },
      consumed: Object.fromEntries(op.inputs.map((n, i) => [n, ids[i]!])),
      consumedTrees: {},
      aux: {},
      stats: {
        status: calls === 0 ? "hit" : same ? "cutoff" : "ran",
        calls,
        added: prev?.value === undefined ? 1 : 0,
        changed: prev?.value !== undefined && !same ? 1 : 0,
        removed: 0,
      },
      explain: {
        reason: why.reason,
        ...(why.version === undefined ? {} : { version: why.version }),
        inputs: why.full
          ? []
          : op.inputs.flatMap((n, i) =>
            prev!.consumed[n] === ids[i] ? [] : [{
              name: n,
              before: prev!.consumed[n] ?? "none",
              after: ids[i]!,
            }]
          ),
      },
    };
  }

  async #valueOf(
    trees: TreeStore,
    store: Store,
    state: OpState,
  ): Promise<unknown> {
    if (state.value !== undefined) {
      return await readValueChunks(store.chunks, state.value.chunks);
    }
    const map = new Map<string, unknown>();
    for await (const [k, v] of trees.entries(state.out)) map.set(k, v);
    return map;
  }

  /** Each output, ready or as a patch of the previous run's (applied when first asked for). */
  async #materialize(
    store: Store,
    trees: TreeStore,
    state: FlowState,
  ): Promise<Map<string, Materialized>> {
    if (this.#materializedStore !== store) {
      this.#materialized.clear();
      this.#materializedStore = store;
    }
    const out = new Map<string, Materialized>();
    for (const [name, op] of Object.entries(state.ops)) {
      const id = identity(op);
      const cached = this.#materialized.get(name);
      let entry: Materialized;
      if (cached?.id === id) entry = cached;
      else if (
        op.value === undefined && cached !== undefined &&
        cached.id === (op.prevOut === null ? "empty" : `t:${op.prevOut.hash}`)
      ) {
        const delta = this.#deltas.get(name);
        let changes: TreeChangeLike[];
        if (
          delta !== undefined && delta.from === (op.prevOut?.hash ?? "") &&
          delta.to === (op.out?.hash ?? "")
        ) changes = delta.changes;
        else {
          changes = [];
          for await (const c of trees.diff(op.prevOut, op.out)) changes.push(c);
        }
        entry = { id, ready: false, value: undefined, base: cached, changes };
      } else {
        let value: unknown;
        try {
          value = await this.#valueOf(trees, store, op);
        } catch (error) {
          throw lostState(error, name) ?? error;
        }
        entry = { id, ready: true, value };
      }
      this.#materialized.set(name, entry);
      out.set(name, entry);
    }
    return out;
  }

  /**
   * Plan a time-range recompute over the stored sink frontiers: the source
   * and what depends on it (every node with no source), minus sinks whose
   * frontier is at or past `timeRange.to`.
   *
   * @param request The time range and optional source.
   * @param options Which store to read.
   * @returns The plan, in topological order.
   */
  async plan(
    request: RecomputeRequest,
    options: ReadOptions = {},
  ): Promise<RecomputePlan> {
    const { state } = await this.#latest(options);
    const frontiers = new Map<string, Time>();
    for (const [name, op] of Object.entries(state?.ops ?? {})) {
      if (op.frontier !== undefined) frontiers.set(name, op.frontier);
    }
    return planRecompute(request, {
      nodes: this.nodes,
      dependents: (n) => this.dependents(n),
      frontiers,
    });
  }

  /**
   * The completed frontier of each sink after the last run.
   *
   * @param options Which store to read.
   * @returns Sink name to frontier.
   */
  async frontiers(options: ReadOptions = {}): Promise<Map<string, Time>> {
    const { state } = await this.#latest(options);
    const out = new Map<string, Time>();
    for (const [name, op] of Object.entries(state?.ops ?? {})) {
      if (op.frontier !== undefined) out.set(name, op.frontier);
    }
    return out;
  }

  /**
   * Why an operator ran (or did not) in the last run.
   *
   * @param node The operator's name.
   * @param options Which store to read.
   * @returns The explanation.
   */
  async explain(node: string, options: ReadOptions = {}): Promise<Explanation> {
    if (!this.#byName.has(node)) {
      throw new RangeError(
        `Cannot explain "${node}": it is not an operator of dataflow "${this.name}" (expected one of ${
          this.nodes.map((n) => `"${n}"`).join(", ")
        })`,
      );
    }
    const { state } = await this.#latest(options);
    const op = state?.ops[node];
    if (op === undefined) {
      throw new RangeError(
        `Cannot explain "${node}": dataflow "${this.name}" has no completed run with it yet`,
      );
    }
    return {
      node,
      status: op.stats.status,
      ...op.explain,
      message: describe(node, op),
    };
  }

  /**
   * The `(key, value, time, diff)` updates a collection went through in the last run:
   * a retraction (-1) of each old value and an insertion (+1) of each new one.
   *
   * @param collection The collection or its name.
   * @param options Which store to read.
   * @returns The updates, in key order.
   */
  async *changes<V = unknown>(
    collection: Collection<V> | string,
    options: ReadOptions = {},
  ): AsyncGenerator<Update<V>> {
    const name = typeof collection === "string" ? collection : collection.name;
    const def = this.#byName.get(name);
    if (def === undefined || def.kind === "node") {
      throw new RangeError(
        `Cannot list changes of "${name}": it is not a collection of dataflow "${this.name}"`,
      );
    }
    const { store, state } = await this.#latest(options);
    const op = state?.ops[name];
    if (op === undefined) return;
    for await (const change of treesOf(store).diff(op.prevOut, op.out)) {
      if (change.before !== undefined) {
        yield {
          key: change.key,
          value: change.before as V,
          time: state!.time,
          diff: -1,
        };
      }
      if (change.after !== undefined) {
        yield {
          key: change.key,
          value: change.after as V,
          time: state!.time,
          diff: 1,
        };
      }
    }
  }
}

/** An output kept in memory: a value, or a patch on an earlier output not applied yet. */
interface Materialized {
  id: string;
  ready: boolean;
  value: unknown;
  base?: Materialized;
  changes?: TreeChangeLike[];
}

/** The value of a materialized output, applying pending patches (each to a copy). */
function force(entry: Materialized): unknown {
  if (!entry.ready) {
    entry.value = patch(
      force(entry.base!) as Map<string, unknown>,
      entry.changes!,
    );
    entry.ready = true;
    delete entry.base;
    delete entry.changes;
  }
  return entry.value;
}

/** A copy of a key-ordered map with changes (in key order) applied, still in key order. */
function patch(
  old: Map<string, unknown>,
  changes: TreeChangeLike[],
): Map<string, unknown> {
  const added: [string, unknown][] = [];
  const map = new Map(old);
  for (const change of changes) {
    if (change.after === undefined) map.delete(change.key);
    else if (change.before === undefined) {
      added.push([change.key, change.after]);
    } else map.set(change.key, change.after);
  }
  if (added.length === 0) return map;
  const merged = new Map<string, unknown>();
  let i = 0;
  for (const [key, value] of map) {
    while (i < added.length && compare(added[i]![0], key) < 0) {
      merged.set(added[i]![0], added[i]![1]);
      i++;
    }
    merged.set(key, value);
  }
  for (; i < added.length; i++) merged.set(added[i]![0], added[i]![1]);
  return merged;
}

function describe(node: string, op: OpState): string {
  const { explain, stats } = op;
  switch (explain.reason) {
    case "new":
      return `"${node}" ran on all its input because it had no stored state`;
    case "version":
      return `"${node}" ran on all its input because its version changed from "${explain.version?.before}" to "${explain.version?.after}"`;
    case "nondeterministic":
      return `"${node}" ran on all its input because it is not deterministic (deterministic: false)`;
    case "unchanged":
      return `"${node}" did not run: none of its inputs changed`;
    case "not-in-plan":
      return `"${node}" did not run: it was not in the run's plan`;
    case "source":
      return `"${node}" is an input whose data changed (${stats.added} added, ${stats.changed} changed, ${stats.removed} removed)`;
    case "inputs": {
      const parts = explain.inputs.map((i) =>
        i.changedKeys === undefined
          ? `"${i.name}" (hash ${i.before.slice(0, 14)} -> ${
            i.after.slice(0, 14)
          })`
          : `"${i.name}" (${i.changedKeys} keys: ${
            i.keys!.map((k) => `"${k}"`).join(", ")
          }${i.changedKeys > i.keys!.length ? ", …" : ""})`
      );
      return `"${node}" ran because its inputs changed: ${parts.join("; ")}${
        stats.status === "cutoff"
          ? "; its output did not change, so its dependents were cut off"
          : ""
      }`;
    }
  }
}
