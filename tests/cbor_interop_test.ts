import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.3.0";
import { decode as cborxDecode, Encoder } from "npm:cbor-x@^1.6.8/encode";
import { encode as cbor2Encode } from "npm:cbor2@^2.3.0";
import { decodeValue, encodeCanonical, encodeValue } from "../store/cbor.ts";
import { propertyRuns } from "./test_seed.ts";

// cbor-x is the reference decoder here (a dev dependency only): cairn's items
// must be plain RFC 8949 that another implementation reads the same way.
const cborx = new Encoder({
  useRecords: false,
  variableMapSize: true,
  mapsAsObjects: true,
});
const hex = (b: Uint8Array) =>
  [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const noProto = fc.jsonValue().filter((v) =>
  !JSON.stringify(v).includes('"__proto__"')
);

test("encodeValue() output decodes the same with cbor-x", () => {
  fc.assert(
    fc.property(noProto, (v) => {
      const normal = JSON.parse(JSON.stringify(v));
      // cbor-x decodes 64-bit integers as bigint: turn those back into numbers to compare.
      const viaCborx = JSON.parse(
        JSON.stringify(
          cborxDecode(encodeValue(normal)),
          (_k, y) => typeof y === "bigint" ? Number(y) : y,
        ),
      );
      assert.deepEqual(viaCborx, normal);
    }),
    propertyRuns(300),
  );
  const typed = {
    f: new Float32Array([1.5, -2]),
    d: new Float64Array([Math.PI]),
    i: new Int32Array([-7, 8]),
    b: new Uint8Array([1, 2]),
  };
  assert.deepEqual(cborxDecode(encodeValue(typed)), typed);
});

test("decodeValue() reads what cbor-x writes", () => {
  fc.assert(
    fc.property(noProto, (v) => {
      const normal = JSON.parse(JSON.stringify(v));
      const bytes = cborx.encode(normal);
      assert.deepEqual(
        decodeValue(
          new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
        ),
        normal,
      );
    }),
    propertyRuns(300),
  );
});

test("decodeValue() round-trips values cbor-x would alter", () => {
  // JSON.parse makes "__proto__" an own key (an object literal would set the prototype).
  const tricky = {
    ...JSON.parse('{"__proto__": 1}'),
    negZero: -0,
    big: 2 ** 40,
    nan: NaN,
    undef: undefined,
    when: new Date(1_700_000_000_000),
  };
  const back = decodeValue<Record<string, unknown>>(encodeValue(tricky));
  assert.equal(Object.getPrototypeOf(back), Object.prototype);
  assert.deepEqual(Object.keys(back).sort(), [
    "__proto__",
    "big",
    "nan",
    "negZero",
    "undef",
    "when",
  ]);
  assert.ok(Object.is(back.negZero, -0));
  assert.equal(back.big, 2 ** 40);
  assert.ok(Number.isNaN(back.nan));
  assert.equal(back.undef, undefined);
  assert.deepEqual(back.when, tricky.when);
  assert.equal(Object.getOwnPropertyDescriptor(back, "__proto__")?.value, 1);
});

test("decodeValue() rejects truncated input, trailing bytes and unknown tags", () => {
  const bytes = encodeValue({ a: "hello" });
  assert.throws(
    () => decodeValue(bytes.subarray(0, bytes.length - 2)),
    SyntaxError,
  );
  assert.throws(
    () => decodeValue(new Uint8Array([...bytes, 0])),
    /1 bytes follow the item/,
  );
  assert.throws(
    () => decodeValue(new Uint8Array([0xd8, 0xff, 0x01])),
    /tag 255/,
  );
  assert.deepEqual(decodeValue(new Uint8Array([0x9f, 0x01, 0x02, 0xff])), [
    1,
    2,
  ]);
  assert.deepEqual(
    decodeValue(new Uint8Array([0xbf, 0x61, 0x61, 0x01, 0xff])),
    { a: 1 },
  );
  assert.deepEqual(
    decodeValue(new Uint8Array([0xa1, 0x01, 0x02])),
    new Map([[1, 2]]),
  );
});

// cbor2 is the second oracle (a dev dependency only): with `cde: true` it
// writes RFC 8949 §4.2 core deterministic encoding, which encodeCanonical()
// must match byte for byte.
const unsafeInteger = (v: unknown): boolean =>
  typeof v === "number" && Number.isInteger(v) && !Number.isSafeInteger(v);
const hasUnsafeInteger = (v: unknown): boolean =>
  unsafeInteger(v) ||
  (typeof v === "object" && v !== null &&
    Object.values(v).some(hasUnsafeInteger));

test("encodeCanonical() writes the same bytes as cbor2's core deterministic encoding", () => {
  const doubles = fc.double();
  fc.assert(
    fc.property(
      fc.oneof(noProto, doubles, fc.array(doubles), fc.bigInt()),
      (v) => {
        // cbor2 writes integral numbers beyond 2^53 as floats; cairn writes every
        // whole number that fits 64 bits as an integer (docs/format.md), so
        // those are compared separately below.
        if (hasUnsafeInteger(v)) return;
        assert.equal(
          hex(encodeCanonical(v)),
          hex(cbor2Encode(v, { cde: true })),
        );
      },
    ),
    propertyRuns(300),
  );
  const ordered = new Map<unknown, unknown>([["b", 1], [10, 2], ["aa", 3], [
    -1,
    4,
  ]]);
  assert.equal(
    hex(encodeCanonical(ordered)),
    hex(cbor2Encode(ordered, { cde: true })),
  );
  // The documented difference: -(2^63) is an integer for cairn, a float for cbor2.
  assert.equal(hex(encodeCanonical(-(2 ** 63))), "3b7fffffffffffffff");
  assert.equal(hex(cbor2Encode(-(2 ** 63), { cde: true })), "fadf000000");
});

test("decodeValue() reads what cbor2 writes", () => {
  fc.assert(
    fc.property(noProto, (v) => {
      const normal = JSON.parse(JSON.stringify(v));
      assert.deepEqual(decodeValue(cbor2Encode(normal, { cde: true })), normal);
    }),
    propertyRuns(300),
  );
});
