/**
 * The filesystem discipline every cairn writer follows, in one place: new
 * bytes go to a temp file that is written and fsynced, then published by a
 * rename (replace) or a hard link (create only), and the directory that
 * received the name is fsynced, so a published file survives a power cut.
 * Also errno checks, readable wrappers for the errors users hit (full disk,
 * read-only store, a directory where a file belongs) and an abortable sleep.
 *
 * @module
 */
import {
  closeSync,
  constants,
  fdatasync,
  fsync,
  lstatSync,
  openSync,
  type Stats,
  writeSync,
} from "node:fs";
import { promisify } from "node:util";
import * as fs from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";

/**
 * Whether `error` is a Node-style system error with one of `codes`.
 *
 * @param error Anything caught.
 * @param codes Errno names such as `"ENOENT"`.
 * @returns True when the error's `code` is one of them.
 *
 * @example Recognise a missing file
 * ```ts
 * import assert from "node:assert/strict";
 * import { readFile } from "node:fs/promises";
 * import { isErrno } from "./files.ts";
 * const error = await readFile("/nonexistent/x").catch((e) => e);
 * assert.equal(isErrno(error, "ENOENT"), true);
 * ```
 */
export function isErrno(error: unknown, ...codes: string[]): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && codes.includes(code);
}

const FIXES: Record<string, string> = {
  ENOSPC: "the disk is full; free space (for example with a gc) and rerun",
  EDQUOT: "the disk quota is exhausted; free space and rerun",
  EROFS: "the file system is read-only; use a writable store",
  EACCES: "permission denied; check the owner and mode of the store",
  EPERM: "permission denied; check the owner and mode of the store",
  EISDIR: "a directory is where a file belongs; move it away",
  ENOTDIR: "a file is where a directory belongs; move it away",
  ELOOP: "a symbolic link is where cairn expects a file or directory; " +
    "cairn never follows links inside a store, so replace it with the real thing",
};

/**
 * Give a raw system error a message naming the action, the path and the fix.
 * Errors without a known fix are returned unchanged.
 *
 * @param error The caught error.
 * @param action What failed, e.g. `Cannot write chunk`.
 * @param path The path involved.
 * @returns The error to throw; the original is its `cause`.
 *
 * @example Explain a full disk
 * ```ts
 * import assert from "node:assert/strict";
 * import { explainFsError } from "./files.ts";
 * const raw = Object.assign(new Error("ENOSPC: no space left"), { code: "ENOSPC" });
 * const error = explainFsError(raw, "Cannot write chunk", "/s/chunks/ab");
 * assert.match(String(error), /Cannot write chunk "\/s\/chunks\/ab": the disk is full/);
 * ```
 */
export function explainFsError(
  error: unknown,
  action: string,
  path: string,
): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  const fix = typeof code === "string" ? FIXES[code] : undefined;
  if (fix === undefined) return error;
  const wrapped = new Error(`${action} "${path}": ${fix} (${code})`, {
    cause: error,
  });
  return Object.assign(wrapped, { code });
}

/**
 * fsync a directory, so that a rename, link or unlink in it is durable.
 *
 * @param dir The directory.
 * @returns Resolves once synced.
 *
 * @example Sync a temp directory
 * ```ts
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { syncDir } from "./files.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-"));
 * await syncDir(dir);
 * await rm(dir, { recursive: true });
 * ```
 */
export async function syncDir(dir: string): Promise<void> {
  if (syncObserver === undefined) {
    // Opening and closing a directory are cheap system calls, done here; only
    // the fsync waits for the disk. Half the CPU of the handle path below
    // under Deno and Bun alike, whose handle calls each cost an async round.
    const fd = openSync(dir, constants.O_RDONLY | O_DIRECTORY);
    try {
      await fsyncDescriptor(fd);
    } finally {
      closeSync(fd);
    }
    return;
  }
  // The fault hook needs a handle.
  const handle = await fs.open(dir, constants.O_RDONLY | O_DIRECTORY);
  try {
    await syncHandle(handle, dir);
  } finally {
    await handle.close();
  }
}

const fsyncDescriptor = promisify(fsync);

/**
 * Watches every fsync cairn makes, after it returns: the power-cut
 * simulator (scripts/_power_cut.ts) snapshots what is durable from it, and
 * throws from it to stop the process's durable history at a chosen sync.
 */
