/**
 * Exporting a run's step outputs as JSON lines, CSV or a NumPy `.npy` file.
 * `cairn export` is a thin shell over {@linkcode exportRun}.
 *
 * @module
 */
import { lstat } from "node:fs/promises";
import { readValueChunks } from "../output.ts";
import type { StepRecord } from "../records.ts";
import type { RunState } from "../replay.ts";
import { resolveRun } from "../runs.ts";
import { writeFileAtomically } from "../write_file_atomically.ts";
import { encodeNpy, type NpyWritable } from "./npy.ts";
import { MissingChunkError } from "../../store/chunk_store.ts";
import type { Store } from "../../store/store.ts";
import { toJsonValue } from "./json_value.ts";

/**
 * An export format: JSON lines, CSV, or a NumPy `.npy` file.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ExportFormat } from "./export.ts";
 * const format: ExportFormat = "csv";
 * assert.equal(format, "csv");
 * ```
 */
export type ExportFormat = "jsonl" | "csv" | "npy";

interface ExportItem {
  key: string;
  /** Index within a stream step. */
  item?: number;
  value: unknown;
}

function selectSteps(state: RunState, patterns: string[]): StepRecord[] {
  const steps = [...state.steps.values()];
  if (steps.length === 0) {
    throw new Error(
      `Cannot export run "${state.job}/${state.run}": it has no done steps`,
    );
  }
  const chosen = patterns.length === 0
    ? steps
    : steps.filter((s) => patterns.some((p) => matchKey(p, s.key)));
  if (chosen.length === 0) {
    throw new RangeError(
      `Cannot export run "${state.job}/${state.run}": no step key matches ${
        patterns.map((p) => `"${p}"`).join(" or ")
      }`,
    );
  }
  return chosen.sort((a, b) => naturalCompare(a.key, b.key));
}

async function* readItems(
  store: Store,
  steps: StepRecord[],
): AsyncIterable<ExportItem> {
  for (const step of steps) {
    try {
      if (step.output.kind === "value") {
        yield {
          key: step.key,
          value: await readValueChunks(store.chunks, step.output.chunks),
        };
      } else {
        for (const [i, refs] of step.output.items.entries()) {
          yield {
            key: step.key,
            item: i,
            value: await readValueChunks(store.chunks, refs),
          };
        }
      }
    } catch (error) {
      if (error instanceof MissingChunkError) {
        throw new Error(
          `Cannot export step "${step.key}": ${error.message}; run the job again to recompute it`,
        );
      }
      throw error;
    }
  }
}

