/**
 * The `cairn` program: dispatch to the commands listed in `cli/commands.ts`
 * (parsing and help are in `cli/command_line.ts`), and the one mapping from
 * errors to exit codes and flag hints.
 *
 * Exit codes: 0 ok; 1 failed, rerun to resume; 2 usage or input error
 * (UsageError, TypeError, RangeError, SyntaxError, ConfigChangedError, a path
 * to fix); 3 job locked; 4 `verify` found problems; 130/143 interrupted by
 * SIGINT/SIGTERM (rerun to resume). {@linkcode exitCodeOf} is the one place
 * that maps errors to codes, next to the flag hints per error class.
 *
 * @example Run a command in-process
 * ```ts ignore
 * import { main } from "./main.ts";
 * const code = await main(["ls", "--store", "/tmp/store", "--json"]);
 * ```
 *
 * @module
 */
import { resolve, sep } from "node:path";
import { parseDuration } from "../lib/duration.ts";
import { ConfigChangedError, InterruptedError } from "../lib/job.ts";
import { CorruptChunkError, MissingChunkError } from "../store/chunk_store.ts";
import { defaultStoreLocation, openStore } from "../lib/open_store.ts";
import { LockedError } from "../store/lock.ts";
import type { Store } from "../store/store.ts";
import { type CliContext, EXIT, UsageError } from "./command.ts";
import { COMMANDS } from "./commands.ts";
import {
  commandHelp,
  findCommand,
  parseCommandLine,
  resolveCommand,
  topHelp,
  VERSION,
} from "./command_line.ts";
import { invokedAs } from "./_program.ts";
import {
  detectProgressMode,
  paint,
  ProgressRenderer,
  stampLines,
  useColor,
} from "./progress.ts";
import { toJsonValue } from "./_format.ts";

export { VERSION } from "./command_line.ts";

/** Errno codes that name a path the user must fix (exit 2), or space to free (exit 1). */
const PATH_ERRNO: Record<string, string> = {
  ENOENT: "it does not exist; check the path",
  EACCES:
    "permission denied; make it accessible to this user or pick another path",
  EPERM:
    "operation not permitted; make it accessible to this user or pick another path",
  EROFS: "it is on a read-only file system; pick a path on a writable one",
  ENOTDIR: "a part of the path is a file, not a directory; fix the path",
  EISDIR: "it is a directory where a file was expected; fix the path",
  ENOSPC: "no space left on the device; free space and rerun to resume",
};

/**
 * The one mapping from errors to exit codes (see {@linkcode EXIT}).
 *
 * @param error What a command threw.
 * @returns The exit code.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { exitCodeOf } from "./main.ts";
 * assert.equal(exitCodeOf(new RangeError("x")), 2);
 * assert.equal(exitCodeOf(new Error("x")), 1);
 * ```
 */
export function exitCodeOf(error: unknown): number {
  if (error instanceof LockedError) return EXIT.locked;
  if (error instanceof InterruptedError) return error.exitCode;
  if (
    error instanceof UsageError || error instanceof TypeError ||
    error instanceof RangeError || error instanceof SyntaxError ||
    error instanceof ConfigChangedError
  ) return EXIT.usage;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === "string" && code in PATH_ERRNO) {
    return code === "ENOSPC" ? EXIT.failed : EXIT.usage;
  }
  return EXIT.failed;
}

/** A raw errno message (`EACCES: permission denied, open '/x'`) rewritten to name the path (and the store it is in) and the fix. */
function errorMessage(error: unknown, store: string | undefined): string {
  if (!(error instanceof Error)) return String(error);
  const { code, path } = error as NodeJS.ErrnoException;
  if (
    typeof code === "string" && code in PATH_ERRNO &&
    error.message.startsWith(`${code}:`)
  ) {
    const inStore = store !== undefined && path !== undefined &&
      !store.startsWith("memory:") &&
      resolve(path).startsWith(resolve(store) + sep);
    return inStore
      ? `Cannot write to store "${store}" ("${path}"): ${PATH_ERRNO[code]}`
      : `Cannot use "${path ?? "?"}": ${PATH_ERRNO[code]}`;
  }
  return elideLongValues(error.message);
}

