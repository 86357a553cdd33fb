/**
 * The one rule for job and run names, shared by logs and locks.
 *
 * @module
 */

const NAME_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
/** Longest part of a rejected name echoed back in a message. */
const ECHO_LIMIT = 60;

/**
 * Check a job or run name: 1–128 characters of `[A-Za-z0-9._-]`, not starting
 * with "." or "-".
 *
 * @param kind What the name is for ("job" or "run"), for the message.
 * @param name The name.
 * @returns The same name.
 * @throws {TypeError} If the name breaks the rule; a long name is shortened in the message.
 *
 * @example Validate a job name
 * ```ts
 * import assert from "node:assert/strict";
 * import { assertName } from "./name.ts";
 * assert.equal(assertName("job", "nightly-embeddings"), "nightly-embeddings");
 * assert.throws(() => assertName("job", "../x"), TypeError);
 * ```
 */
export function assertName(kind: string, name: string): string {
  if (typeof name !== "string" || !NAME_PATTERN.test(name)) {
    const text = String(name);
    const shown = text.length > ECHO_LIMIT
      ? `${
        JSON.stringify(text.slice(0, ECHO_LIMIT)).slice(1, -1)
      }…" (${text.length} characters`
      : `${JSON.stringify(text).slice(1, -1)}"`;
    throw new TypeError(
      `Cannot use ${kind} name "${shown}${
        text.length > ECHO_LIMIT ? ")" : ""
      }: use 1 to 128 characters from A-Z, a-z, 0-9, ".", "_" and "-", not starting with "." or "-"`,
    );
  }
  return name;
}
