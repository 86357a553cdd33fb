import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.3.0";
import { seededRandom } from "../lib/random.ts";
import {
  decodeValue,
  encodeCanonical,
  encodeValue,
  fingerprint,
} from "../store/cbor.ts";
import { propertyRuns } from "./test_seed.ts";

const hex = (b: Uint8Array) =>
  [...b].map((x) => x.toString(16).padStart(2, "0")).join("");

test("encodeCanonical() picks the shortest forms of RFC 8949 §4.2", () => {
  assert.equal(hex(encodeCanonical(0)), "00");
  assert.equal(hex(encodeCanonical(23)), "17");
  assert.equal(hex(encodeCanonical(24)), "1818");
  assert.equal(hex(encodeCanonical(-1)), "20");
  assert.equal(hex(encodeCanonical(2 ** 40)), "1b0000010000000000");
  assert.equal(hex(encodeCanonical(1.5)), "f93e00");
  assert.equal(hex(encodeCanonical(100000.5)), "fa47c35040");
  assert.equal(hex(encodeCanonical(1.1)), "fb3ff199999999999a");
  assert.equal(hex(encodeCanonical(5.960464477539063e-8)), "f90001");
  assert.equal(hex(encodeCanonical(Infinity)), "f97c00");
  assert.equal(hex(encodeCanonical("a")), "6161");
  assert.equal(hex(encodeCanonical(new Uint8Array([1, 2]))), "420102");
  assert.equal(
    hex(encodeCanonical([1, [2]])),
    "01".replace("01", "820181") + "02",
  );
  assert.equal(hex(encodeCanonical(2n ** 64n)), "c249010000000000000000");
});

test("encodeCanonical() sorts map keys by their encoded bytes", () => {
  // "b" (6162) sorts before "aa" (626161) because shorter encodings come first.
  assert.equal(hex(encodeCanonical({ aa: 1, b: 2 })), "a2616202626161" + "01");
  assert.deepEqual(
    encodeCanonical(new Map<unknown, number>([[10, 1], [-1, 2]])),
    encodeCanonical(new Map<unknown, number>([[-1, 2], [10, 1]])),
  );
});

test("encodeCanonical() policy for NaN and -0", () => {
  const otherNaN = new Float64Array(
    new BigUint64Array([0x7ff8000000000123n]).buffer,
  )[0]!;
  assert.equal(hex(encodeCanonical(NaN)), "f97e00");
  assert.equal(hex(encodeCanonical(otherNaN)), "f97e00");
  assert.equal(hex(encodeCanonical(-0)), "f98000");
  assert.notEqual(hex(encodeCanonical(-0)), hex(encodeCanonical(0)));
});

test("encodeCanonical() rejects what it cannot encode, naming the path", () => {
  assert.throws(
    () => encodeCanonical({ a: [1, undefined] }),
    /value\.a\[1\]: undefined is not encodable/,
  );
  assert.throws(() => encodeCanonical({ f() {} }), /value\.f: function/);
  assert.throws(() => encodeCanonical(Symbol("s")), TypeError);
  assert.throws(
    () => encodeCanonical(new (class Point {})()),
    /Point instances are not encodable/,
  );
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => encodeCanonical(cyclic), /cycle/);
});

/** The same value with the keys of every object and Map in a random order. */
function shuffleKeys(value: unknown, random: () => number): unknown {
  const shuffle = <T>(items: T[]): T[] => {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  };
  if (Array.isArray(value)) return value.map((v) => shuffleKeys(v, random));
  if (value instanceof Map) {
    return new Map(
      shuffle([...value]).map(([k, v]) => [k, shuffleKeys(v, random)]),
    );
  }
  if (typeof value === "object" && value !== null) {
    const out: Record<string, unknown> = {};
    for (const key of shuffle(Object.keys(value))) {
      Object.defineProperty(out, key, {
        value: shuffleKeys((value as Record<string, unknown>)[key], random),
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
    return out;
  }
  return value;
}

test("encodeCanonical() and fingerprint() ignore the order of object keys and Map entries", async () => {
  const mapOf = fc.array(
    fc.tuple(fc.oneof(fc.string(), fc.integer()), fc.jsonValue()),
    {
      maxLength: 8,
    },
  ).map((entries) => new Map<unknown, unknown>(entries));
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.jsonValue(), mapOf, fc.array(mapOf, { maxLength: 3 })),
      fc.integer({ min: 0, max: 2 ** 31 - 1 }),
      async (value, seed) => {
        const shuffled = shuffleKeys(value, seededRandom(seed));
        assert.equal(
          hex(encodeCanonical(shuffled)),
          hex(encodeCanonical(value)),
        );
        assert.equal(await fingerprint(shuffled), await fingerprint(value));
      },
    ),
    propertyRuns(200),
  );
});

test("fingerprint() differs when a value changes", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.dictionary(fc.string(), fc.jsonValue(), { minKeys: 1 }),
      fc.jsonValue(),
      async (record, replacement) => {
        const key = Object.keys(record)[0]!;
        const changed = { ...record, [key]: replacement };
        if (
          hex(encodeCanonical(record[key])) ===
            hex(encodeCanonical(replacement))
        ) {
          return;
        }
        assert.notEqual(await fingerprint(changed), await fingerprint(record));
      },
    ),
    propertyRuns(200),
  );
  assert.notEqual(await fingerprint([1, 2]), await fingerprint([2, 1]));
  assert.notEqual(await fingerprint({ a: 1 }), await fingerprint({ a: "1" }));
});

test("encodeCanonical() output decodes to a value with the same encoding", () => {
  fc.assert(
    fc.property(
      fc.jsonValue().filter((v) => !JSON.stringify(v).includes('"__proto__"')),
      (v) => {
        // Large integers decode as bigint, which encodes the same as the number.
        const bytes = encodeCanonical(v);
        assert.equal(hex(encodeCanonical(decodeValue(bytes))), hex(bytes));
      },
    ),
    propertyRuns(200),
  );
});

test("encodeValue() writes plain RFC 8949 maps, not cbor-x records", () => {
  assert.equal(hex(encodeValue({ a: 1 })), "a1616101");
});
