/**
 * Property: for random small dataflows and random sequences of input edits
 * (snapshots and deltas; inserts, updates, deletes, re-adds), the incremental
 * result after every run equals a full recompute on a fresh store.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "npm:fast-check@^4.3.0";
import { propertyRuns, testRandom } from "./test_seed.ts";
import { type Collection, Dataflow, type Node } from "../lib/dataflow/mod.ts";

interface Row {
  x: number;
  g: string;
}

const MAPS = [
  (v: Row) => ({ x: v.x * 2, g: v.g }),
  (v: Row) => ({ x: v.x % 3, g: v.g }), // many inputs give one output: cutoff
  (v: Row, k: string) => ({ x: v.x + k.length, g: v.g === "a" ? "b" : v.g }),
];
const FILTERS = [(v: Row) => v.x % 2 === 0, (v: Row) => v.x > 2];
const REDUCERS = [
  (g: string, rows: Row[]) => ({ x: rows.reduce((s, r) => s + r.x, 0), g }),
  (g: string, rows: Row[]) => ({ x: rows.length, g }),
  (g: string, rows: Row[]) => ({ x: Math.max(...rows.map((r) => r.x)), g }),
];
const GROUPS = [(v: Row) => v.g, (v: Row) => (v.x % 2 === 0 ? "even" : "odd")];

type OpSpec =
  | { kind: "map"; input: number; fn: number }
  | { kind: "filter"; input: number; fn: number }
  | { kind: "groupReduce"; input: number; key: number; fn: number }
  | { kind: "join"; left: number; right: number }
  | { kind: "node"; inputs: number[] };

type Edit =
  | { kind: "snapshot"; input: number; entries: [string, Row][] }
  | { kind: "delta"; input: number; upsert: [string, Row][]; delete: string[] };

const keyArb = fc.constantFrom("k0", "k1", "k2", "k3", "k4", "k5", "k6");
const rowArb = fc.record({
  x: fc.integer({ min: 0, max: 6 }),
  g: fc.constantFrom("a", "b", "c"),
});
const opArb: fc.Arbitrary<OpSpec> = fc.oneof(
  fc.record({
    kind: fc.constant("map" as const),
    input: fc.nat(),
    fn: fc.nat({ max: MAPS.length - 1 }),
  }),
  fc.record({
    kind: fc.constant("filter" as const),
    input: fc.nat(),
    fn: fc.nat({ max: FILTERS.length - 1 }),
  }),
  fc.record({
    kind: fc.constant("groupReduce" as const),
    input: fc.nat(),
    key: fc.nat({ max: GROUPS.length - 1 }),
    fn: fc.nat({ max: REDUCERS.length - 1 }),
  }),
  fc.record({
    kind: fc.constant("join" as const),
    left: fc.nat(),
    right: fc.nat(),
  }),
  fc.record({
    kind: fc.constant("node" as const),
    inputs: fc.array(fc.nat(), { minLength: 1, maxLength: 2 }),
  }),
);
const editArb: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({
    kind: fc.constant("snapshot" as const),
    input: fc.nat({ max: 1 }),
    entries: fc.array(fc.tuple(keyArb, rowArb), { maxLength: 7 }),
  }),
  fc.record({
    kind: fc.constant("delta" as const),
    input: fc.nat({ max: 1 }),
    upsert: fc.array(fc.tuple(keyArb, rowArb), { maxLength: 3 }),
    delete: fc.array(keyArb, { maxLength: 3 }),
  }),
);

let stores = 0;

/** Build the dataflow a spec describes on a fresh `memory:` store. */
function build(specs: OpSpec[]): Dataflow {
  const df = new Dataflow("prop", { store: `memory:df-prop-${++stores}` });
  const collections: Collection<Row>[] = [
    df.input<Row>("in0"),
    df.input<Row>("in1"),
  ];
  const nodes: (Collection<Row> | Node<number>)[] = [...collections];
  specs.forEach((spec, i) => {
    const name = `op${i}-${spec.kind}`;
    const pick = (n: number) => collections[n % collections.length]!;
    switch (spec.kind) {
      case "map":
        collections.push(df.map(name, pick(spec.input), MAPS[spec.fn]!));
        break;
      case "filter":
        collections.push(df.filter(name, pick(spec.input), FILTERS[spec.fn]!));
        break;
      case "groupReduce":
        collections.push(
          df.groupReduce(
            name,
            pick(spec.input),
            GROUPS[spec.key]!,
            REDUCERS[spec.fn]!,
          ),
        );
        break;
      case "join":
        collections.push(
          df.join(
            name,
            pick(spec.left),
            pick(spec.right),
            (l, r) => ({ x: l.x * 10 + r.x, g: l.g }),
          ),
        );
        break;
      case "node": {
        const inputs = spec.inputs.map((n) => nodes[n % nodes.length]!);
        const node = df.node(
          name,
          inputs,
          (...values: unknown[]) =>
            values.reduce<number>(
              (sum, v) =>
                sum + (v instanceof Map
                  ? [...v.values()].reduce((s: number, r: Row) =>
                    s + r.x + 1, 0)
                  : (v as number)),
              0,
            ),
        );
        nodes.push(node);
        return;
      }
    }
    nodes.push(collections.at(-1)!);
  });
  return df;
}

function plain(value: unknown): unknown {
  return value instanceof Map
    ? [...value.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1))
    : value;
}

test("Dataflow.run() incremental results equal a full recompute after every edit", async () => {
  const { seed } = testRandom("dataflow property");
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArb, { minLength: 1, maxLength: 6 }),
      fc.array(editArb, { minLength: 1, maxLength: 6 }),
      async (specs, edits) => {
        const incremental = build(specs);
        const model: Map<string, Row>[] = [new Map(), new Map()];
        for (const edit of edits) {
          const target = model[edit.input]!;
          let source: unknown;
          if (edit.kind === "snapshot") {
            target.clear();
            for (const [k, v] of edit.entries) target.set(k, v);
            source = edit.input === 0 ? edit.entries : new Map(edit.entries);
          } else {
            for (const [k, v] of edit.upsert) target.set(k, v);
            for (const k of edit.delete) target.delete(k);
            // Deletes apply after upserts in the model; send the same delta.
            const upsert = edit.upsert.filter(([k]) =>
              !edit.delete.includes(k)
            );
            source = { upsert, delete: edit.delete };
          }
          const got = await incremental.run({
            [`in${edit.input}`]: source as never,
          });
          const fresh = await build(specs).run({
            in0: new Map(model[0]),
            in1: new Map(model[1]),
          });
          for (const name of incremental.nodes) {
            assert.deepEqual(
              plain(got.get(name)),
              plain(fresh.get(name)),
              `operator ${name}`,
            );
          }
        }
      },
    ),
    { ...propertyRuns(200), seed },
  );
});
