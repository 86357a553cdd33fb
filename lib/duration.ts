/**
 * Durations as people write them on command lines: `90s`, `30m`, `1h30m`, `7d`, `2w`.
 *
 * @module
 */

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parse a duration such as `1h30m` into milliseconds.
 *
 * @param text The duration: one or more `<number><unit>` parts, units ms, s, m, h, d, w; a bare number is seconds.
 * @returns Milliseconds.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseDuration } from "./duration.ts";
 * assert.ok(parseDuration("1h30m") === 5_400_000);
 * assert.ok(parseDuration("10") === 10_000);
 * ```
 */
export function parseDuration(text: string): number {
  const trimmed = text.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Number(trimmed) * 1000;
  const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/g)];
  if (trimmed === "" || parts.map((p) => p[0]).join("") !== trimmed) {
    throw new SyntaxError(
      `Cannot parse duration "${text}": expected e.g. "90s", "30m", "1h30m", "7d" or "2w"`,
    );
  }
  return parts.reduce((ms, p) => ms + Number(p[1]) * UNITS[p[2]!]!, 0);
}

/**
 * Format milliseconds compactly, e.g. `1h02m` or `3.2s`.
 *
 * @param ms Milliseconds.
 * @returns A short human string.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatDuration } from "./duration.ts";
 * assert.ok(formatDuration(3_723_000) === "1h02m");
 * ```
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const totalMin = Math.floor(ms / 60_000);
  if (totalMin < 60) {
    return `${totalMin}m${
      String(Math.floor((ms % 60_000) / 1000)).padStart(2, "0")
    }s`;
  }
  const h = Math.floor(totalMin / 60);
  if (h < 48) return `${h}h${String(totalMin % 60).padStart(2, "0")}m`;
  return `${Math.floor(h / 24)}d${String(h % 24).padStart(2, "0")}h`;
}