export type SyncObserver = (
  path: string,
  handle: fs.FileHandle,
) => Promise<void>;

let syncObserver: SyncObserver | undefined;

/**
 * Install (or, with `undefined`, remove) the {@linkcode SyncObserver}. For
 * fault injection only; with none installed a sync costs one extra check.
 *
 * @param observer Called after each fsync/fdatasync with the synced path.
 * @returns The observer it replaced.
 *
 * @example Count syncs
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { setSyncObserver, syncDir } from "./files.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-"));
 * const seen: string[] = [];
 * setSyncObserver(async (path) => void seen.push(path));
 * await syncDir(dir);
 * setSyncObserver(undefined);
 * assert.deepEqual(seen, [dir]);
 * await rm(dir, { recursive: true });
 * ```
 */
export function setSyncObserver(
  observer: SyncObserver | undefined,
): SyncObserver | undefined {
  const previous = syncObserver;
  syncObserver = observer;
  return previous;
}

/**
 * fsync (or, with `data`, fdatasync) an open file or directory: every sync
 * in cairn goes through here, so a fault hook sees all of them.
 *
 * @param handle The open file or directory.
 * @param path Its path, for the hook.
 * @param data fdatasync instead of fsync. Default: false.
 * @returns Resolves once synced.
 *
 * @example Sync a file
 * ```ts
 * import { mkdtemp, open, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { syncHandle } from "./files.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-"));
 * const handle = await open(join(dir, "a"), "w");
 * await handle.writeFile("x");
 * await syncHandle(handle, join(dir, "a"));
 * await handle.close();
 * await rm(dir, { recursive: true });
 * ```
 */
export async function syncHandle(
  handle: fs.FileHandle,
  path: string,
  data = false,
): Promise<void> {
  await (data ? handle.datasync() : handle.sync());
  if (syncObserver !== undefined) await syncObserver(path, handle);
}

/**
 * `lstat` without following a link, done synchronously; undefined when
 * nothing is at `path`. A stat is a lookup in the kernel's caches: done
 * synchronously it costs about 10 µs of CPU, where the asynchronous call costs
 * 90 to 120 µs under Deno's `node:fs` (and 35 µs under Bun). cairn stats on
 * every chunk put and every log append, so this is for those hot paths.
 *
 * @param path The path to look at.
 * @returns Its stats, or undefined if it does not exist.
 * @throws {Error} An errno error other than a missing entry (EACCES, ELOOP…).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { lstatNow } from "./files.ts";
 * assert.equal(lstatNow("/no/such/cairn/path"), undefined);
 * assert.ok(lstatNow(".")?.isDirectory());
 * ```
 */
export function lstatNow(path: string): Stats | undefined {
  return lstatSync(path, { throwIfNoEntry: false });
}

/**
 * Write all of `bytes` at `position` in an open file and fdatasync it: a log
 * append. Up to {@linkcode SMALL_WRITE_BYTES} (every log record but a huge
 * one) the write is a synchronous copy into the page cache on the file's raw
 * descriptor, and only the fdatasync is asynchronous, which saves a handle
 * round under Deno and Bun; larger writes go through the handle.
 *
 * @param handle The open file.
 * @param path Its path, for the fault hook.
 * @param bytes What to write.
 * @param position Where.
 * @returns Resolves once the bytes are durable.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, open, readFile, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { writeDurable } from "./files.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-"));
 * const path = join(dir, "log");
 * const handle = await open(path, "w+");
 * await writeDurable(handle, path, new TextEncoder().encode("abc"), 0);
 * await writeDurable(handle, path, new TextEncoder().encode("de"), 3);
 * await handle.close();
 * assert.equal(await readFile(path, "utf8"), "abcde");
 * await rm(dir, { recursive: true });
 * ```
 */
export async function writeDurable(
  handle: fs.FileHandle,
  path: string,
  bytes: Uint8Array,
  position: number,
): Promise<void> {
  let written = 0;
  if (syncObserver === undefined && bytes.length <= SMALL_WRITE_BYTES) {
    while (written < bytes.length) {
      written += writeSync(
        handle.fd,
        bytes,
        written,
        bytes.length - written,
        position + written,
      );
    }
    await fdatasyncDescriptor(handle.fd);
    return;
  }
  while (written < bytes.length) {
    written += (await handle.write(
      bytes,
      written,
      bytes.length - written,
      position + written,
    )).bytesWritten;
  }
  await syncHandle(handle, path, true);
}

