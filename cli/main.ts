/**
 * The `cairn` command line: global options, dispatch to the commands listed
 * in `cli/commands.ts`, help, and the mapping from errors to exit codes.
 *
 * Exit codes: 0 ok, 1 job failed (or another error), 2 usage error,
 * 3 job locked, 4 `verify` found problems, 130/143 interrupted by
 * SIGINT/SIGTERM (rerun to resume).
 *
 * @example Run a command in-process
 * ```ts ignore
 * import { main } from "./main.ts";
 * const code = await main(["ls", "--store", "/tmp/store", "--json"]);
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };
import { parseDuration } from "../lib/duration.ts";
import { InterruptedError } from "../lib/job.ts";
import { defaultStoreLocation, openStore } from "../lib/open_store.ts";
import { LockedError } from "../store/lock.ts";
import type { Store } from "../store/store.ts";
import {
  type CliContext,
  type Command,
  type CommandArgs,
  EXIT,
  UsageError,
} from "./command.ts";
import { COMMANDS } from "./commands.ts";
import {
  detectProgressMode,
  paint,
  ProgressRenderer,
  useColor,
} from "./progress.ts";
import { toJsonValue } from "./_format.ts";

/**
 * The version printed by `cairn --version`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VERSION } from "./main.ts";
 * assert.match(VERSION, /^\d+\.\d+\.\d+/);
 * ```
 */
export const VERSION: string = denoConfig.version;

type OptionSpec = Command["options"];

/**
 * Options every command accepts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GLOBAL_OPTIONS } from "./main.ts";
 * assert.equal(GLOBAL_OPTIONS.store?.type, "string");
 * ```
 */
export const GLOBAL_OPTIONS: OptionSpec = {
  store: {
    type: "string",
    valueName: "PATH",
    description:
      "Store directory, or s3://BUCKET/PREFIX with AWS_* credentials (default: $CAIRN_STORE, else ./.cairn)",
  },
  json: {
    type: "boolean",
    description:
      "Print the result as JSON on stdout; events and messages as JSON lines on stderr",
  },
  quiet: {
    type: "boolean",
    short: "q",
    description: "Print nothing on stderr but warnings and errors",
  },
  "wait-lock": {
    type: "string",
    valueName: "DURATION",
    description:
      "Wait up to DURATION (e.g. 30s, 5m) for a job locked by another process, instead of failing with exit code 3",
  },
  color: {
    type: "boolean",
    description:
      "Colour messages on stderr (default: on a terminal, unless NO_COLOR is set or TERM=dumb); --no-color turns it off",
  },
  help: {
    type: "boolean",
    short: "h",
    description: "Show usage, options and examples",
  },
};

const TOP_OPTIONS: OptionSpec = {
  ...GLOBAL_OPTIONS,
  version: { type: "boolean", description: "Print the version" },
};

const EXIT_CODES =
  "Exit codes: 0 ok, 1 job failed, 2 usage error, 3 job locked by another process, 4 verify found problems, 130/143 interrupted by SIGINT/SIGTERM (rerun to resume)";

/**
 * Parsed command line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ParsedCommandLine, parseCommandLine } from "./main.ts";
 * const parsed: ParsedCommandLine = parseCommandLine(["--json"], []);
 * assert.equal(parsed.command, undefined);
 * ```
 */
export interface ParsedCommandLine {
  /** The command words (`"ls"`, `"pipeline run"`), if one was given. */
  command: string | undefined;
  /** The command those words name, when it exists. */
  resolved?: Command;
  /** Options (global and the command's) and positionals. */
  args: CommandArgs;
}

/** Where the first non-option word (the command) is, skipping global options and their values. */
function findCommand(args: string[]): number {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === "--") return -1;
    if (arg.startsWith("-") && arg !== "-") {
      const name = arg.startsWith("--") ? arg.slice(2) : arg.slice(1);
      const spec = GLOBAL_OPTIONS[name];
      if (spec?.type === "string" && !name.includes("=")) i++;
      continue;
    }
    return i;
  }
  return -1;
}

