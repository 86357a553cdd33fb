import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "npm:fast-check@^4.3.0";
import {
  decodeValue,
  encodeCanonical,
  encodeValue,
  fingerprint,
} from "../store/cbor.ts";

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

test("fingerprint() is equal for equal values and differs for different ones", async () => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue(), fc.jsonValue(), async (a, b) => {
      const same = JSON.stringify(a) === JSON.stringify(b);
      if (same) assert.equal(await fingerprint(a), await fingerprint(b));
      else if (hex(encodeCanonical(a)) !== hex(encodeCanonical(b))) {
        assert.notEqual(await fingerprint(a), await fingerprint(b));
      }
    }),
    { numRuns: 200 },
  );
  assert.equal(
    await fingerprint({ x: 1, y: 2 }),
    await fingerprint({ y: 2, x: 1 }),
  );
  assert.notEqual(await fingerprint([1, 2]), await fingerprint([2, 1]));
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
    { numRuns: 200 },
  );
});

test("encodeValue() writes plain RFC 8949 maps, not cbor-x records", () => {
  assert.equal(hex(encodeValue({ a: 1 })), "a1616101");
});