/** Largest write {@linkcode writeDurable} makes synchronously. */
export const SMALL_WRITE_BYTES = 64 * 1024;

const fdatasyncDescriptor = promisify(fdatasync);

const O_DIRECTORY = constants.O_DIRECTORY ?? 0;
/** Open flags that refuse a symbolic link as the last path component. */
export const O_NOFOLLOW: number = constants.O_NOFOLLOW ?? 0;

/**
 * A fresh temp-file name in `dir`: `.NAME.PID-HEX.tmp` beside a target, or
 * `PID-HEX.tmp` in a temp directory.
 *
 * @param dir The directory the temp file goes in.
 * @param beside The target's base name, when the temp file sits next to it.
 * @returns The path.
 *
 * @example A temp name beside a target
 * ```ts
 * import assert from "node:assert/strict";
 * import { tempPath } from "./files.ts";
 * assert.match(tempPath("/s/locks", "job.lock"), /^\/s\/locks\/\.job\.lock\.\d+-[0-9a-f]+\.tmp$/);
 * ```
 */
export function tempPath(dir: string, beside?: string): string {
  const suffix = `${process.pid}-${randomBytes(6).toString("hex")}.tmp`;
  return join(dir, beside === undefined ? suffix : `.${beside}.${suffix}`);
}

/**
 * Whether process `pid` on this host exists (EPERM: it does, as another user).
 *
 * @param pid The process id.
 * @returns False once the process is gone.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { isProcessAlive } from "./files.ts";
 * assert.equal(isProcessAlive(process.pid), true);
 * ```
 */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return !isErrno(error, "ESRCH");
  }
}

/**
 * Remove the temp files that writers on this host left beside `beside` in
 * `dir` (named by {@linkcode tempPath}) when they died mid-write. A live
 * writer's temp file stays, and so does this process's.
 *
 * @param dir The target's directory.
 * @param beside The target's base name.
 * @returns The paths removed.
 *
 * @example A dead writer's temp file goes
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { removeDeadTemps, tempPath } from "./files.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-"));
 * await writeFile(join(dir, ".out.jsonl.2147483646-00aa.tmp"), "partial");
 * await writeFile(tempPath(dir, "out.jsonl"), "mine");
 * assert.equal((await removeDeadTemps(dir, "out.jsonl")).length, 1);
 * assert.equal((await readdir(dir)).length, 1);
 * await rm(dir, { recursive: true });
 * ```
 */
export async function removeDeadTemps(
  dir: string,
  beside: string,
): Promise<string[]> {
  const removed: string[] = [];
  const prefix = `.${beside}.`;
  for (const entry of await fs.readdir(dir).catch(() => [] as string[])) {
    if (!entry.startsWith(prefix)) continue;
    const match = /^(\d+)-[0-9a-f]+\.tmp$/.exec(entry.slice(prefix.length));
    if (match === null) continue;
    const pid = Number(match[1]);
    if (pid === process.pid || isProcessAlive(pid)) continue;
    const path = join(dir, entry);
    try {
      await fs.unlink(path);
      removed.push(path);
    } catch (error) {
      if (!isErrno(error, "ENOENT")) throw error;
    }
  }
  return removed;
}

/** Options for {@linkcode writeNewFile}. */
export interface WriteNewFileOptions {
  /** Mode of the new file, before the umask. Default: `0o644`. */
  mode?: number;
  /** fsync the file before returning. Default: true. */
  sync?: boolean;
}

/** Errors of an exclusive create that leave nothing behind to remove. */
const OPEN_FAILURES = new Set([
  "EEXIST",
  "ELOOP",
  "EISDIR",
  "ENOTDIR",
  "ENOENT",
  "EACCES",
  "EPERM",
  "EROFS",
  "ENAMETOOLONG",
  "EMFILE",
  "ENFILE",
]);

/**
 * Create `path` (which must not exist), write `bytes` and fsync it. On
 * failure the partial file is removed.
 *
 * @param path The new file, usually a {@linkcode tempPath}.
 * @param bytes Its contents.
 * @param options Mode and whether to fsync.
 * @returns Resolves once written.
 *
 * @example Write a temp file
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readFile, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { writeNewFile } from "./files.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-"));
 * await writeNewFile(join(dir, "a"), new TextEncoder().encode("hi"));
 * assert.equal(await readFile(join(dir, "a"), "utf8"), "hi");
 * await rm(dir, { recursive: true });
 * ```
 */