/** Shorten quoted values of more than 200 characters (a hostile job name must not echo back whole). */
function elideLongValues(message: string): string {
  return message.replace(
    /"([^"]{200,})"/g,
    (_m, value: string) =>
      `"${value.slice(0, 60)}…" (${value.length} characters)`,
  );
}

/** Whether an error is an errno failure on a path (its fix is the path, not the command line). */
function isPathError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" && code in PATH_ERRNO;
}

/**
 * The CLI's hint for an error: library messages name API options, the CLI
 * names the flags that set them.
 */
function hintOf(
  error: unknown,
  code: number,
  command: string | undefined,
): string | undefined {
  if (error instanceof LockedError && command === "unlock") {
    return "If you know the holder is gone (say, its host is down), pass --force";
  }
  if (error instanceof LockedError) {
    return `To wait for the holder, pass --wait-lock 5m; if it is gone, run "${invokedAs()} unlock ${error.job}"`;
  }
  if (error instanceof ConfigChangedError) {
    return "Pass --new-run to start over with the new config, or restore the old config to resume";
  }
  if (
    error instanceof CorruptChunkError || error instanceof MissingChunkError
  ) {
    return `Run "${invokedAs()} verify --read-data" to find every damaged chunk, then rerun the job to recompute them`;
  }
  if (code !== EXIT.usage || isPathError(error)) return undefined;
  if (error instanceof RangeError && /memoryBudgetBytes/.test(error.message)) {
    return `memoryBudgetBytes is --memory-budget (sizes such as 256MB or 2GiB); "${invokedAs()} knn-plan" shows what a budget gives`;
  }
  if (command === "forget" && !(error instanceof UsageError)) {
    return "Give a retention policy with --keep-last N, --keep-within DURATION, --keep-daily N, --keep-weekly N or --keep-monthly N";
  }
  if (command === "verify" && !(error instanceof UsageError)) {
    return `--read-data-subset takes n/t (e.g. 1/7) or x% (e.g. 10%); a JOB must exist (${invokedAs()} ls lists them)`;
  }
  return `Run "${invokedAs()} ${
    command === undefined ? "" : `${command} `
  }--help" for usage`;
}

/** Whether `--json` or `--color`/`--no-color` appear before `--` (for errors found while parsing). */
function earlyFlags(args: string[]): { json: boolean; color?: boolean } {
  const end = args.indexOf("--");
  const head = end < 0 ? args : args.slice(0, end);
  const color = head.findLast((a) => a === "--color" || a === "--no-color");
  return {
    json: head.includes("--json"),
    ...(color === undefined ? {} : { color: color === "--color" }),
  };
}

/**
 * Run the CLI.
 *
 * @param args The arguments, `process.argv.slice(2)`.
 * @returns The exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./main.ts";
 * process.exitCode = await main(process.argv.slice(2));
 * ```
 */
