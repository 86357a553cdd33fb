/**
 * Writing a file so that readers see either the old file or the whole new
 * one, never a part: the bytes go to a temporary file beside it, which is
 * synced and then renamed over it.
 *
 * @module
 */
import { randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";

/** Options for {@linkcode writeFileAtomically}. */
export interface WriteFileAtomicallyOptions {
  /** Mode of the new file, before the umask. Default: `0o666`. */
  mode?: number;
}

/**
 * Write a file atomically. `write` receives a `chunk` function and passes it
 * the file's contents part by part (text is UTF-8 encoded); the parts go to
 * `PATH.tmp-PID-HEX` in the same directory, written in 1 MiB batches, which
 * is synced and renamed over `path` once `write` resolves. If anything
 * fails, the temporary file is removed and `path` is left as it was.
 *
 * @param path Destination path.
 * @param write Produces the contents through `chunk`.
 * @param options The file mode.
 * @returns A promise that settles once the file is in place.
 *
 * @example Write in parts; a failed write leaves the old file
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { writeFileAtomically } from "./write_file_atomically.ts";
 *
 * const dir = await mkdtemp(join(tmpdir(), "cairn-atomic-"));
 * const path = join(dir, "out.txt");
 * await writeFileAtomically(path, async (chunk) => {
 *   await chunk("hello ");
 *   await chunk(new TextEncoder().encode("world"));
 * });
 * assert.equal(await readFile(path, "utf8"), "hello world");
 * await assert.rejects(
 *   writeFileAtomically(path, async (chunk) => {
 *     await chunk("partial");
 *     throw new Error("Cannot produce the rest");
 *   }),
 *   /Cannot produce the rest/,
 * );
 * assert.equal(await readFile(path, "utf8"), "hello world");
 * assert.deepEqual(await readdir(dir), ["out.txt"]);
 * await rm(dir, { recursive: true });
 * ```
 */
export async function writeFileAtomically(
  path: string,
  write: (chunk: (part: string | Uint8Array) => Promise<void>) => Promise<void>,
  options: WriteFileAtomicallyOptions = {},
): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${randomBytes(6).toString("hex")}`;
  const handle = await open(temp, "wx", options.mode ?? 0o666);
  try {
    try {
      const encoder = new TextEncoder();
      let pending: Uint8Array[] = [];
      let pendingBytes = 0;
      let position = 0;
      const flush = async () => {
        let bytes: Uint8Array;
        if (pending.length === 1) {
          bytes = pending[0]!;
        } else {
          bytes = new Uint8Array(pendingBytes);
          let at = 0;
          for (const part of pending) {
            bytes.set(part, at);
            at += part.length;
          }
        }
        pending = [];
        pendingBytes = 0;
        for (let done = 0; done < bytes.length;) {
          const { bytesWritten } = await handle.write(
            bytes,
            done,
            bytes.length - done,
            position,
          );
          done += bytesWritten;
          position += bytesWritten;
        }
      };
      await write(async (part) => {
        const bytes = typeof part === "string" ? encoder.encode(part) : part;
        pending.push(bytes);
        pendingBytes += bytes.length;
        if (pendingBytes >= 1 << 20) await flush();
      });
      await flush();
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw error;
  }
}