function describeValue(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (ArrayBuffer.isView(value)) return value.constructor.name;
  if (Array.isArray(value)) {
    return value.length === 0
      ? "an empty array"
      : `an array of ${describeValue(value[0])}`;
  }
  if (value instanceof Map) return "a Map";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function isScalar(value: unknown): boolean {
  return value === null || value === undefined ||
    ["string", "number", "bigint", "boolean"].includes(typeof value) ||
    value instanceof Date ||
    (value instanceof Uint8Array && value.constructor === Uint8Array);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null &&
    !Array.isArray(value) && !ArrayBuffer.isView(value) &&
    !(value instanceof Map) && !(value instanceof Date);
}

function isRowArray(value: unknown): value is ArrayLike<unknown> {
  return (Array.isArray(value) && value.every(isScalar)) ||
    (ArrayBuffer.isView(value) &&
      !(value instanceof Uint8Array && value.constructor === Uint8Array));
}

/** CSV rows of one output: an array of flat objects or rows, one flat object, or an array of scalars. */
function csvRows(item: ExportItem): Record<string, unknown>[] {
  const { key, value } = item;
  const fail = (why: string): never => {
    throw new TypeError(
      `Cannot export step "${key}" as csv: ${why}; csv needs an array of flat objects or of rows (arrays of numbers or strings); use format "jsonl"`,
    );
  };
  const fromObject = (o: Record<string, unknown>, row: number) => {
    for (const [col, v] of Object.entries(o)) {
      if (!isScalar(v)) {
        fail(
          `row ${row}, column "${col}" is ${describeValue(v)}, not a scalar`,
        );
      }
    }
    return o;
  };
  const fromRow = (r: ArrayLike<unknown>) => {
    const o: Record<string, unknown> = {};
    for (let i = 0; i < r.length; i++) o[String(i)] = r[i];
    return o;
  };
  if (isPlainObject(value)) return [fromObject(value, 0)];
  if (isRowArray(value)) {
    return Array.from(value as ArrayLike<unknown>, (v) => ({ value: v }));
  }
  if (!Array.isArray(value)) fail(`its output is ${describeValue(value)}`);
  return (value as unknown[]).map((row, i) => {
    if (isPlainObject(row)) return fromObject(row, i);
    if (isRowArray(row)) return fromRow(row);
    return fail(`row ${i} is ${describeValue(row)}`);
  });
}

function csvCell(value: unknown): string {
  if (value === null || value === undefined) return "";
  let text: string;
  if (value instanceof Date) text = value.toISOString();
  else if (typeof value === "number") {
    text = Number.isFinite(value) ? String(value) : "";
  } else if (typeof value === "object") text = String(toJsonValue(value));
  else text = String(value);
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

interface NumericArray {
  dtype: string;
  /** Row length for 2-D data; undefined for 1-D. */
  cols: number | undefined;
  rows: number;
  data: NpyWritable;
}

function numericOf(item: ExportItem): NumericArray {
  const { key, value } = item;
  const fail = (why: string): never => {
    throw new TypeError(
      `Cannot export step "${key}" as npy: ${why}; npy needs a numeric typed array, an array of numbers, or an array of equal-length rows of them; pick such steps with the steps option`,
    );
  };
  const asTyped = (v: unknown): NpyWritable | undefined => {
    if (
      v instanceof Float32Array || v instanceof Float64Array ||
      v instanceof Int32Array || v instanceof BigInt64Array
    ) return v;
    if (
      v instanceof Int8Array || v instanceof Int16Array ||
      v instanceof Uint8Array || v instanceof Uint16Array ||
      v instanceof Uint8ClampedArray
    ) return Int32Array.from(v);
    if (v instanceof Uint32Array) return Float64Array.from(v);
    if (Array.isArray(v) && v.every((x) => typeof x === "number")) {
      return Float64Array.from(v as number[]);
    }
    return undefined;
  };
  const dtypeOf = (a: NpyWritable) =>
    a instanceof Float32Array
      ? "float32"
      : a instanceof Float64Array
      ? "float64"
      : a instanceof Int32Array
      ? "int32"
      : "int64";
  const flat = asTyped(value);
  if (flat !== undefined) {
    return {
      dtype: dtypeOf(flat),
      cols: undefined,
      rows: flat.length,
      data: flat,
    };
  }
  if (!Array.isArray(value) || value.length === 0) {
    return fail(`its output is ${describeValue(value)}`);
  }
  const rows = value.map((r, i) =>
    asTyped(r) ?? fail(`row ${i} is ${describeValue(r)}`)
  );
  const cols = rows[0]!.length;
  const dtype = dtypeOf(rows[0]!);
  for (const [i, r] of rows.entries()) {
    if (r.length !== cols || dtypeOf(r) !== dtype) {
      fail(
        `row ${i} is ${dtypeOf(r)}[${r.length}] but row 0 is ${dtype}[${cols}]`,
      );
    }
  }
  return { dtype, cols, rows: rows.length, data: concatTyped(rows) };
}

function concatTyped(parts: NpyWritable[]): NpyWritable {
  const total = parts.reduce((n, p) => n + p.length, 0);
  const first = parts[0]!;
  const out = new (first.constructor as new (n: number) => NpyWritable)(total);
  let at = 0;
  for (const p of parts) {
    (out as Float64Array).set(p as Float64Array, at);
    at += p.length;
  }
  return out;
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
 * import { naturalCompare } from "./export.ts";
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
 * import { matchKey } from "./export.ts";
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
 * Options for {@linkcode exportRun}.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ExportRunOptions } from "./export.ts";
 * const options: ExportRunOptions = { format: "csv", steps: ["stats-*"], out: "stats.csv" };
 * assert.equal(options.format, "csv");
 * ```
 */
export interface ExportRunOptions {
  /** The run: an id, a unique prefix of one, or `latest`. @default {"latest"} */
  run?: string;
  /** The output format. @default {"jsonl"} */
  format?: ExportFormat;
  /** Only steps whose key matches one of these patterns (`*` is a wildcard). @default {every done step} */
  steps?: string[];
  /**
   * A file to write, replaced atomically (a temp file, then rename). An
   * existing symlink, FIFO, device or directory there is refused, never
   * replaced. One of `out` and `write` is required.
   */
  out?: string;
  /** Receive the output piece by piece instead (to stream it to stdout, say). */
  write?: (part: string | Uint8Array) => Promise<void>;
}

/**
 * What {@linkcode exportRun} wrote.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import type { ExportReport } from "./export.ts";
 * const report: ExportReport = { job: "j", run: "r", format: "jsonl", steps: 2, records: 2 };
 * assert.equal(report.records, 2);
 * ```
 */
export interface ExportReport {
  /** The job. */
  job: string;
  /** The run exported. */
  run: string;
  /** The format written. */
  format: ExportFormat;
  /** Steps exported. */
  steps: number;
  /** Records (jsonl lines, csv rows, npy rows) written. */
  records: number;
}

/**
 * Export the done steps of a replayed run, in natural key order (digits
 * compare as numbers). jsonl: one line per step (`{key, value}`) or per item
 * of a stream step (`{key, item, value}`). csv: outputs that are arrays of
 * flat objects or of rows, or one flat object; a first column `step` names the
 * step. npy: numeric outputs of one dtype and row length, concatenated.
 *
 * @param store The store.
 * @param job The job whose run to export (its newest, or `options.run`).
 * @param options See {@linkcode ExportRunOptions}.
 * @returns What was written.
 * @throws {TypeError} If an output does not fit the format, or `out` names a
 * symlink, FIFO, device or directory.
 * @throws {RangeError} If the job or run does not exist, or no step matches.
 *
 * @example Export a run as JSON lines
 * ```ts
 * import assert from "node:assert/strict";
 * import { exportRun } from "./export.ts";
 * import { openJob } from "../job.ts";
 * import { createMemoryStore } from "../../store/memory.ts";
 * const store = createMemoryStore();
 * const job = await openJob("exported", { store });
 * await job.step("a", () => [1, 2]);
 * await job.complete();
 * let text = "";
 * await exportRun(store, "exported", { write: (part) => { text += part; return Promise.resolve(); } });
 * assert.equal(text, '{"key":"a","value":[1,2]}\n');
 * ```
 */
export async function exportRun(
  store: Store,
  job: string,
  options: ExportRunOptions,
): Promise<ExportReport> {
  const format = options.format ?? "jsonl";
  if (!["jsonl", "csv", "npy"].includes(format)) {
    throw new TypeError(
      `Cannot export: unknown format "${format}", expected "jsonl", "csv" or "npy"`,
    );
  }
  const { out, write: sink } = options;
  if ((out === undefined) === (sink === undefined)) {
    throw new TypeError("Cannot export: give exactly one of `out` and `write`");
  }
  if (out !== undefined) await assertReplaceable(out);
  const { state: run } = await resolveRun(store, job, options.run);
  const steps = selectSteps(run, options.steps ?? []);
  const write = async (
    body: (
      chunk: (part: string | Uint8Array) => Promise<void>,
    ) => Promise<void>,
  ) => {
    if (sink !== undefined) await body(sink);
    else await writeFileAtomically(out!, body, { mode: 0o644 });
  };
  let records = 0;
  switch (format) {
    case "jsonl":
      await write(async (chunk) => {
        for await (const item of readItems(store, steps)) {
          records++;
          await chunk(
            JSON.stringify(
              item.item === undefined
                ? { key: item.key, value: toJsonValue(item.value) }
                : {
                  key: item.key,
                  item: item.item,
                  value: toJsonValue(item.value),
                },
            ) + "\n",
          );
        }
      });
      break;
    case "csv": {
      // Pass 1 finds the columns (and rejects unsuitable outputs before writing).
      const columns: string[] = [];
      const seen = new Set<string>();
      for await (const item of readItems(store, steps)) {
        for (const row of csvRows(item)) {
          for (const col of Object.keys(row)) {
            if (!seen.has(col)) {
              seen.add(col);
              columns.push(col);
            }
          }
        }
      }
      const stepColumn = seen.has("step") ? "_step" : "step";
      await write(async (chunk) => {
        await chunk([stepColumn, ...columns].map(csvCell).join(",") + "\r\n");
        for await (const item of readItems(store, steps)) {
          let text = "";
          for (const row of csvRows(item)) {
            records++;
            text += [item.key, ...columns.map((c) => row[c])].map(csvCell)
              .join(",") + "\r\n";
          }
          await chunk(text);
        }
      });
      break;
    }
    case "npy": {
      const parts: (NumericArray & { key: string })[] = [];
      for await (const item of readItems(store, steps)) {
        parts.push({ ...numericOf(item), key: item.key });
      }
      const first = parts[0]!;
      for (const p of parts) {
        if (p.dtype !== first.dtype || p.cols !== first.cols) {
          const shape = (x: NumericArray) =>
            x.cols === undefined
              ? `${x.dtype}[${x.rows}]`
              : `${x.dtype}[${x.rows}, ${x.cols}]`;
          throw new TypeError(
            `Cannot export as npy: step "${p.key}" is ${
              shape(p)
            } but step "${first.key}" is ${
              shape(first)
            }; only same-dtype steps with the same row length concatenate; pick steps with the steps option`,
          );
        }
      }
      const data = parts.length === 1
        ? first.data
        : concatTyped(parts.map((p) => p.data));
      records = parts.reduce((n, p) => n + p.rows, 0);
      const bytes = encodeNpy(
        data,
        first.cols === undefined ? [records] : [records, first.cols],
      );
      await write((chunk) => chunk(bytes));
      break;
    }
  }
  return { job, run: run.run, format, steps: steps.length, records };
}

/** Refuse to replace anything but a regular file (a rename would swap a symlink, FIFO or device for a file). */
async function assertReplaceable(path: string): Promise<void> {
  let kind: string;
  try {
    const info = await lstat(path);
    if (info.isFile()) return;
    kind = info.isSymbolicLink()
      ? "a symbolic link"
      : info.isDirectory()
      ? "a directory"
      : info.isFIFO()
      ? "a FIFO"
      : info.isSocket()
      ? "a socket"
      : "a device";
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw error;
  }
  throw new TypeError(
    `Cannot export to "${path}": it is ${kind}, not a regular file; export replaces only regular files, so give a new or regular file path`,
  );
}
