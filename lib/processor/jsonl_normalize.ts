/**
 * The `jsonl-normalize` processor: validates the records of JSONL and CSV
 * files against a JSON Schema (through Ajv) and normalises them: defaults
 * filled in, types coerced, keys in the schema's order. Each record is an
 * item (`file:line`, a CSV row counting its header as line 1, and empty fields
 * left out so defaults apply); an invalid one counts as an error with Ajv's reasons, a
 * blank line as skipped, and the first errors of each file are kept in the
 * dataset state.
 *
 * @module
 */
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { listFiles } from "./_files.ts";
import type { ProcessContext, Processor, SetupContext } from "./types.ts";

/** An item: one line (JSONL) or row (CSV) of one file. */
export interface RecordItem {
  /** `file:line`, e.g. `part-1.jsonl:17`. */
  id: string;
  /** The file, relative to the input. */
  file: string;
  /** The line's text (JSONL), or the parsed row (CSV). */
  value: string | Record<string, string>;
}

/** Per-file counts kept in `dataset_specific_state.files` for files with problems. */
export interface FileReport {
  /** Records that failed to parse or validate. */
  invalid: number;
  /** Blank lines. */
  skipped: number;
  /** The first three errors, as `line N: reason`. */
  first_errors: string[];
}

type Validate = ((data: unknown) => boolean) & {
  errors?: { instancePath: string; message?: string }[] | null;
};
interface AjvLike {
  compile(schema: unknown): Validate;
}
type AjvConstructor = new (options: Record<string, unknown>) => AjvLike;
// Ajv loads in `setup` and csv-parse on the first CSV file, so importing the family stays cheap.
let ajvLoad: Promise<AjvConstructor> | undefined;
let Ajv: AjvConstructor | undefined;
function loadAjv(): Promise<AjvConstructor> {
  return ajvLoad ??= import("npm:ajv@^8.20.0").then((module) => {
    const exported = module.default as unknown as { default?: unknown };
    return Ajv = (exported.default ?? exported) as AjvConstructor;
  });
}
let csvParse: Promise<typeof import("npm:csv-parse@^7.0.3/sync")> | undefined;
function loadCsvParse(): Promise<typeof import("npm:csv-parse@^7.0.3/sync")> {
  return csvParse ??= import("npm:csv-parse@^7.0.3/sync");
}

const validators = new WeakMap<
  object,
  { validate: Validate; schema: Record<string, unknown> }
>();
const FIRST_ERRORS = 3;

function isRecordFile(rel: string): boolean {
  return /\.(jsonl|ndjson|csv)$/i.test(rel);
}

function schemaOf(ctx: SetupContext): Record<string, unknown> {
  let schema = ctx.params.schema;
  if (typeof schema === "string") {
    try {
      schema = JSON.parse(schema);
    } catch (error) {
      throw new SyntaxError(
        `Cannot parse the JSON Schema of dataset "${ctx.dataset}": ${
          (error as Error).message
        }`,
      );
    }
  }
  if (typeof schema !== "object" || schema === null || Array.isArray(schema)) {
    throw new TypeError(
      `Cannot run processor "jsonl-normalize" on dataset "${ctx.dataset}": params.schema must be a JSON Schema (an object, or its JSON text; pass --schema FILE)`,
    );
  }
  return schema as Record<string, unknown>;
}

function validatorFor(
  ctx: SetupContext,
): { validate: Validate; schema: Record<string, unknown> } {
  let compiled = validators.get(ctx.params);
  if (compiled === undefined) {
    const schema = schemaOf(ctx);
    if (Ajv === undefined) {
      throw new Error(
        `Cannot validate dataset "${ctx.dataset}": processor "jsonl-normalize" ran before its setup`,
      );
    }
    const ajv = new Ajv({
      useDefaults: true,
      coerceTypes: true,
      allErrors: true,
      strict: false,
      logger: false,
    });
    try {
      compiled = { validate: ajv.compile(schema), schema };
    } catch (error) {
      throw new SyntaxError(
        `Cannot compile the JSON Schema of dataset "${ctx.dataset}": ${
          (error as Error).message
        }`,
      );
    }
    validators.set(ctx.params, compiled);
  }
  return compiled;
}

/** Keys in the schema's `properties` order, then the others sorted. */
function ordered(value: unknown, schema: Record<string, unknown>): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return value;
  }
  const record = value as Record<string, unknown>;
  const properties = (schema.properties ?? {}) as Record<
    string,
    Record<string, unknown>
  >;
  const known = Object.keys(properties).filter((k) => k in record);
  const rest = Object.keys(record).filter((k) => !(k in properties)).sort();
  const out: Record<string, unknown> = {};
  for (const k of known) out[k] = ordered(record[k], properties[k] ?? {});
  for (const k of rest) out[k] = record[k];
  return out;
}

function note(
  ctx: ProcessContext,
  file: string,
  kind: "invalid" | "skipped",
  error?: string,
): void {
  const files = (ctx.state.files ??= {}) as Record<string, FileReport>;
  const report = files[file] ??= { invalid: 0, skipped: 0, first_errors: [] };
  report[kind]++;
  if (error !== undefined && report.first_errors.length < FIRST_ERRORS) {
    report.first_errors.push(error);
  }
}

