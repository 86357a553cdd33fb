/**
 * How the user runs cairn, so that printed hints are commands that work as
 * written: `npm run cairn --` from a checkout via npm, the script's path for
 * `scripts/cairn`, the binary's path for a single binary, else `cairn`.
 *
 * @module
 */
import { basename, isAbsolute, relative } from "node:path";

/**
 * The command prefix that runs this CLI the way it was started.
 *
 * @param env The environment. Default: `process.env`.
 * @param execPath The runtime's executable. Default: `process.execPath`.
 * @param cwd The working directory. Default: `process.cwd()`.
 * @returns For example `npm run cairn --`, `scripts/cairn` or `cairn`.
 */
export function invokedAs(
  env: Record<string, string | undefined> = process.env,
  execPath: string = process.execPath,
  cwd: string = process.cwd(),
): string {
  if (env.CAIRN_PROG) return env.CAIRN_PROG;
  const event = env.npm_lifecycle_event;
  // `npm run demo`, `npm run cairn -- …` and `npx deno task …` from a checkout.
  if (
    env.npm_package_name === "@cairn/cairn" &&
    (event === "demo" || event === "cairn" || event === "npx")
  ) return "npm run cairn --";
  if (event === "npx") return "npx cairn";
  // A single binary (bun build --compile, deno compile) named cairn*.
  if (/^cairn/.test(basename(execPath))) {
    const rel = relative(cwd, execPath);
    return rel.startsWith("..") || isAbsolute(rel) ? execPath : `./${rel}`;
  }
  return "cairn";
}
