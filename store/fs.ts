/**
 * The filesystem backend: restic's discipline for every write. Chunks and new
 * logs are written to `<store>/tmp`, fsynced, renamed or linked into place,
 * and their directory is fsynced, so nothing is referenced before it is
 * durable. The layout is described in `docs/format.md`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { constants, type Dirent } from "node:fs";
import * as fs from "node:fs/promises";
import { join } from "node:path";
import {
  assertChunkHash,
  type ChunkStat,
  type ChunkStore,
  CorruptChunkError,
  MissingChunkError,
  type PutResult,
} from "./chunk_store.ts";
import { blake3Hex, blake3HexYielding } from "./hash.ts";
import {
  acquireLock,
  breakLock,
  type JobLock,
  readLock,
  trackLock,
} from "./lock.ts";
import {
  isUnbornLog,
  type LogFile,
  logPrefix,
  type LogRepair,
  newLogBytes,
  openFramedLog,
  repairReport,
} from "./manifest_log.ts";
import { assertName, type Store } from "./store.ts";
import {
  assertRealDir,
  ensureDir,
  explainFsError,
  isErrno,
  lstatNow,
  makeDirs,
  O_NOFOLLOW,
  publishFile,
  syncDir,
  syncHandle,
  tempPath,
  writeDurable,
  writeNewFile,
} from "./files.ts";

/** Contents of `<store>/config`. */
export interface StoreConfig {
  /** Always `cairn-store`. */
  format: "cairn-store";
  /** The format version. */
  version: 1;
  /** How chunks are named. */
  hash: "blake3-256";
  /** How values are encoded in chunks. */
  encoding: "cbor";
}

const CONFIG: StoreConfig = {
  format: "cairn-store",
  version: 1,
  hash: "blake3-256",
  encoding: "cbor",
};
const SUBDIRS = ["chunks", "jobs", "locks", "tmp"];
/** Chunks at least this large are hashed while their temp file is written. */
const OVERLAP_BYTES = 1 << 20;
/** Suffix of a chunk GC moved aside and has not yet deleted or restored. */
const TRASH_SUFFIX = ".gc-trash";

/** Write bytes to a new temp file in `tmpDir` and fsync it; returns its path. */
async function writeTemp(
  tmpDir: string,
  bytes: Uint8Array,
  mode: number,
): Promise<string> {
  const path = tempPath(tmpDir);
  await writeNewFile(path, bytes, { mode });
  return path;
}

/** Open a file for reading without following a link; refuse anything but a regular file. */
async function openRegular(path: string): Promise<fs.FileHandle> {
  const handle = await fs.open(path, constants.O_RDONLY | O_NOFOLLOW);
  const stat = await handle.stat();
  if (!stat.isFile()) {
    await handle.close();
    throw Object.assign(
      new Error(
        `Cannot read "${path}": it is not a regular file; move it out of the store`,
      ),
      { code: "EISDIR" },
    );
  }
  return handle;
}

async function readRegular(path: string): Promise<Uint8Array> {
  const handle = await openRegular(path);
  try {
    return new Uint8Array(await handle.readFile());
  } finally {
    await handle.close();
  }
}

/** Whether the file at `path` holds exactly `bytes` (false when it is gone). */
async function holds(path: string, bytes: Uint8Array): Promise<boolean> {
  try {
    return Buffer.compare(await readRegular(path), bytes) === 0;
  } catch (error) {
    if (isErrno(error, "ENOENT")) return false;
    throw explainFsError(error, "Cannot read chunk", path);
  }
}