export async function writeNewFile(
  path: string,
  bytes: Uint8Array | string,
  options: WriteNewFileOptions = {},
): Promise<void> {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL |
    O_NOFOLLOW;
  if (syncObserver === undefined) {
    // One call that opens, writes, fsyncs and closes: a single trip through
    // the runtime's I/O (the handle path below takes four). The fault hook
    // needs the handle, so it keeps the long path.
    try {
      await fs.writeFile(path, bytes, {
        flag: flags,
        mode: options.mode ?? 0o644,
        flush: options.sync !== false,
      });
    } catch (error) {
      // Only a file this call created is removed: an open that failed
      // (EEXIST, a link refused with ELOOP, a directory…) created nothing.
      if (!OPEN_FAILURES.has((error as { code?: string }).code ?? "")) {
        await fs.rm(path, { force: true }).catch(() => {});
      }
      throw error;
    }
    return;
  }
  const handle = await fs.open(path, flags, options.mode ?? 0o644);
  try {
    await handle.writeFile(bytes);
    if (options.sync !== false) await syncHandle(handle, path);
    await handle.close();
  } catch (error) {
    await handle.close().catch(() => {});
    await fs.rm(path, { force: true });
    throw error;
  }
}

/**
 * Publish a written temp file at `path`: by rename (replacing what is there)
 * or, with `exclusive`, by hard link (failing when `path` exists; the temp is
 * removed either way). The directory of `path` is fsynced after.
 *
 * @param temp A written, fsynced temp file on the same file system.
 * @param path Where it is published.
 * @param exclusive Only create, never replace.
 * @returns False when `exclusive` and `path` already existed.
 *
 * @example Publish exclusively
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { publishFile, tempPath, writeNewFile } from "./files.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-"));
 * for (const expected of [true, false]) {
 *   const temp = tempPath(dir, "config");
 *   await writeNewFile(temp, "{}");
 *   assert.equal(await publishFile(temp, join(dir, "config"), true), expected);
 * }
 * await rm(dir, { recursive: true });
 * ```
 */
export async function publishFile(
  temp: string,
  path: string,
  exclusive = false,
): Promise<boolean> {
  try {
    if (exclusive) await fs.link(temp, path);
    else await fs.rename(temp, path);
  } catch (error) {
    await fs.rm(temp, { force: true });
    if (exclusive && isErrno(error, "EEXIST")) return false;
    throw error;
  }
  if (exclusive) await fs.rm(temp, { force: true });
  await syncDir(dirname(path));
  return true;
}

/**
 * Make directory `dir` (not its parents) if missing, fsyncing its parent
 * when it was created. A symbolic link or a file in its place is refused.
 *
 * @param dir The directory.
 * @returns True if this call made it (and synced its parent), false if it
 * was there.
 *
 * @example Make a directory twice
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { ensureDir } from "./files.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-"));
 * assert.equal(await ensureDir(join(dir, "a")), true);
 * assert.equal(await ensureDir(join(dir, "a")), false);
 * await rm(dir, { recursive: true });
 * ```
 */
export async function ensureDir(dir: string): Promise<boolean> {
  try {
    await fs.mkdir(dir);
    await syncDir(dirname(dir));
    return true;
  } catch (error) {
    if (!isErrno(error, "EEXIST")) throw error;
  }
  await assertRealDir(dir);
  return false;
}

/**
 * Make `dir` and any missing parents, fsyncing the parent of each directory
 * made, so the new names survive a power cut.
 *
 * @param dir The directory.
 * @returns Resolves once it exists and its new names are durable.
 *
 * @example Make nested directories
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, rm, stat } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { makeDirs } from "./files.ts";
 * const dir = await mkdtemp(join(tmpdir(), "cairn-"));
 * await makeDirs(join(dir, "a", "b"));
 * assert.ok((await stat(join(dir, "a", "b"))).isDirectory());
 * await rm(dir, { recursive: true });
 * ```
 */
export async function makeDirs(dir: string): Promise<void> {
  const first = await fs.mkdir(dir, { recursive: true });
  if (first === undefined) return;
  for (let made = dir;; made = dirname(made)) {
    await syncDir(dirname(made));
    if (made === first || dirname(made) === made) break;
  }
}

