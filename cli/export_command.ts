/**
 * `cairn export`: step outputs to a file, via `exportRun`.
 *
 * @module
 */
import { type ExportFormat, exportRun } from "../lib/io/export.ts";
import { type Command, EXIT, stringOption, UsageError } from "./command.ts";
import {
  onePositional,
  openExistingStore,
  parseJobRun,
  plural,
  writeStdout,
} from "./_args.ts";

/**
 * `cairn export`: step outputs to a file.
 *
 * @example From a shell
 * ```sh
 * cairn export demo --format npy --step 'rows-*' --out rows.npy
 * ```
 */
export const exportCommand: Command = {
  name: "export",
  summary: "Export step outputs as JSON lines, CSV or a NumPy .npy file",
  usage:
    "cairn export JOB[/RUN] --format jsonl|csv|npy --out PATH [--step KEY]...",
  description:
    'Reads the done steps of a run (by default the job\'s newest), in natural key order (digits compare as numbers), and writes them atomically (a temp file, then rename). jsonl: one line per step, {"key", "value"}, or per item of a stream step, {"key", "item", "value"}; values are converted as "cairn cat" describes (bytes as base64). csv: for outputs that are arrays of flat objects or of rows (or one flat object); a first column "step" names the step. npy: a numeric output of one step (typed array, array of numbers, or array of equal-length rows), or the concatenation of several steps of the same dtype and row length. --step picks steps by key; * matches any characters; repeat it to pick several patterns. --out - writes to stdout.',
  positionals: true,
  options: {
    format: {
      type: "string",
      valueName: "jsonl|csv|npy",
      description: "Output format",
    },
    out: {
      type: "string",
      valueName: "PATH",
      description:
        "File to write (a regular file, replaced atomically; a symlink, FIFO or device is refused); - for stdout",
    },
    step: {
      type: "string",
      multiple: true,
      valueName: "KEY",
      description: "Only steps whose key matches (* is a wildcard); repeatable",
    },
  },
  examples: [
    "cairn export demo --format jsonl --out demo.jsonl",
    "cairn export demo --format csv --step 'stats-*' --out stats.csv",
    "cairn export demo --format npy --step 'rows-*' --out rows.npy",
  ],
  async run(ctx, args) {
    const spec = onePositional(args, "JOB[/RUN]");
    const format = stringOption(args, "format");
    if (format === undefined) {
      throw new UsageError("Missing --format: pass --format jsonl, csv or npy");
    }
    if (!["jsonl", "csv", "npy"].includes(format)) {
      throw new UsageError(
        `Invalid --format "${format}": expected jsonl, csv or npy`,
      );
    }
    const out = stringOption(args, "out");
    if (out === undefined || out === "") {
      throw new UsageError("Missing --out: pass --out PATH (or - for stdout)");
    }
    const patterns = (args.values.step as string[] | undefined) ?? [];
    const { job, run } = parseJobRun(spec);
    const store = await openExistingStore(ctx);
    const report = await exportRun(store, job, {
      ...(run === undefined ? {} : { run }),
      format: format as ExportFormat,
      steps: patterns,
      ...(out === "-" ? { write: writeStdout } : { out }),
    });
    if (out !== "-") {
      ctx.result(
        { out, ...report },
        () =>
          ctx.out(
            `Wrote ${
              plural(report.records, format === "npy" ? "row" : "record")
            } from ${
              plural(report.steps, "step")
            } of run "${job}/${report.run}" to ${out}`,
          ),
      );
    }
    return EXIT.ok;
  },
};
