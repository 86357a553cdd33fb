/**
 * Formatting helpers shared by the CLI commands: counts, tables,
 * truncation, natural key order, and turning decoded CBOR values into JSON.
 *
 * @module
 */

/**
 * Format an integer with thousands separators (`20,000`), the same on every runtime.
 *
 * @param n The number.
 * @returns The formatted number.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatCount } from "./_format.ts";
 * assert.equal(formatCount(1234567), "1,234,567");
 * ```
 */
export function formatCount(n: number): string {
  const [int, frac] = String(n).split(".");
  const grouped = int!.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac === undefined ? grouped : `${grouped}.${frac}`;
}

/**
 * Shorten text to `max` characters, ending with `…` when cut.
 *
 * @param text The text.
 * @param max The longest result.
 * @returns The text, cut if needed.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { truncate } from "./_format.ts";
 * assert.equal(truncate("abcdef", 4), "abc…");
 * ```
 */
export function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, Math.max(0, max - 1))}…`;
}

/**
 * An ISO time without milliseconds, e.g. `2026-11-23T03:00:01Z`.
 *
 * @param iso An ISO time string.
 * @returns The shorter form; the input when it does not parse.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { shortTime } from "./_format.ts";
 * assert.equal(shortTime("2026-11-23T03:00:01.123Z"), "2026-11-23T03:00:01Z");
 * ```
 */
export function shortTime(iso: string | undefined): string {
  if (iso === undefined || iso === "") return "-";
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * Lay out rows as a table with a header, columns padded to their widest cell.
 *
 * @param header Column titles.
 * @param rows Cells, one array per row.
 * @param rightAligned Indexes of columns to right-align (numbers).
 * @returns The lines, without trailing spaces.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatTable } from "./_format.ts";
 * const lines = formatTable(["JOB", "STEPS"], [["demo", "41"]], [1]);
 * assert.equal(lines[1], "demo     41");
 * ```
 */
export function formatTable(
  header: string[],
  rows: string[][],
  rightAligned: number[] = [],
): string[] {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) =>
      rightAligned.includes(i)
        ? c.padStart(widths[i]!)
        : i === cells.length - 1
        ? c
        : c.padEnd(widths[i]!)
    ).join("  ").trimEnd();
  return [line(header), ...rows.map(line)];
}

/**
 * Compare step keys in natural order: runs of digits compare as numbers, so
 * `block-2` sorts before `block-10`.
 *
 * @param a A key.
 * @param b Another key.
 * @returns Negative, zero or positive, as for `Array.prototype.sort`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { naturalCompare } from "./_format.ts";
 * assert.deepEqual(["b-10", "b-2", "a"].sort(naturalCompare), ["a", "b-2", "b-10"]);
 * ```
 */
export function naturalCompare(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const nx = x.replace(/^0+(?=\d)/, "");
      const ny = y.replace(/^0+(?=\d)/, "");
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      return x.length - y.length;
    }
    return x < y ? -1 : 1;
  }
  if (pa.length !== pb.length) return pa.length - pb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Match a step key against a pattern where `*` stands for any run of characters.
 *
 * @param pattern The pattern, e.g. `rows-*`.
 * @param key The key.
 * @returns Whether it matches.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { matchKey } from "./_format.ts";
 * assert.ok(matchKey("rows-*", "rows-07"));
 * assert.ok(!matchKey("rows-*", "stats-07"));
 * ```
 */
export function matchKey(pattern: string, key: string): boolean {
  if (!pattern.includes("*")) return pattern === key;
  const re = new RegExp(
    `^${
      pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
        .join(".*")
    }$`,
    "s",
  );
  return re.test(key);
}

/**
 * Encode bytes as standard base64 (with padding).
 *
 * @param bytes The bytes.
 * @returns The base64 text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { toBase64 } from "./_format.ts";
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
 * import { toJsonValue } from "./_format.ts";
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
 * import { jsonText } from "./_format.ts";
 * assert.equal(jsonText({ n: 1n }), '{"n":"1"}');
 * ```
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(toJsonValue(value), null, indent);
}
