import { type ChildProcess, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** Whether the tests run under Deno (else Bun). */
export const IS_DENO: boolean =
  typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

/** The command that runs a TypeScript file under the runtime running the tests. */
export function runtimeCommand(
  script: string | URL,
  args: string[] = [],
): [string, string[]] {
  const path = script instanceof URL ? fileURLToPath(script) : script;
  return [
    process.execPath,
    IS_DENO ? ["run", "-A", "--quiet", path, ...args] : ["run", path, ...args],
  ];
}

/** Start a TypeScript file as a child process of the current runtime. */
export function startScript(
  script: string | URL,
  args: string[] = [],
  env: Record<string, string> = {},
): ChildProcess {
  const [cmd, argv] = runtimeCommand(script, args);
  return spawn(cmd, argv, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, ...env },
  });
}

/** How a child process ended, with everything it printed. */
export interface ChildResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Wait for a started child to exit, collecting its output. */
export function collectOutput(child: ChildProcess): Promise<ChildResult> {
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on(
      "close",
      (code, signal) => resolve({ code, signal, stdout, stderr }),
    );
  });
}

/** Run a script to completion and collect its output. */
export function runScript(
  script: string | URL,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<ChildResult> {
  return collectOutput(startScript(script, args, env));
}

/** Wait until the child has printed `count` lines on stdout, then SIGKILL it; resolves to all it printed. */
export function killAfterLines(
  child: ChildProcess,
  count: number,
): Promise<string> {
  let out = "";
  return new Promise((resolve) => {
    child.stdout!.on("data", (d) => {
      out += d;
      if (out.split("\n").length - 1 >= count) child.kill("SIGKILL");
    });
    child.on("close", () => resolve(out));
  });
}