function fsChunks(root: string): ChunkStore {
  const chunkDir = join(root, "chunks");
  const tmpDir = join(root, "tmp");
  const pathOf = (hash: string) => join(chunkDir, hash.slice(0, 2), hash);
  // Prefix directories are never removed, so each is checked once per
  // process, and made durable once before a chunk goes in.
  const prefixDirs = new Set<string>();
  const durableDirs = new Set<string>();
  /** The prefix dir of a chunk, refusing a link; false when it does not exist. */
  const prefixOf = async (hash: string, create: boolean) => {
    const dir = join(chunkDir, assertChunkHash(hash).slice(0, 2));
    if ((create ? durableDirs : prefixDirs).has(dir)) return true;
    try {
      if (create) {
        // Made here, its name is synced already; made by another put or
        // process, it may not be yet, and a chunk in it must not outlive it.
        if (!(await ensureDir(dir))) await syncDir(chunkDir);
      } else await assertRealDir(dir);
    } catch (error) {
      if (!create && isErrno(error, "ENOENT")) return false;
      throw explainFsError(error, "Cannot use chunk directory", dir);
    }
    prefixDirs.add(dir);
    if (create) durableDirs.add(dir);
    return true;
  };
  // Publishes in flight, by hash: a dedup hit on one counts only once its
  // directory is synced, or a record could name a chunk a power cut loses.
  const publishing = new Map<string, Promise<void>>();
  // Another process may have renamed a chunk into place and not yet synced
  // its directory: a record naming it must not outlive its name, so a dedup
  // hit syncs the name (cheap when nothing is pending).
  const syncPublished = async (hash: string) => {
    const dir = join(chunkDir, hash.slice(0, 2));
    try {
      await prefixOf(hash, true);
      await syncDir(dir);
    } catch (error) {
      throw explainFsError(error, "Cannot sync chunk directory", dir);
    }
    return true;
  };
  const statOf = async (hash: string) => {
    if (!(await prefixOf(hash, false))) return undefined;
    const path = pathOf(hash);
    const stat = lstatNow(path);
    if (stat === undefined) return undefined;
    if (!stat.isFile()) {
      throw Object.assign(
        new Error(
          `Cannot use chunk "${path}": it is not a regular file (a link or a device); cairn never follows links in a store, so move it away`,
        ),
        { code: "ELOOP" },
      );
    }
    return stat;
  };
  return {
    async put(bytes): Promise<PutResult> {
      // Large chunks are written to a temp file while they hash (the two overlap);
      // small ones hash first so a dedup hit writes nothing.
      const early = bytes.length >= OVERLAP_BYTES
        ? writeTemp(tmpDir, bytes, 0o444)
        : undefined;
      early?.catch(() => {});
      const hash = early
        ? await blake3HexYielding(bytes)
        : await blake3Hex(bytes);
      const path = pathOf(hash);
      const existing = await statOf(hash);
      // A dedup hit must hold these very bytes: a damaged copy of the same
      // size would otherwise be kept, and every run producing this output
      // would reference bad data. It is replaced below.
      if (
        existing !== undefined && existing.size === bytes.length &&
        await holds(path, bytes)
      ) {
        // A dedup hit counts only once its refresh of the age lands: GC moves
        // a chunk aside before deleting it and keeps it if it was refreshed,
        // so either GC sees the new age or the refresh fails and we write.
        const now = new Date();
        const refreshed = await fs.utimes(path, now, now).then(
          () => true,
          (error) => {
            if (isErrno(error, "ENOENT")) return false;
            throw explainFsError(error, "Cannot refresh chunk", path);
          },
        );
        const inFlight = publishing.get(hash);
        const durable = refreshed &&
          (inFlight === undefined
            ? await syncPublished(hash)
            : await inFlight.then(() => true, () => false));
        if (durable) {
          if (early) await fs.rm(await early, { force: true });
          return { hash, size: bytes.length, stored: false };
        }
      }
      const dir = join(chunkDir, hash.slice(0, 2));
      try {
        await prefixOf(hash, true);
        const temp = await (early ?? writeTemp(tmpDir, bytes, 0o444));
        // Rename replaces a damaged copy of the same chunk, if there was one.
        const published = fs.rename(temp, path).then(() => syncDir(dir));
        publishing.set(hash, published);
        try {
          await published;
        } finally {
          if (publishing.get(hash) === published) publishing.delete(hash);
        }
      } catch (error) {
        if (early) await fs.rm(await early.catch(() => ""), { force: true });
        throw explainFsError(error, "Cannot write chunk", path);
      }
      return { hash, size: bytes.length, stored: true };
    },
    async get(hash) {
      let bytes: Uint8Array;
      try {
        if (!(await prefixOf(hash, false))) {
          throw new MissingChunkError(hash, root);
        }
        bytes = await readRegular(pathOf(hash));
      } catch (error) {
        if (isErrno(error, "ENOENT")) throw new MissingChunkError(hash, root);
        throw explainFsError(error, "Cannot read chunk", pathOf(hash));
      }
      const actual = await blake3Hex(bytes);
      if (actual !== hash) {
        throw new CorruptChunkError(hash, actual, pathOf(hash));
      }
      return bytes;
    },
    async has(hash) {
      return (await statOf(hash)) !== undefined;
    },
    async stat(hash): Promise<ChunkStat | undefined> {
      const s = await statOf(hash);
      return s && { hash, size: s.size, mtimeMs: s.mtimeMs };
    },
    async *list() {
      const prefixes = await fs.readdir(chunkDir, { withFileTypes: true });
      prefixes.sort((a, b) => a.name < b.name ? -1 : 1);
      for (const prefix of prefixes) {
        // Never descend into a link: it may point out of the store.
        if (!prefix.isDirectory() || !/^[0-9a-f]{2}$/.test(prefix.name)) {
          continue;
        }
        const entries = await fs.readdir(join(chunkDir, prefix.name), {
          withFileTypes: true,
        }).catch((error) => {
          if (isErrno(error, "ENOENT")) return [] as Dirent[];
          throw error;
        });
        for (const entry of entries) {
          const name = entry.name;
          if (
            entry.isFile() && /^[0-9a-f]{64}$/.test(name) &&
            name.startsWith(prefix.name)
          ) {
            yield name;
          }
        }
      }
    },
    async delete(hash, options = {}) {
      if (!(await prefixOf(hash, false))) return false;
      const dir = join(chunkDir, hash.slice(0, 2));
      const path = pathOf(hash);
      const { notTouchedSince } = options;
      if (notTouchedSince === undefined) {
        try {
          await fs.unlink(path);
        } catch (error) {
          if (isErrno(error, "ENOENT")) return false;
          throw error;
        }
        await syncDir(dir);
        return true;
      }
      // Move aside, then judge the age of what was moved: a dedup hit either
      // refreshed it before the move (it goes back) or failed after it.
      const aside = join(
        tmpDir,
        `${hash}.${process.pid}-${crypto.randomUUID()}${TRASH_SUFFIX}`,
      );
      try {
        await fs.rename(path, aside);
      } catch (error) {
        if (isErrno(error, "ENOENT")) return false;
        throw error;
      }
      const moved = await fs.lstat(aside);
      if (moved.mtimeMs >= notTouchedSince) {
        await restoreTrash(root, aside, hash);
        return false;
      }
      await fs.unlink(aside);
      await syncDir(dir);
      return true;
    },
  };
}

