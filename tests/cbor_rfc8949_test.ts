// The examples of RFC 8949 Appendix A, as a table of our own: each row is a
// value, its encoding, and what cairn's codec does with it.
// - "both": encodeCanonical() writes exactly these bytes and decodeValue() reads the value back;
// - "value": like "both", but only encodeValue() writes it (fingerprints
//   refuse `undefined`, so encodeCanonical() throws a TypeError);
// - "decode": decodeValue() reads the value; the encoder writes another form
//   for the same JavaScript value (1.0 is the number 1, written as an integer);
// - "reject": a tag or simple value cairn does not store; decoding fails with a
//   SyntaxError that names it, never with a crash or a wrong value.
import { test } from "node:test";
import assert from "node:assert/strict";
import { decodeValue, encodeCanonical, encodeValue } from "../store/cbor.ts";

const hex = (b: Uint8Array) =>
  [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
const bytes = (h: string) =>
  new Uint8Array(h.match(/../g)!.map((x) => parseInt(x, 16)));

type Row = [mode: "both" | "value" | "decode", cbor: string, value: unknown];

const ROWS: Row[] = [
  ["both", "00", 0],
  ["both", "01", 1],
  ["both", "0a", 10],
  ["both", "17", 23],
  ["both", "1818", 24],
  ["both", "1819", 25],
  ["both", "1864", 100],
  ["both", "1903e8", 1000],
  ["both", "1a000f4240", 1000000],
  ["both", "1b000000e8d4a51000", 1000000000000],
  ["both", "1bffffffffffffffff", 18446744073709551615n],
  ["both", "c249010000000000000000", 18446744073709551616n],
  ["decode", "3bffffffffffffffff", -18446744073709551616],
  ["both", "c349010000000000000000", -18446744073709551617n],
  ["both", "20", -1],
  ["both", "29", -10],
  ["both", "3863", -100],
  ["both", "3903e7", -1000],
  ["decode", "f90000", 0],
  ["both", "f98000", -0],
  ["decode", "f93c00", 1],
  ["both", "fb3ff199999999999a", 1.1],
  ["both", "f93e00", 1.5],
  ["decode", "f97bff", 65504],
  ["decode", "fa47c35000", 100000],
  ["both", "fa7f7fffff", 3.4028234663852886e+38],
  ["both", "fb7e37e43c8800759c", 1.0e+300],
  ["both", "f90001", 5.960464477539063e-8],
  ["both", "f90400", 0.00006103515625],
  ["decode", "f9c400", -4],
  ["both", "fbc010666666666666", -4.1],
  ["both", "f97c00", Infinity],
  ["both", "f97e00", NaN],
  ["both", "f9fc00", -Infinity],
  ["decode", "fa7f800000", Infinity],
  ["decode", "fa7fc00000", NaN],
  ["decode", "faff800000", -Infinity],
  ["decode", "fb7ff0000000000000", Infinity],
  ["decode", "fb7ff8000000000000", NaN],
  ["decode", "fbfff0000000000000", -Infinity],
  ["both", "f4", false],
  ["both", "f5", true],
  ["both", "f6", null],
  ["value", "f7", undefined],
  [
    "decode",
    "c074323031332d30332d32315432303a30343a30305a",
    new Date("2013-03-21T20:04:00Z"),
  ],
  ["decode", "c11a514b67b0", new Date(1363896240 * 1000)],
  ["decode", "c1fb41d452d9ec200000", new Date(1363896240500)],
  ["both", "40", new Uint8Array()],
  ["both", "4401020304", new Uint8Array([1, 2, 3, 4])],
  ["both", "60", ""],
  ["both", "6161", "a"],
  ["both", "6449455446", "IETF"],
  ["both", "62225c", '"\\'],
  ["both", "62c3bc", "\u00fc"],
  ["both", "63e6b0b4", "\u6c34"],
  ["both", "64f0908591", "\ud800\udd51"],
  ["both", "80", []],
  ["both", "83010203", [1, 2, 3]],
  ["both", "8301820203820405", [1, [2, 3], [4, 5]]],
  [
    "both",
    "98190102030405060708090a0b0c0d0e0f101112131415161718181819",
    Array.from({ length: 25 }, (_, i) => i + 1),
  ],
  ["both", "a0", {}],
  ["both", "a201020304", new Map([[1, 2], [3, 4]])],
  ["both", "a26161016162820203", { a: 1, b: [2, 3] }],
  ["both", "826161a161626163", ["a", { b: "c" }]],
  [
    "both",
    "a56161614161626142616361436164614461656145",
    { a: "A", b: "B", c: "C", d: "D", e: "E" },
  ],
  ["decode", "5f42010243030405ff", new Uint8Array([1, 2, 3, 4, 5])],
  ["decode", "7f657374726561646d696e67ff", "streaming"],
  ["decode", "9fff", []],
  ["decode", "9f018202039f0405ffff", [1, [2, 3], [4, 5]]],
  ["decode", "9f01820203820405ff", [1, [2, 3], [4, 5]]],
  ["decode", "83018202039f0405ff", [1, [2, 3], [4, 5]]],
  ["decode", "83019f0203ff820405", [1, [2, 3], [4, 5]]],
  [
    "decode",
    "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff",
    Array.from({ length: 25 }, (_, i) => i + 1),
  ],
  ["decode", "bf61610161629f0203ffff", { a: 1, b: [2, 3] }],
  ["decode", "826161bf61626163ff", ["a", { b: "c" }]],
  ["decode", "bf6346756ef563416d7421ff", { Fun: true, Amt: -2 }],
];

/** Appendix A items cairn does not store: tags 23, 24, 32 and simple values. */
const REJECTED: [cbor: string, names: RegExp][] = [
  ["d74401020304", /tag 23/],
  ["d818456449455446", /tag 24/],
  ["d82076687474703a2f2f7777772e6578616d706c652e636f6d", /tag 32/],
  ["f0", /simple value 16/],
  ["f8ff", /simple value 255/],
];

test("decodeValue() reads every RFC 8949 Appendix A example cairn stores", () => {
  for (const [, cbor, value] of ROWS) {
    const decoded = decodeValue(bytes(cbor));
    if (typeof value === "number" && Number.isNaN(value)) {
      assert.ok(Number.isNaN(decoded), cbor);
    } else if (typeof value === "number") {
      assert.ok(Object.is(decoded, value), `${cbor}: ${String(decoded)}`);
    } else assert.deepEqual(decoded, value, cbor);
  }
});

test("encodeCanonical() and encodeValue() write the RFC 8949 Appendix A bytes for preferred-form examples", () => {
  let checked = 0;
  for (const [mode, cbor, value] of ROWS) {
    if (mode === "decode") continue;
    assert.equal(hex(encodeValue(value)), cbor);
    if (mode === "both") assert.equal(hex(encodeCanonical(value)), cbor);
    else assert.throws(() => encodeCanonical(value), TypeError);
    checked++;
  }
  assert.equal(checked, ROWS.filter(([mode]) => mode !== "decode").length);
  assert.ok(checked >= 50, `only ${checked} rows were encoded`);
});

test("decodeValue() refuses the Appendix A tags and simple values it does not store, naming them", () => {
  for (const [cbor, names] of REJECTED) {
    assert.throws(() => decodeValue(bytes(cbor)), (error: unknown) => {
      assert.ok(error instanceof SyntaxError, cbor);
      assert.match(error.message, names);
      return true;
    });
  }
});
