import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.3.0";
import { decode as cborxDecode, Encoder } from "npm:cbor-x@^1.6.8/encode";
import { decodeValue, encodeValue } from "../store/cbor.ts";

// cbor-x is the reference decoder here (a dev dependency only): cairn's items
// must be plain RFC 8949 that another implementation reads the same way.
const cborx = new Encoder({
  useRecords: false,
  variableMapSize: true,
  mapsAsObjects: true,
});
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
    { numRuns: 300 },
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
    { numRuns: 300 },
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
