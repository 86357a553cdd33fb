/**
 * What a dataflow input can be given as, turned into either a full snapshot
 * (diffed against the stored version) or a delta.
 *
 * @module
 */
import { readFile } from "node:fs/promises";

/** An explicit change: keys to set and keys to delete. */
export interface InputDelta<V = unknown> {
  /** Keys to insert or update. */
  upsert?: Record<string, V> | Map<string, V> | [string, V][];
  /** Keys to delete. */
  delete?: string[];
}

/** A JSONL or CSV file whose records carry their key in a field. */
export interface InputFile {
  /** Path of the file. */
  file: string;
  /** The field holding each record's key. */
  key: string;
  /** The format. Default: from the extension (`.csv`, else JSON lines). */
  format?: "jsonl" | "csv";
}

/** A full snapshot, a delta, or a file. */
export type InputSource<V = unknown> =
  | Record<string, V>
  | Map<string, V>
  | [string, V][]
  | InputDelta<V>
  | InputFile;

/** A normalised input. */
export type NormalizedInput =
  | { kind: "snapshot"; entries: Map<string, unknown> }
  | { kind: "delta"; upsert: Map<string, unknown>; delete: string[] };

function isPlain(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function pairs(
  name: string,
  what: string,
  value: unknown,
): Map<string, unknown> {
  let entries: Iterable<[unknown, unknown]>;
  if (value instanceof Map) entries = value;
  else if (Array.isArray(value)) {
    for (const pair of value) {
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new TypeError(
          `Cannot read input "${name}": ${what} must be [key, value] pairs, found ${
            JSON.stringify(pair)?.slice(0, 60)
          }`,
        );
      }
    }
    entries = value as [unknown, unknown][];
  } else if (isPlain(value)) entries = Object.entries(value);
  else {
    throw new TypeError(
      `Cannot read input "${name}": expected a Record, a Map or [key, value] pairs for ${what}, found ${typeof value}`,
    );
  }
  const out = new Map<string, unknown>();
  for (const [k, v] of entries) {
    if (typeof k !== "string") {
      throw new TypeError(
        `Cannot read input "${name}": keys must be strings, found ${typeof k} "${
          String(k)
        }"`,
      );
    }
    if (v === undefined) {
      throw new TypeError(
        `Cannot read input "${name}": key "${k}" has the value undefined; delete it with { delete: ["${k}"] } instead`,
      );
    }
    out.set(k, v);
  }
  return out;
}

/** Read an input source into a snapshot or a delta. */
export async function normalizeInput(
  name: string,
  source: unknown,
): Promise<NormalizedInput> {
  if (isPlain(source)) {
    const keys = Object.keys(source);
    if (
      typeof source.file === "string" && typeof source.key === "string" &&
      keys.every((k) => k === "file" || k === "key" || k === "format")
    ) {
      return {
        kind: "snapshot",
        entries: await readInputFile(name, source as unknown as InputFile),
      };
    }
    if (
      keys.length > 0 && keys.every((k) => k === "upsert" || k === "delete")
    ) {
      const del = source.delete ?? [];
      if (
        !Array.isArray(del) || del.some((k: unknown) => typeof k !== "string")
      ) {
        throw new TypeError(
          `Cannot read input "${name}": delete must be an array of string keys`,
        );
      }
      return {
        kind: "delta",
        upsert: pairs(name, "upsert", source.upsert ?? {}),
        delete: del as string[],
      };
    }
  }
  return { kind: "snapshot", entries: pairs(name, "a snapshot", source) };
}

async function readInputFile(
  name: string,
  spec: InputFile,
): Promise<Map<string, unknown>> {
  const format = spec.format ??
    (spec.file.toLowerCase().endsWith(".csv") ? "csv" : "jsonl");
  if (format !== "csv" && format !== "jsonl") {
    throw new RangeError(
      `Cannot read input "${name}": format must be "jsonl" or "csv", found "${format}"`,
    );
  }
  const text = await readFile(spec.file, "utf8");
  let records: Record<string, unknown>[];
  if (format === "csv") {
    // csv-parse loads only when a CSV input is read.
    const { parse: parseCsv } = await import("npm:csv-parse@^7.0.3/sync");
    try {
      records = parseCsv(text, { columns: true, skip_empty_lines: true });
    } catch (error) {
      throw new SyntaxError(
        `Cannot read input "${name}" from "${spec.file}": ${
          (error as Error).message
        }`,
      );
    }
  } else {
    records = [];
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (line === "") continue;
      try {
        records.push(JSON.parse(line));
      } catch (error) {
        throw new SyntaxError(
          `Cannot read input "${name}" from "${spec.file}": line ${
            i + 1
          } is not JSON (${(error as Error).message})`,
        );
      }
    }
  }
  const out = new Map<string, unknown>();
  records.forEach((record, i) => {
    const key = isPlain(record) ? record[spec.key] : undefined;
    if (typeof key !== "string" && typeof key !== "number") {
      throw new TypeError(
        `Cannot read input "${name}" from "${spec.file}": record ${
          i + 1
        } has no string or number field "${spec.key}" (the key option)`,
      );
    }
    out.set(String(key), record);
  });
  return out;
}