/**
 * Parse options with `node:util` parseArgs tokens, then check them the same
 * way on every runtime: unknown options, missing values, values given to
 * flags, `--no-FLAG` for any boolean option, and stray positionals.
 *
 * @param args The arguments after the command word.
 * @param options Accepted options.
 * @param allowPositionals Whether positionals are accepted.
 * @param label How to name the command in messages, e.g. `cairn ls`.
 * @returns Values and positionals.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseOptions } from "./main.ts";
 * const parsed = parseOptions(["--no-color", "x"], { color: { type: "boolean", description: "" } }, true, "cairn ls");
 * assert.deepEqual(parsed, { values: { color: false }, positionals: ["x"] });
 * ```
 */
export function parseOptions(
  args: string[],
  options: OptionSpec,
  allowPositionals: boolean,
  label: string,
): CommandArgs {
  const config: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const [name, spec] of Object.entries(options)) {
    config[name] = {
      type: spec.type,
      ...(spec.short === undefined ? {} : { short: spec.short }),
      ...(spec.multiple ? { multiple: true } : {}),
    };
  }
  const { tokens } = parseArgs({
    args,
    options: config,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values: CommandArgs["values"] = {};
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === "positional") {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== "option") continue;
    const spec = options[token.name];
    if (spec === undefined) {
      const negated = token.name.startsWith("no-")
        ? options[token.name.slice(3)]
        : undefined;
      if (negated?.type === "boolean" && token.value === undefined) {
        values[token.name.slice(3)] = false;
        continue;
      }
      throw new UsageError(`Unknown option "${token.rawName}" for "${label}"`);
    }
    if (spec.type === "boolean") {
      if (token.value !== undefined) {
        throw new UsageError(
          `Invalid ${token.rawName}=${token.value}: ${token.rawName} is a flag and takes no value`,
        );
      }
      values[token.name] = true;
      continue;
    }
    const value = token.value;
    if (
      value === undefined || value === "" ||
      (!token.inlineValue && value.startsWith("--"))
    ) {
      throw new UsageError(
        `Missing value for ${token.rawName}: expected ${token.rawName} ${
          spec.valueName ?? "VALUE"
        }`,
      );
    }
    if (spec.multiple) {
      const list = (values[token.name] as string[] | undefined) ?? [];
      list.push(value);
      values[token.name] = list;
    } else values[token.name] = value;
  }
  if (!allowPositionals && positionals.length > 0) {
    throw new UsageError(
      `Unexpected argument "${positionals[0]}": "${label}" takes no arguments`,
    );
  }
  return { values, positionals };
}

/**
 * Split a command line into the command word and its parsed options.
 *
 * @param args `process.argv.slice(2)`.
 * @param commands The known commands.
 * @returns The command name (undefined when none was given) and arguments.
 *
 * @example Global options may come before the command
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseCommandLine } from "./main.ts";
 * const parsed = parseCommandLine(["--store", "/s", "ls", "--json"], []);
 * assert.equal(parsed.command, "ls");
 * ```
 */
export function parseCommandLine(
  args: string[],
  commands: Command[],
): ParsedCommandLine {
  const at = findCommand(args);
  if (at < 0) {
    return {
      command: undefined,
      args: parseOptions(args, TOP_OPTIONS, false, "cairn"),
    };
  }
  const name = args[at]!;
  const rest = [...args.slice(0, at), ...args.slice(at + 1)];
  if (name === "help") {
    return {
      command: "help",
      args: parseOptions(rest, GLOBAL_OPTIONS, true, "cairn help"),
    };
  }
  const found = resolveCommand(rest, commands, name);
  if (found.command === undefined) {
    return { command: found.label, args: { values: {}, positionals: [] } };
  }
  return {
    command: found.label,
    resolved: found.command,
    args: parseOptions(
      found.rest,
      { ...GLOBAL_OPTIONS, ...found.command.options },
      found.command.positionals ?? false,
      `cairn ${found.label}`,
    ),
  };
}

/**
 * Find the command a word names, descending into subcommands: the next
 * non-option word picks a subcommand when the command has them.
 */
