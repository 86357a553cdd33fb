/**
 * The command line: global options, parsing with `node:util` parseArgs
 * (commands and subcommands), and the help text of `cairn --help` and
 * `cairn COMMAND --help` (also rendered into docs/cli.md).
 *
 * @module
 */
import { parseArgs } from "node:util";
import denoConfig from "../deno.json" with { type: "json" };
import { type Command, type CommandArgs, UsageError } from "./command.ts";

/**
 * The version printed by `cairn --version`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VERSION } from "./command_line.ts";
 * assert.match(VERSION, /^\d+\.\d+\.\d+/);
 * ```
 */
export const VERSION: string = denoConfig.version;

/** The options a command accepts, by name (see {@linkcode Command}). */
export type OptionSpec = Command["options"];

/**
 * Options every command accepts.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { GLOBAL_OPTIONS } from "./command_line.ts";
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
    description:
      "Print nothing on stderr but warnings and the one error line of a failure; forget, gc and verify print nothing on stdout when all is well",
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

export const EXIT_CODES: string =
  "Exit codes: 0 ok; 1 failed, rerun to resume; 2 usage or input error (bad flag or value, unknown job or run, refused config change: rerunning as is cannot help); 3 job locked by another process; 4 verify found problems; 130/143 interrupted by SIGINT/SIGTERM (rerun to resume)";

/**
 * Parsed command line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { type ParsedCommandLine, parseCommandLine } from "./command_line.ts";
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
export function findCommand(args: string[]): number {
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
 * import { parseOptions } from "./command_line.ts";
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
 * import { parseCommandLine } from "./command_line.ts";
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
export function resolveCommand(
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
 * import { topHelp } from "./command_line.ts";
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
 * import { commandHelp } from "./command_line.ts";
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