/** Put a chunk GC moved aside back in place (a newer copy there wins). */
async function restoreTrash(
  root: string,
  aside: string,
  hash: string,
): Promise<void> {
  const path = join(root, "chunks", hash.slice(0, 2), hash);
  try {
    await fs.link(aside, path);
    await syncDir(join(root, "chunks", hash.slice(0, 2)));
  } catch (error) {
    if (!isErrno(error, "EEXIST")) throw error;
  }
  await fs.rm(aside, { force: true });
}

async function readLogFile(path: string): Promise<Uint8Array> {
  try {
    return await readRegular(path);
  } catch (error) {
    if (isErrno(error, "ENOENT")) {
      throw new Error(`Cannot read manifest log "${path}": it does not exist`);
    }
    throw explainFsError(error, "Cannot read manifest log", path);
  }
}

/**
 * A log file; a writer gets the handle of the inode it published, so a
 * writer that opens the log later (and publishes a fresh inode) never shares
 * a file with it.
 */
function fsLogFile(path: string, handle?: fs.FileHandle): LogFile {
  // The inode is this writer's alone, so its size is known after one stat;
  // forgotten after any failure, so the next append asks the file again.
  let known: number | undefined;
  return {
    name: path,
    read: () => readLogFile(path),
    async append(bytes) {
      const h = handle;
      if (h === undefined) {
        throw new Error(
          `Cannot append to manifest log "${path}": it was opened read-only`,
        );
      }
      const size = known ?? (await h.stat()).size;
      known = undefined;
      await writeDurable(h, path, bytes, size).catch((error) => {
        throw explainFsError(error, "Cannot append to manifest log", path);
      });
      known = size + bytes.length;
    },
    async truncate(size) {
      if (handle === undefined) {
        throw new Error(
          `Cannot truncate manifest log "${path}": it was opened read-only`,
        );
      }
      known = undefined;
      await handle.truncate(size);
      await syncHandle(handle, path);
      known = size;
    },
    async close() {
      await handle?.close();
      handle = undefined;
    },
  };
}

