/**
 * How the CLI tests start `cairn`: from source under the runtime running the
 * tests, or, when `CAIRN_CLI_BIN` names a compiled binary (`dist/cairn` from
 * `deno task compile:bun`), that binary. `.ci/run` runs the CLI tests both
 * ways.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { resolve } from "node:path";
import {
  type ChildResult,
  collectOutput,
  runtimeCommand,
} from "./child_process.ts";

const MAIN = new URL("../cli/main.ts", import.meta.url);
const BATCH = new URL("./fixtures/cli_batch.ts", import.meta.url);

/** The binary under test, as an absolute path, or undefined to run the source. */
export const CLI_BIN: string | undefined = process.env.CAIRN_CLI_BIN
  ? resolve(process.env.CAIRN_CLI_BIN)
  : undefined;

/** The command and arguments that run `cairn ARGS`. */
export function cairnCommand(args: string[]): [string, string[]] {
  return CLI_BIN === undefined ? runtimeCommand(MAIN, args) : [CLI_BIN, args];
}

/** Options for {@linkcode startCairn}. */
export interface StartCairnOptions {
  /** Environment added to this process's (or, with `cleanEnv`, used alone). */
  env?: Record<string, string>;
  /** Use only `env`, like cron's minimal environment. Default: false. */
  cleanEnv?: boolean;
  /** Give the child a stdin pipe that is closed at once (EOF). Default: stdin is /dev/null. */
  closeStdin?: boolean;
  /** Working directory. Default: this process's. */
  cwd?: string;
}

/** Start `cairn ARGS` with stdout and stderr piped. */
export function startCairn(
  args: string[],
  options: StartCairnOptions = {},
): ChildProcess {
  const [cmd, argv] = cairnCommand(args);
  const child = spawn(cmd, argv, {
    stdio: [options.closeStdin ? "pipe" : "ignore", "pipe", "pipe"],
    env: options.cleanEnv
      ? { ...options.env }
      : { ...process.env, ...options.env },
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  if (options.closeStdin) child.stdin!.end();
  return child;
}

/** What a finished `cairn` printed and how it exited. */
/** How a `cairn` run ended, with everything it printed. */
export type CairnResult = ChildResult;

/** Wait for a started `cairn` to exit, collecting its output. */
export const collect: (child: ChildProcess) => Promise<CairnResult> =
  collectOutput;

/** Run `cairn ARGS` to completion. */
export function runCairn(
  args: string[],
  options: StartCairnOptions = {},
): Promise<CairnResult> {
  return collect(startCairn(args, options));
}

/**
 * Run `cairn` once per argument list, for cases that only parse arguments or
 * load inputs. From source, the lists run one after the other through the
 * CLI's `main()` in a single child process (tests/fixtures/cli_batch.ts: one
 * process start instead of one per list); with `CAIRN_CLI_BIN`, each list
 * runs the binary.
 */
export async function runCairnEach(
  lists: string[][],
  env: Record<string, string> = {},
): Promise<CairnResult[]> {
  if (CLI_BIN !== undefined) {
    return await Promise.all(lists.map((args) => runCairn(args, { env })));
  }
  const [cmd, argv] = runtimeCommand(BATCH, [JSON.stringify(lists)]);
  const batch = await collect(
    spawn(cmd, argv, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, ...env },
    }),
  );
  if (batch.code !== 0) {
    throw new Error(
      `cli_batch.ts exited with ${batch.code}, expected 0: ${batch.stderr}`,
    );
  }
  const results = (JSON.parse(batch.stdout) as Omit<
    CairnResult,
    "signal"
  >[]).map((r) => ({ ...r, signal: null }));
  if (results.length !== lists.length) {
    throw new Error(
      `cli_batch.ts returned ${results.length} results, expected ${lists.length}`,
    );
  }
  return results;
}
