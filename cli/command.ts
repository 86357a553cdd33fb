/**
 * The shape of a CLI command. Each command module exports `Command` objects;
 * `cli/main.ts` lists them, parses global options and maps errors to exit codes.
 *
 * @module
 */
import type { ParseArgsConfig } from "node:util";
import type { JobEvent } from "../lib/events.ts";
import type { Store } from "../store/store.ts";

/** Exit codes, as documented in the README. */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  locked: 3,
  verifyProblems: 4,
  sigint: 130,
  sigterm: 143,
} as const;

/** A usage mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  /**
   * @param message What is wrong and how to fix it.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** What a command gets besides its arguments. */
export interface CliContext {
  /** Open the store named by `--store`, `$CAIRN_STORE` or `./.cairn`. */
  store(): Promise<Store>;
  /** The store location as given. */
  storeLocation: string;
  /** The command prefix that runs cairn as the user did (`npm run cairn --`, `scripts/cairn`), for printed hints. Default: `cairn`. */
  program?: string;
  /** `--json`: data as JSON on stdout, events as JSON lines on stderr. */
  json: boolean;
  /** `--quiet`: no progress or informational messages. */
  quiet: boolean;
  /** `--wait-lock` in ms (0 = fail at once). */
  waitLockMs: number;
  /** Write data to stdout (a line is added). */
  out(text: string): void;
  /** Write a message to stderr unless quiet. */
  info(text: string): void;
  /** Write a warning to stderr (even when quiet). */
  warn(text: string): void;
  /** Render a job event as progress (bar on a TTY, log lines otherwise, JSON lines with --json). */
  onEvent(event: JobEvent): void;
  /** Print a result object: JSON with --json, else via `human`. */
  result(value: unknown, human: () => void): void;
}

/** Parsed arguments. */
export interface CommandArgs {
  /** Option values by name (`--no-x` gives `false`; repeatable options give arrays). */
  values: Record<string, string | boolean | (string | boolean)[] | undefined>;
  /** Arguments that are not options, in order. */
  positionals: string[];
}

/** A CLI command. */
export interface Command {
  /** The word after `cairn`. */
  name: string;
  /** One line for the command list. */
  summary: string;
  /** Usage line, e.g. `cairn show JOB[/RUN]`. */
  usage: string;
  /** Longer description (optional). */
  description?: string;
  /** Command-specific options for `node:util` parseArgs, with a description each. */
  options: Record<
    string,
    NonNullable<ParseArgsConfig["options"]>[string] & {
      description: string;
      valueName?: string;
    }
  >;
  /** Worked examples shown by `--help`. */
  examples: string[];
  /** Whether positionals are accepted. Default: false. */
  positionals?: boolean;
  /**
   * Subcommands (`cairn pipeline run`): the word after this command's name
   * picks one; each is a whole command whose `name` is the subcommand word.
   * With subcommands, `run` is called only when no subcommand word is given.
   */
  subcommands?: Command[];
  /** Run it; resolves to the exit code. */
  run(ctx: CliContext, args: CommandArgs): Promise<number>;
}

/**
 * Read a string option, or undefined.
 *
 * @param args Parsed arguments.
 * @param name Option name.
 * @returns The value.
 */
export function stringOption(
  args: CommandArgs,
  name: string,
): string | undefined {
  const v = args.values[name];
  return typeof v === "string" ? v : undefined;
}

/**
 * Read a required string option.
 *
 * @param args Parsed arguments.
 * @param name Option name.
 * @returns The value.
 */
export function requiredOption(args: CommandArgs, name: string): string {
  const v = stringOption(args, name);
  if (v === undefined) {
    throw new UsageError(`Missing --${name}: this command needs it`);
  }
  return v;
}

/**
 * Read an integer option within bounds.
 *
 * @param args Parsed arguments.
 * @param name Option name.
 * @param min Smallest allowed value.
 * @returns The number, or undefined when absent.
 */
export function intOption(
  args: CommandArgs,
  name: string,
  min = 0,
): number | undefined {
  const v = stringOption(args, name);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v) || Number(v) < min) {
    throw new UsageError(
      `Invalid --${name} "${v}": expected a whole number >= ${min}`,
    );
  }
  return Number(v);
}

/**
 * Read a number option.
 *
 * @param args Parsed arguments.
 * @param name Option name.
 * @returns The number, or undefined when absent.
 */
export function numberOption(
  args: CommandArgs,
  name: string,
): number | undefined {
  const v = stringOption(args, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) {
    throw new UsageError(`Invalid --${name} "${v}": expected a number`);
  }
  return n;
}