async function readConfig(root: string): Promise<StoreConfig | undefined> {
  let text: string;
  try {
    text = await fs.readFile(join(root, "config"), "utf8");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return undefined;
    throw error;
  }
  let config: Partial<StoreConfig> | null;
  try {
    config = JSON.parse(text);
  } catch {
    throw new SyntaxError(
      `Cannot open store "${root}": its config file is not valid JSON`,
    );
  }
  if (
    typeof config !== "object" || config === null ||
    config.format !== "cairn-store" || config.version !== 1 ||
    config.hash !== "blake3-256"
  ) {
    throw new SyntaxError(
      `Cannot open store "${root}": expected a cairn-store version 1 config with blake3-256, found ${text.trim()}`,
    );
  }
  return config as StoreConfig;
}

/** Options for {@linkcode openFsStore}. */
export interface OpenFsStoreOptions {
  /** Create the store when the directory is missing or empty. Default: true. */
  create?: boolean;
}

/**
 * Open (and by default create) a store in a directory.
 *
 * @param root The store directory, e.g. `./.cairn`.
 * @param options Whether to create it.
 * @returns The store.
 *
 * @example Open a store in a temp dir
 * ```ts
 * import assert from "node:assert/strict";
 * import { openFsStore } from "./fs.ts";
 * import { mkdtemp } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * const store = await openFsStore(join(await mkdtemp(join(tmpdir(), "cairn-")), "store"));
 * const ref = await store.chunks.put(new Uint8Array([1, 2, 3]));
 * assert.ok(await store.chunks.has(ref.hash));
 * ```
 */
export async function openFsStore(
  root: string,
  options: OpenFsStoreOptions = {},
): Promise<Store> {
  let config = await readConfig(root);
  if (config === undefined) {
    let entries: string[] = [];
    try {
      entries = await fs.readdir(root);
    } catch (error) {
      if (!isErrno(error, "ENOENT")) throw error;
      if (options.create === false) {
        throw new Error(`Cannot open store "${root}": it does not exist`);
      }
    }
    // Another process may be creating the store right now: its subdirs and
    // config are expected; anything else means this is not an empty directory.
    if (entries.some((e) => !SUBDIRS.includes(e) && e !== "config")) {
      throw new Error(
        `Cannot open store "${root}": the directory is not empty and has no cairn config; pick an empty or new directory`,
      );
    }
    if (options.create === false) {
      throw new Error(`Cannot open store "${root}": it is not a cairn store`);
    }
    try {
      await makeDirs(root);
      for (const sub of SUBDIRS) await ensureDir(join(root, sub));
      const temp = await writeTemp(
        join(root, "tmp"),
        new TextEncoder().encode(JSON.stringify(CONFIG, null, 2) + "\n"),
        0o444,
      );
      // Exclusive: when another process created it first, theirs stands.
      await publishFile(temp, join(root, "config"), true);
    } catch (error) {
      throw explainFsError(error, "Cannot create store", root);
    }
    config = await readConfig(root);
  }
  try {
    for (const sub of SUBDIRS) await ensureDir(join(root, sub));
  } catch (error) {
    throw explainFsError(error, "Cannot open store", root);
  }
  return fsStore(root);
}

/** Whether a log file lacks a complete first record (a crash while creating it). */
async function isUnborn(path: string): Promise<boolean> {
  let handle;
  try {
    handle = await openRegular(path);
  } catch (error) {
    if (isErrno(error, "ENOENT")) return false;
    return false; // not ours to judge: readers report it
  }
  try {
    const head = new Uint8Array(48);
    const { bytesRead } = await handle.read(head, 0, 48, 0);
    return isUnbornLog(head.subarray(0, bytesRead), (await handle.stat()).size);
  } finally {
    await handle.close();
  }
}