/**
 * Throw unless `dir` is a directory itself, not a symbolic link to one.
 *
 * @param dir The path.
 * @returns Resolves when it is a real directory.
 *
 * @example A temp dir is real
 * ```ts
 * import { tmpdir } from "node:os";
 * import { realpath } from "node:fs/promises";
 * import { assertRealDir } from "./files.ts";
 * await assertRealDir(await realpath(tmpdir()));
 * ```
 */
export function assertRealDir(dir: string): Promise<void> {
  // The stat is synchronous, as in lstatNow (a chunk put checks its prefix
  // directory); failures still arrive as a rejection.
  try {
    checkRealDir(dir, lstatSync(dir));
  } catch (error) {
    return Promise.reject(error);
  }
  return Promise.resolve();
}

function checkRealDir(dir: string, stat: Stats): void {
  if (stat.isSymbolicLink()) {
    throw Object.assign(
      new Error(
        `Cannot use "${dir}": it is a symbolic link; cairn never follows links inside a store, so replace it with a real directory`,
      ),
      { code: "ELOOP" },
    );
  }
  if (!stat.isDirectory()) {
    throw Object.assign(
      new Error(
        `Cannot use "${dir}": it is not a directory; move it away`,
      ),
      { code: "ENOTDIR" },
    );
  }
}

/**
 * Sleep for `ms`, or reject with `signal.reason` once it aborts.
 *
 * @param ms Milliseconds.
 * @param signal Aborts the sleep.
 * @returns Resolves after `ms`.
 *
 * @example Sleep briefly
 * ```ts
 * import { sleep } from "./files.ts";
 * await sleep(1);
 * ```
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Refuse to replace anything but a regular file: a link, a FIFO or a device stays as it is. */
async function assertReplaceable(path: string): Promise<void> {
  const stat = await fs.lstat(path).catch((error) => {
    if (isErrno(error, "ENOENT")) return undefined;
    throw error;
  });
  if (stat === undefined || stat.isFile()) return;
  const what = stat.isSymbolicLink()
    ? "a symbolic link"
    : stat.isDirectory()
    ? "a directory"
    : "a device, FIFO or socket";
  throw Object.assign(
    new Error(
      `Cannot write "${path}": it is ${what}, and only a regular file is replaced; pick another path or remove it first`,
    ),
    { code: stat.isDirectory() ? "EISDIR" : "EEXIST" },
  );
}

/** Options for {@linkcode writeFileAtomically}. */
export interface WriteFileAtomicallyOptions {
  /** Mode of the new file, before the umask. Default: `0o666`. */
  mode?: number;
}

/**
 * Write a file atomically. `write` receives a `chunk` function and passes it
 * the file's contents part by part (text is UTF-8 encoded); the parts go to
 * a temp file in the same directory, written in 1 MiB batches, which is
 * fsynced, renamed over `path` once `write` resolves, and its directory
 * fsynced. If anything fails, the temp file is removed and `path` is left as
 * it was. Only a regular file is ever replaced: a symbolic link, a directory,
 * a FIFO or a device at `path` is an error, and is left alone.
 *
 * @param path Destination path.
 * @param write Produces the contents through `chunk`.
 * @param options The file mode.
 * @returns A promise that settles once the file is durably in place.
 *
 * @example Write in parts; a failed write leaves the old file
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { writeFileAtomically } from "./files.ts";
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
  await assertReplaceable(path);
  const temp = tempPath(dirname(path), basename(path));
  const handle = await fs.open(
    temp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW,
    options.mode ?? 0o666,
  ).catch((error) => {
    // Name the caller's directory, not the temp file they never chose.
    if (!isErrno(error, "ENOENT", "ENOTDIR")) throw error;
    throw Object.assign(
      new Error(
        `Cannot write "${path}": its directory "${
          dirname(path)
        }" does not exist; create it or fix the path`,
        { cause: error },
      ),
      { code: (error as NodeJS.ErrnoException).code, path: dirname(path) },
    );
  });
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
      await syncHandle(handle, temp);
    } finally {
      await handle.close();
    }
  } catch (error) {
    await fs.unlink(temp).catch(() => {});
    throw explainFsError(error, "Cannot write", path);
  }
  await publishFile(temp, path).catch((error) => {
    throw explainFsError(error, "Cannot write", path);
  });
}