function resolveCommand(
  rest: string[],
  commands: Command[],
  name: string,
): { command: Command | undefined; label: string; rest: string[] } {
  const command = commands.find((c) => c.name === name);
  if (command?.subcommands === undefined) {
    return { command, label: name, rest };
  }
  const at = findCommand(rest);
  if (at < 0) return { command, label: name, rest };
  const inner = resolveCommand(
    [...rest.slice(0, at), ...rest.slice(at + 1)],
    command.subcommands,
    rest[at]!,
  );
  return { ...inner, label: `${name} ${inner.label}` };
}

function wrap(text: string, width: number, indent: string): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(indent + line);
  return lines;
}

function commandList(commands: Command[]): string[] {
  const width = Math.max(8, ...commands.map((c) => c.name.length));
  return commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
}

function optionLines(options: OptionSpec): string[] {
  const rows = Object.entries(options).map(([name, spec]) => {
    const value = spec.type === "string" ? ` ${spec.valueName ?? "VALUE"}` : "";
    const left = `${spec.short ? `-${spec.short}, ` : ""}--${name}${value}${
      spec.multiple ? " ..." : ""
    }`;
    return [left, spec.description] as const;
  });
  const width = Math.min(28, Math.max(...rows.map(([l]) => l.length)));
  const lines: string[] = [];
  for (const [left, description] of rows) {
    const body = wrap(description, 80 - width - 4, "");
    if (left.length > width) {
      lines.push(`  ${left}`);
      body.forEach((b) => lines.push(`  ${" ".repeat(width)}  ${b}`));
    } else {
      body.forEach((b, i) =>
        lines.push(
          `  ${i === 0 ? left.padEnd(width) : " ".repeat(width)}  ${b}`,
        )
      );
    }
  }
  return lines;
}

/**
 * The help text of `cairn --help`.
 *
 * @param commands The commands to list.
 * @returns The text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { topHelp } from "./main.ts";
 * assert.match(topHelp([]), /Usage: cairn COMMAND/);
 * ```
 */
export function topHelp(commands: Command[]): string {
  const width = Math.max(8, ...commands.map((c) => c.name.length));
  return [
    `cairn ${VERSION}: resumable, verifiable and incremental batch jobs`,
    "",
    "Usage: cairn COMMAND [OPTIONS] [ARGS]",
    "",
    "Commands:",
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${"help".padEnd(width)}  Show help for a command`,
    "",
    "Global options (every command):",
    ...optionLines(TOP_OPTIONS),
    "",
    ...wrap(EXIT_CODES, 80, ""),
    "",
    'Run "cairn COMMAND --help" for a command\'s options and examples.',
    'Start with "cairn demo".',
  ].join("\n");
}

/**
 * The help text of `cairn COMMAND --help`.
 *
 * @param command The command.
 * @returns The text.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { commandHelp } from "./main.ts";
 * const text = commandHelp({ name: "x", summary: "Do x", usage: "cairn x", options: {}, examples: ["cairn x"], run: () => Promise.resolve(0) });
 * assert.match(text, /Examples:\n  cairn x/);
 * ```
 */
export function commandHelp(command: Command): string {
  const own = Object.keys(command.options).length > 0;
  return [
    `Usage: ${command.usage}`,
    "",
    command.summary,
    ...(command.description ? ["", ...wrap(command.description, 80, "")] : []),
    ...(command.subcommands === undefined ? [] : [
      "",
      "Subcommands:",
      ...commandList(command.subcommands),
    ]),
    ...(own ? ["", "Options:", ...optionLines(command.options)] : []),
    "",
    "Global options:",
    ...optionLines(GLOBAL_OPTIONS),
    "",
    "Examples:",
    ...command.examples.map((e) => `  ${e}`),
    "",
    ...wrap(EXIT_CODES, 80, ""),
  ].join("\n");
}

function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT.usage;
  if (error instanceof LockedError) return EXIT.locked;
  if (error instanceof InterruptedError) return error.exitCode;
  return EXIT.failed;
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
    const message = error instanceof Error ? error.message : String(error);
    const hint = code === EXIT.usage
      ? `Run "cairn ${
        commandName === undefined ? "" : `${commandName} `
      }--help" for usage`
      : undefined;
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
      process.stderr.write(`${paint(color, "red", "cairn:")} ${message}\n`);
      if (hint !== undefined) process.stderr.write(`${hint}\n`);
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
