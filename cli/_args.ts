/**
 * Argument helpers the commands share: job and run arguments, opening
 * an existing store, the store `--store` names, durations, bad input as
 * usage errors, and writing to stdout.
 *
 * @module
 */
import { parseDuration } from "../lib/duration.ts";
import { ConfigChangedError } from "../lib/job.ts";
import { openStore } from "../lib/open_store.ts";
import { assertName, type Store } from "../store/store.ts";
import {
  type CliContext,
  type CommandArgs,
  stringOption,
  UsageError,
} from "./command.ts";

/**
 * Open the store for a command that reads: it never creates a store, so a
 * mistyped `--store` gives a clear error.
 *
 * @param ctx The CLI context.
 * @returns The store.
 */
export async function openExistingStore(ctx: CliContext): Promise<Store> {
  if (ctx.storeLocation.startsWith("memory:")) return await ctx.store();
  try {
    return await openStore(ctx.storeLocation, { create: false });
  } catch (error) {
    if (
      error instanceof Error && error.constructor === Error &&
      /no cairn store there|not a cairn store|does not exist/.test(
        error.message,
      )
    ) {
      throw new UsageError(
        `${error.message}; pass --store PATH or set CAIRN_STORE (running "cairn demo" creates one)`,
      );
    }
    throw error;
  }
}

/**
 * Check a job name given on the command line.
 *
 * @param name The name.
 * @returns The name.
 */
export function jobArg(name: string): string {
  try {
    return assertName("job", name);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/**
 * The one positional argument a command takes.
 *
 * @param args Parsed arguments.
 * @param what How to name it in the error.
 * @returns The argument.
 */
export function onePositional(args: CommandArgs, what: string): string {
  if (args.positionals.length !== 1) {
    throw new UsageError(
      `Expected one ${what}, found ${args.positionals.length} arguments`,
    );
  }
  return args.positionals[0]!;
}

/**
 * Warn about each named job that has no runs in the store.
 *
 * @param ctx The CLI context.
 * @param store The store.
 * @param jobs Job names.
 */
export async function warnJobsWithoutRuns(
  ctx: CliContext,
  store: Store,
  jobs: string[],
): Promise<void> {
  for (const job of jobs) {
    if ((await store.listRuns(job)).length === 0) {
      ctx.warn(`Job "${job}" has no runs in store "${store.location}"`);
    }
  }
}

/**
 * Split `JOB` or `JOB/RUN`.
 *
 * @param spec The argument.
 * @returns The job and run.
 */
export function parseJobRun(
  spec: string,
): { job: string; run: string | undefined } {
  const slash = spec.indexOf("/");
  const job = jobArg(slash < 0 ? spec : spec.slice(0, slash));
  const run = slash < 0 ? undefined : spec.slice(slash + 1);
  if (run === "") {
    throw new UsageError(
      `Invalid run "${spec}": give JOB or JOB/RUN (a run id, a unique prefix of one, or "latest")`,
    );
  }
  return { job, run };
}

/**
 * Read a duration option (`30s`, `5m`, `7d`).
 *
 * @param args Parsed arguments.
 * @param name Option name.
 * @returns Milliseconds, or undefined when absent.
 */
export function durationArg(
  args: CommandArgs,
  name: string,
): number | undefined {
  const text = stringOption(args, name);
  if (text === undefined) return undefined;
  try {
    return parseDuration(text);
  } catch (error) {
    throw new UsageError(`Invalid --${name}: ${(error as Error).message}`);
  }
}

/**
 * The store `--store` names, or undefined when it is absent (for commands
 * whose target has its own store, which defaults like the CLI's).
 *
 * @param ctx The command's context.
 * @param args Parsed arguments.
 * @returns The store, or undefined.
 */
export async function explicitStore(
  ctx: CliContext,
  args: CommandArgs,
): Promise<Store | undefined> {
  return typeof args.values.store === "string" ? await ctx.store() : undefined;
}

/**
 * Run `work`, turning the library's bad-input errors (TypeError, RangeError,
 * SyntaxError, ConfigChangedError) into usage errors (exit 2, `--help` hint).
 *
 * @param work The library call.
 * @returns What `work` returns.
 */
export async function badInputIsUsage<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (
      error instanceof TypeError || error instanceof RangeError ||
      error instanceof SyntaxError || error instanceof ConfigChangedError
    ) throw new UsageError(error.message);
    throw error;
  }
}

/**
 * Write to stdout, waiting when the pipe is full.
 *
 * @param part Text or bytes.
 */
export function writeStdout(part: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(part, (error) => error ? reject(error) : resolve());
  });
}

/**
 * `count word`, with an `s` unless the count is one.
 *
 * @param count The count.
 * @param word The singular.
 * @param plural The plural. Default: `word` + "s".
 * @returns The phrase.
 */
export function plural(
  count: number,
  word: string,
  plural = `${word}s`,
): string {
  return `${count} ${count === 1 ? word : plural}`;
}
