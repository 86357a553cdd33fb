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

export { jsonText, toJsonValue } from "../lib/io/json_value.ts";
