/**
 * The one row format every benchmark section reports in, and the table
 * bench/suite.ts prints and writes to bench/RESULTS.md.
 *
 * @module
 */

/** One measured comparison: cairn against a peer, in the same run. */
export interface BenchRow {
  /** Section, e.g. "kNN" or "store". */
  section: string;
  /** What was measured. */
  case: string;
  /** cairn's figure (time or throughput, with units). */
  cairn: string;
  /** The peer's name. */
  peer: string;
  /** The peer's figure, or why it is missing. */
  peerValue: string;
  /** cairn's cost over the peer's (> 1: cairn slower), or "-" if missing. */
  ratio: string;
}

/** Median of a non-empty list. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Formats a cost ratio (cairn over peer). */
export function ratio(cairn: number, peer: number): string {
  return `${(cairn / peer).toFixed(2)}×`;
}

/** Seconds with three decimals. */
export function seconds(s: number): string {
  return `${s.toFixed(3)} s`;
}

/** Renders rows as a Markdown table. */
export function renderTable(rows: readonly BenchRow[]): string {
  const header = [
    "section",
    "case",
    "cairn",
    "peer",
    "peer value",
    "cairn/peer",
  ];
  const body = rows.map((r) => [
    r.section,
    r.case,
    r.cairn,
    r.peer,
    r.peerValue,
    r.ratio,
  ]);
  const widths = header.map((h, i) =>
    Math.max(h.length, ...body.map((row) => row[i]!.length))
  );
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(" | ")} |`;
  return [
    line(header),
    `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`,
    ...body.map(line),
  ].join("\n");
}

/** The runtime running this process, with its version. */
export function runtimeName(): string {
  const g = globalThis as {
    Deno?: { version: { deno: string } };
    Bun?: { version: string };
  };
  if (g.Deno) return `Deno ${g.Deno.version.deno}`;
  if (g.Bun) return `Bun ${g.Bun.version}`;
  return `Node ${process.version}`;
}