export async function main(args: string[]): Promise<number> {
  const early = earlyFlags(args);
  let json = early.json;
  let color = useColor(process.stderr, early.color);
  let renderer: ProgressRenderer | undefined;
  // Known before parsing, so that a bad option still points at the right --help.
  // Known before parsing, so that a bad option still points at the right --help.
  const at = findCommand(args);
  const named = at < 0 ? undefined : resolveCommand(
    [...args.slice(0, at), ...args.slice(at + 1)],
    COMMANDS,
    args[at]!,
  );
  const commandName = named?.command === undefined ? undefined : named.label;
  let storeForErrors: string | undefined;
  try {
    const parsed = parseCommandLine(args, COMMANDS);
    const { values } = parsed.args;
    json = values.json === true;
    const quiet = values.quiet === true;
    color = useColor(
      process.stderr,
      typeof values.color === "boolean" ? values.color : undefined,
    );
    if (parsed.command === undefined) {
      if (values.version === true) {
        process.stdout.write(
          json
            ? JSON.stringify({ version: VERSION }) + "\n"
            : `cairn ${VERSION}\n`,
        );
        return EXIT.ok;
      }
      if (values.help === true) {
        process.stdout.write(topHelp(COMMANDS) + "\n");
        return EXIT.ok;
      }
      process.stderr.write(topHelp(COMMANDS) + "\n");
      return EXIT.usage;
    }
    if (parsed.command === "help") {
      const [target, ...more] = parsed.args.positionals;
      if (target === undefined) {
        process.stdout.write(topHelp(COMMANDS) + "\n");
        return EXIT.ok;
      }
      const found = resolveCommand(more, COMMANDS, target);
      const command = found.command;
      if (command === undefined || found.rest.length > 0) {
        throw new UsageError(
          `Unknown command "${[target, ...more].join(" ")}"`,
        );
      }
      process.stdout.write(commandHelp(command) + "\n");
      return EXIT.ok;
    }
    const command = parsed.resolved;
    if (command === undefined) {
      throw new UsageError(`Unknown command "${parsed.command}"`);
    }
    if (values.help === true) {
      process.stdout.write(commandHelp(command) + "\n");
      return EXIT.ok;
    }
    if (command.subcommands !== undefined) {
      process.stderr.write(commandHelp(command) + "\n");
      return EXIT.usage;
    }
    let waitLockMs = 0;
    if (typeof values["wait-lock"] === "string") {
      try {
        waitLockMs = parseDuration(values["wait-lock"]);
      } catch (error) {
        throw new UsageError(
          `Invalid --wait-lock: ${(error as Error).message}`,
        );
      }
    }
    storeForErrors = typeof values.store === "string"
      ? values.store
      : defaultStoreLocation();
    const storeLocation = typeof values.store === "string"
      ? values.store
      : defaultStoreLocation();
    const progress = new ProgressRenderer({
      mode: detectProgressMode({ json, quiet }),
      color,
    });
    renderer = progress;
    let opened: Promise<Store> | undefined;
    const ctx: CliContext = {
      store: () => opened ??= openStore(storeLocation),
      storeLocation,
      program: invokedAs(),
      json,
      quiet,
      waitLockMs,
      out(text) {
        progress.finish();
        process.stdout.write(text + "\n");
      },
      info: (text) => progress.message("info", text),
      warn: (text) => progress.message("warning", text),
      onEvent: (event) => progress.onEvent(event),
      result(value, human) {
        if (json) {
          progress.finish();
          process.stdout.write(JSON.stringify(toJsonValue(value)) + "\n");
        } else human();
      },
    };
    const code = await command.run(ctx, parsed.args);
    progress.finish();
    return code;
  } catch (error) {
    renderer?.finish();
    const code = exitCodeOf(error);
    const message = errorMessage(error, storeForErrors);
    const hint = hintOf(error, code, commandName);
    if (json) {
      process.stderr.write(
        JSON.stringify({
          type: "error",
          message,
          exitCode: code,
          ...(hint === undefined ? {} : { hint }),
        }) + "\n",
      );
    } else {
      // One line per failure, timestamped off a terminal like every other line (docs/cron.md).
      const line = `${paint(color, "red", "cairn:")} ${message}${
        hint === undefined ? "" : `; ${hint[0]!.toLowerCase()}${hint.slice(1)}`
      }`;
      process.stderr.write(
        `${detectProgressMode({}) === "log" ? stampLines(line) : line}\n`,
      );
    }
    if (process.env.CAIRN_DEBUG === "1" && error instanceof Error) {
      process.stderr.write(`${error.stack ?? ""}\n`);
    }
    return code;
  }
}

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write("", () => resolve()));
}

/**
 * Run the CLI as a program: {@linkcode main} on `args`, then flush stdout and
 * stderr and exit with its code. A closed stdout pipe (`cairn ls | head -1`)
 * ends the process quietly. This is what `cli/main.ts` does when run
 * directly, and what the npm package's `cairn` bin calls under Node.
 *
 * @param args The arguments. Default: `process.argv.slice(2)`.
 * @returns Never: the process exits.
 *
 * @example
 * ```ts ignore
 * import { runCli } from "./main.ts";
 * await runCli(["ls", "--json"]);
 * ```
 */
export async function runCli(
  args: string[] = process.argv.slice(2),
): Promise<never> {
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EPIPE") process.exit(0);
    throw error;
  });
  const code = await main(args);
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
  process.exit(code);
}

if (import.meta.main) await runCli();