async function* records(input: string): AsyncIterable<RecordItem> {
  for (const file of await listFiles(input, isRecordFile)) {
    if (/\.csv$/i.test(file.rel)) {
      const { parse: parseCsv } = await loadCsvParse();
      const rows = parseCsv(await readFile(file.path, "utf8"), {
        columns: true,
        skip_empty_lines: false,
        relax_column_count: true,
      }) as Record<string, string>[];
      // Line 1 is the header.
      for (const [i, row] of rows.entries()) {
        yield { id: `${file.rel}:${i + 2}`, file: file.rel, value: row };
      }
      continue;
    }
    const lines = createInterface({
      input: createReadStream(file.path, { encoding: "utf8" }),
      crlfDelay: Infinity,
    });
    let n = 0;
    for await (const line of lines) {
      n++;
      yield { id: `${file.rel}:${n}`, file: file.rel, value: line };
    }
  }
}

/**
 * The lines of a file as `items` reads them (a line ends at \n, \r\n or \r;
 * a last line without one counts), from its raw bytes: nothing is decoded or
 * parsed. With `quoted`, line breaks inside CSV double quotes do not count.
 */
async function countLines(path: string, quoted: boolean): Promise<number> {
  let lines = 0;
  let open = false; // bytes since the last line break
  let inQuote = false;
  let afterCr = false;
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) {
    if (chunk.length === 0) continue;
    if (!quoted && !afterCr && chunk.indexOf(0x0d) === -1) {
      // The common case, at native speed: only \n ends lines here.
      for (
        let i = chunk.indexOf(0x0a);
        i !== -1;
        i = chunk.indexOf(0x0a, i + 1)
      ) {
        lines++;
      }
      open = chunk[chunk.length - 1] !== 0x0a;
      continue;
    }
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (quoted && b === 0x22) inQuote = !inQuote;
      if (!inQuote && b === 0x0a) {
        if (!afterCr) lines++;
        open = false;
      } else if (!inQuote && b === 0x0d) {
        lines++;
        open = false;
      } else open = true;
      afterCr = !inQuote && b === 0x0d;
    }
  }
  return open ? lines + 1 : lines;
}

/** The items of `input` without parsing it: CSV rows less the header, and JSONL lines. */
async function countRecords(input: string): Promise<number> {
  let n = 0;
  for (const file of await listFiles(input, isRecordFile)) {
    n += /\.csv$/i.test(file.rel)
      ? Math.max(0, (await countLines(file.path, true)) - 1)
      : await countLines(file.path, false);
  }
  return n;
}

/**
 * The `jsonl-normalize` processor. Needs `params.schema`: a JSON Schema,
 * best as its JSON text (`--schema FILE` in the CLI passes the file's text),
 * since output keys follow the schema's property order and a stored object's
 * keys come back sorted on resume. Input: a `.jsonl`/`.ndjson`/`.csv`
 * file or a directory of them.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readFile, writeFile } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { jsonlNormalize } from "./jsonl_normalize.ts";
 * import { runProcessor } from "./run.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-normalize-"));
 * await writeFile(join(dir, "in.jsonl"), '{"n":"2","name":"a"}\n{"name":"b"}\n');
 * const schema = { type: "object", properties: { name: { type: "string" }, n: { type: "integer", default: 0 } }, required: ["name"] };
 * const result = await runProcessor(jsonlNormalize, {
 *   store: "memory:normalize-example", dataset: "rows", input: dir, out: `${dir}.jsonl`, params: { schema: JSON.stringify(schema) },
 * });
 * assert.equal(await readFile(`${dir}.jsonl`, "utf8"), '{"name":"a","n":2}\n{"name":"b","n":0}\n');
 * assert.equal(result.state.statistics.error_count, 0);
 * ```
 */
export const jsonlNormalize: Processor<RecordItem> = {
  name: "jsonl-normalize",
  version: "1",
  async setup(_input, ctx) {
    await loadAjv();
    validatorFor(ctx);
  },
  // A byte scan, not a second parse of the input.
  count: countRecords,
  items: records,
  process(item, ctx) {
    let value: unknown;
    if (typeof item.value === "string") {
      if (item.value.trim() === "") {
        note(ctx, item.file, "skipped");
        ctx.skip("blank line");
        return [];
      }
      try {
        value = JSON.parse(item.value);
      } catch (error) {
        const reason = `invalid JSON: ${(error as Error).message}`;
        note(
          ctx,
          item.file,
          "invalid",
          `line ${item.id.slice(item.file.length + 1)}: ${reason}`,
        );
        throw new SyntaxError(reason);
      }
    } else {
      // An empty CSV field is an absent value, so schema defaults apply.
      value = Object.fromEntries(
        Object.entries(item.value).filter(([, v]) => v !== ""),
      );
    }
    const { validate, schema } = validatorFor(ctx);
    if (!validate(value)) {
      const reason = (validate.errors ?? []).map((e) =>
        `${e.instancePath || "/"} ${e.message ?? "is invalid"}`
      ).join("; ");
      note(
        ctx,
        item.file,
        "invalid",
        `line ${item.id.slice(item.file.length + 1)}: ${reason}`,
      );
      throw new TypeError(`does not match the schema: ${reason}`);
    }
    return [ordered(value, schema)];
  },
};