function fsStore(root: string): Store {
  const jobsDir = join(root, "jobs");
  const locksDir = join(root, "locks");
  const tmpDir = join(root, "tmp");
  const held = new Map<string, JobLock>();
  const jobDir = (job: string) => join(jobsDir, assertName("job", job));
  /** Refuse a job directory that is a link; a missing one is the caller's to report. */
  const checkJobDir = (job: string) =>
    assertRealDir(jobDir(job)).catch((error) => {
      if (!isErrno(error, "ENOENT")) throw error;
    });
  const logPath = (job: string, run: string) =>
    join(jobDir(job), `${assertName("run", run)}.log`);
  const listDir = async (dir: string): Promise<Dirent[]> => {
    try {
      await assertRealDir(dir);
      return await fs.readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isErrno(error, "ENOENT")) return [];
      throw error;
    }
  };
  /** The job's run logs, and which of them are unborn. */
  const scanRuns = async (job: string) => {
    const runs: string[] = [];
    const unborn: string[] = [];
    for (const entry of await listDir(jobDir(job))) {
      if (!entry.name.endsWith(".log")) continue;
      const run = entry.name.slice(0, -4);
      // A non-file named like a log is listed, so readers report it.
      if (entry.isFile() && await isUnborn(join(jobDir(job), entry.name))) {
        unborn.push(run);
      } else runs.push(run);
    }
    return { runs: runs.sort(), unborn };
  };
  /** Keep a file's bytes aside as `<run>.log.<kind>-<ms>` (never deleted by cairn). */
  const setAside = async (job: string, run: string, kind: string) => {
    const path = logPath(job, run);
    const aside = `${path}.${kind}-${Date.now()}`;
    await fs.rename(path, aside);
    await syncDir(jobDir(job));
    return aside;
  };
  const fence = (job: string) => {
    const lock = held.get(job);
    return lock && (() => lock.assertHeld());
  };
  /** Write `bytes` to a new inode, publish it at `path`, and keep its handle for appends. */
  const publishLog = async (
    path: string,
    bytes: Uint8Array,
    exclusive: boolean,
  ) => {
    const temp = tempPath(tmpDir);
    const handle = await fs.open(
      temp,
      constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | O_NOFOLLOW,
      0o644,
    );
    try {
      await handle.writeFile(bytes);
      await syncHandle(handle, temp);
      if (!(await publishFile(temp, path, exclusive))) {
        await handle.close();
        return undefined;
      }
    } catch (error) {
      await handle.close();
      await fs.rm(temp, { force: true });
      throw explainFsError(error, "Cannot write manifest log", path);
    }
    return handle;
  };
  return {
    location: root,
    chunks: fsChunks(root),
    async createLog(job, run, first) {
      const path = logPath(job, run);
      const bytes = newLogBytes(first);
      try {
        await ensureDir(jobDir(job));
      } catch (error) {
        throw explainFsError(error, "Cannot create job directory", jobDir(job));
      }
      for (const old of (await scanRuns(job)).unborn) {
        await setAside(job, old, "unborn");
      }
      const handle = await publishLog(path, bytes, true);
      if (handle === undefined) {
        throw new Error(
          `Cannot create run "${run}" of job "${job}": "${path}" exists`,
        );
      }
      // A failed open must not leave the handle to the garbage collector.
      return await openFramedLog(fsLogFile(path, handle), {
        write: true,
        bytes,
        ...fenceOption(fence(job)),
      }).catch(async (error) => {
        await handle.close();
        throw error;
      });
    },
    async openLog(job, run) {
      const path = logPath(job, run);
      await checkJobDir(job);
      await fence(job)?.();
      const bytes = await readLogFile(path);
      // Republish as a fresh inode: an earlier writer of this log keeps
      // appending (if at all) to the old one, which nobody reads.
      const handle = await publishLog(path, bytes, false);
      return await openFramedLog(fsLogFile(path, handle), {
        write: true,
        bytes,
        ...fenceOption(fence(job)),
      }).catch(async (error) => {
        await handle?.close();
        throw error;
      });
    },
    async readLog(job, run) {
      await checkJobDir(job);
      return await openFramedLog(fsLogFile(logPath(job, run)));
    },
    async listJobs() {
      const jobs: string[] = [];
      for (const entry of await listDir(jobsDir)) {
        if (
          entry.isDirectory() &&
          (await fs.readdir(join(jobsDir, entry.name))).some((e) =>
            e.endsWith(".log")
          )
        ) {
          jobs.push(entry.name);
        }
      }
      return jobs.sort();
    },
    async listRuns(job) {
      return (await scanRuns(job)).runs;
    },
    async deleteRun(job, run) {
      await checkJobDir(job);
      await fs.rm(logPath(job, run), { force: true });
      await syncDir(jobDir(job)).catch(() => {});
    },
    async repairLog(job, run): Promise<LogRepair> {
      const path = logPath(job, run);
      await checkJobDir(job);
      const bytes = await readLogFile(path);
      const prefix = logPrefix(bytes);
      if (prefix.reason === undefined) return repairReport(bytes, prefix);
      if (prefix.records === 0) {
        return repairReport(
          bytes,
          prefix,
          await setAside(job, run, "unborn"),
        );
      }
      const aside = `${path}.cut-${Date.now()}`;
      await writeNewFile(aside, bytes.subarray(prefix.end), { mode: 0o444 });
      await syncDir(jobDir(job));
      const handle = await publishLog(
        path,
        bytes.subarray(0, prefix.end),
        false,
      );
      await handle?.close();
      return repairReport(bytes, prefix, aside);
    },
    async lock(job, options) {
      const lock = await acquireLock(locksDir, job, options);
      // Logs this store opens for the job are fenced by this lock until it is released.
      return trackLock(held, job, lock);
    },
    readLock: (job) => readLock(locksDir, job),
    async listLocks() {
      const locks = [];
      for (const entry of await listDir(locksDir)) {
        if (!entry.isFile() || !entry.name.endsWith(".lock")) continue;
        const job = entry.name.slice(0, -5);
        const info = await readLock(locksDir, job).catch(() => undefined);
        if (info !== undefined) locks.push(info);
      }
      return locks;
    },
    breakLock: (job, options) => breakLock(locksDir, job, options),
    sweepTemp: (olderThanMs) => sweepTemp(root, olderThanMs),
    listForeignEntries: () => foreignEntries(root),
  };
}

