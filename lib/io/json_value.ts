/**
 * Decoded CBOR values as plain JSON data: the one mapping `cairn cat`,
 * `cairn show`, `--json` output and JSON-lines export share.
 *
 * @module
 */

/**
 * Encode bytes as standard base64 (with padding).
 *
 * @param bytes The bytes.
 * @returns The base64 text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toBase64 } from "./json_value.ts";
 * assert.equal(toBase64(new Uint8Array([104, 105])), "aGk=");
 * ```
 */
export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/**
 * Turn a decoded CBOR value into plain JSON data. The mapping, used by
 * `cairn cat`, `cairn show` and `cairn export`:
 * - `Uint8Array` (a CBOR byte string) becomes a base64 string;
 * - other typed arrays become arrays of numbers (`BigInt64Array` and
 *   `BigUint64Array` become arrays of decimal strings);
 * - `bigint` becomes a decimal string;
 * - `Map` becomes an object when every key is a string or number, else an
 *   array of `[key, value]` pairs;
 * - `Date` becomes an ISO string;
 * - `undefined`, `NaN` and `±Infinity` become `null` (object members that are
 *   `undefined` are kept as `null` too).
 *
 * @param value A decoded value.
 * @returns JSON-safe data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toJsonValue } from "./json_value.ts";
 * assert.deepEqual(
 *   toJsonValue({ v: new Float32Array([0.5]), n: 2n ** 70n, b: new Uint8Array([1]) }),
 *   { v: [0.5], n: "1180591620717411303424", b: "AQ==" },
 * );
 * ```
 */
export function toJsonValue(value: unknown): unknown {
  if (value === undefined || value === null) return null;
  switch (typeof value) {
    case "bigint":
      return value.toString();
    case "number":
      return Number.isFinite(value) ? value : null;
    case "string":
    case "boolean":
      return value;
    case "object":
      break;
    default:
      return String(value);
  }
  if (value instanceof Uint8Array && value.constructor === Uint8Array) {
    return toBase64(value);
  }
  if (value instanceof BigInt64Array || value instanceof BigUint64Array) {
    return Array.from(value, (x) => x.toString());
  }
  if (ArrayBuffer.isView(value)) {
    return Array.from(
      value as unknown as ArrayLike<number>,
      (x) => Number.isFinite(x) ? x : null,
    );
  }
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(toJsonValue);
  if (value instanceof Map) {
    const keys = [...value.keys()];
    if (keys.every((k) => typeof k === "string" || typeof k === "number")) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of value) setMember(out, String(k), toJsonValue(v));
      return out;
    }
    return [...value].map(([k, v]) => [toJsonValue(k), toJsonValue(v)]);
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) setMember(out, k, toJsonValue(v));
  return out;
}

/** Set an own property, even one named `__proto__`. */
function setMember(
  target: Record<string, unknown>,
  key: string,
  value: unknown,
): void {
  Object.defineProperty(target, key, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
}

/**
 * `JSON.stringify` after {@linkcode toJsonValue}.
 *
 * @param value Any decoded value.
 * @param indent Indentation, as for `JSON.stringify`. Default: none.
 * @returns The JSON text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { jsonText } from "./json_value.ts";
 * assert.equal(jsonText({ n: 1n }), '{"n":"1"}');
 * ```
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(toJsonValue(value), null, indent);
}