/** Describe what a non-regular entry is, for verify. */
function kindOf(entry: Dirent): string {
  if (entry.isSymbolicLink()) return "a symbolic link";
  if (entry.isDirectory()) return "a directory";
  if (entry.isFile()) return "a file";
  return "a device, FIFO or socket";
}

async function foreignEntries(root: string): Promise<string[]> {
  const found: string[] = [];
  const read = (dir: string) =>
    fs.readdir(dir, { withFileTypes: true }).catch(() => [] as Dirent[]);
  for (const sub of SUBDIRS) {
    const path = join(root, sub);
    const stat = await fs.lstat(path).catch(() => undefined);
    if (stat !== undefined && !stat.isDirectory()) {
      found.push(`"${path}" should be a directory`);
    }
  }
  for (const prefix of await read(join(root, "chunks"))) {
    const path = join(root, "chunks", prefix.name);
    if (!prefix.isDirectory()) {
      found.push(`"${path}" is ${kindOf(prefix)}, not a chunk directory`);
      continue;
    }
    for (const entry of await read(path)) {
      if (!entry.isFile()) {
        found.push(
          `"${join(path, entry.name)}" is ${kindOf(entry)}, not a chunk file`,
        );
      }
    }
  }
  for (const job of await read(join(root, "jobs"))) {
    const path = join(root, "jobs", job.name);
    if (!job.isDirectory()) {
      found.push(`"${path}" is ${kindOf(job)}, not a job directory`);
      continue;
    }
    for (const entry of await read(path)) {
      if (!entry.isFile()) {
        found.push(
          `"${join(path, entry.name)}" is ${kindOf(entry)}, not a run log`,
        );
      }
    }
  }
  for (const entry of await read(join(root, "locks"))) {
    if (!entry.isFile()) {
      found.push(
        `"${join(root, "locks", entry.name)}" is ${
          kindOf(entry)
        }, not a lock file`,
      );
    }
  }
  return found;
}

function fenceOption(fence: (() => Promise<void>) | undefined) {
  return fence === undefined ? {} : { fence };
}

/**
 * Remove temp files older than `olderThanMs` left by killed writers.
 *
 * @param root The store directory.
 * @param olderThanMs Minimum age to remove.
 * @returns How many files were removed.
 *
 * @example Clean a fresh store
 * ```ts
 * import assert from "node:assert/strict";
 * import { openFsStore, sweepTemp } from "./fs.ts";
 * import { mkdtemp } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * const dir = join(await mkdtemp(join(tmpdir(), "cairn-")), "store");
 * await openFsStore(dir);
 * assert.ok(await sweepTemp(dir, 0) === 0);
 * ```
 */
export async function sweepTemp(
  root: string,
  olderThanMs: number,
): Promise<number> {
  const tmpDir = join(root, "tmp");
  let removed = 0;
  for (const name of await fs.readdir(tmpDir).catch(() => [] as string[])) {
    const path = join(tmpDir, name);
    if (name.endsWith(TRASH_SUFFIX)) {
      // A GC killed between moving a chunk aside and deciding: put it back
      // (at worst a garbage chunk lives until the next GC).
      await restoreTrash(root, path, name.slice(0, 64));
      continue;
    }
    const s = await fs.stat(path).catch(() => undefined);
    if (s !== undefined && Date.now() - s.mtimeMs >= olderThanMs) {
      await fs.rm(path, { force: true });
      removed++;
    }
  }
  return removed;
}
