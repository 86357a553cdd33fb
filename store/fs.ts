/**
 * The filesystem backend: restic's discipline for every write. Chunks and new
 * logs are written to `<store>/tmp`, fsynced, renamed or linked into place,
 * and their directory is fsynced, so nothing is referenced before it is
 * durable. The layout is described in `docs/format.md`.
 *
 * @module
 */
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
import { acquireLock, breakLock, readLock } from "./lock.ts";
import { type LogFile, logHeader, openFramedLog } from "./manifest_log.ts";
import { assertName, type Store } from "./store.ts";

/** Contents of `<store>/config`. */
export interface StoreConfig {
  format: "cairn-store";
  version: 1;
  hash: "blake3-256";
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

function isErrno(error: unknown, code: string): boolean {
  return (error as { code?: unknown } | null)?.code === code;
}

/** fsync a directory so a rename or unlink in it is durable. */
async function syncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function tempName(dir: string): string {
  return join(dir, `${process.pid}-${crypto.randomUUID()}.tmp`);
}

/** Write bytes to a new temp file in `tmpDir` and fsync it; returns its path. */
async function writeTemp(
  tmpDir: string,
  bytes: Uint8Array,
  mode: number,
): Promise<string> {
  const path = tempName(tmpDir);
  const handle = await fs.open(path, "wx", mode);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(path, { force: true });
    throw error;
  }
  await handle.close();
  return path;
}

/**
 * Make a directory (and parents) and fsync its parent when it was created.
 */
async function ensureDir(dir: string, parent: string): Promise<void> {
  try {
    await fs.mkdir(dir);
    await syncDir(parent);
  } catch (error) {
    if (!isErrno(error, "EEXIST")) throw error;
  }
}

function fsChunks(root: string): ChunkStore {
  const chunkDir = join(root, "chunks");
  const tmpDir = join(root, "tmp");
  const pathOf = (hash: string) => join(chunkDir, hash.slice(0, 2), hash);
  const prefixDirs = new Set<string>();
  const statOf = async (hash: string) => {
    try {
      return await fs.stat(pathOf(assertChunkHash(hash)));
    } catch (error) {
      if (isErrno(error, "ENOENT")) return undefined;
      throw error;
    }
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
      if (existing !== undefined && existing.size === bytes.length) {
        if (early) await fs.rm(await early, { force: true });
        // A dedup hit refreshes the age so a concurrent GC's grace period covers it.
        const now = new Date();
        await fs.utimes(path, now, now).catch(() => {});
        return { hash, size: bytes.length, stored: false };
      }
      const dir = join(chunkDir, hash.slice(0, 2));
      // Prefix directories are never removed, so each is made (and fsynced) once per process.
      if (!prefixDirs.has(dir)) {
        await ensureDir(dir, chunkDir);
        prefixDirs.add(dir);
      }
      const temp = await (early ?? writeTemp(tmpDir, bytes, 0o444));
      // Rename replaces a damaged copy of the same chunk, if there was one.
      await fs.rename(temp, path);
      await syncDir(dir);
      return { hash, size: bytes.length, stored: true };
    },
    async get(hash) {
      let bytes: Uint8Array;
      try {
        bytes = new Uint8Array(
          await fs.readFile(pathOf(assertChunkHash(hash))),
        );
      } catch (error) {
        if (isErrno(error, "ENOENT")) throw new MissingChunkError(hash, root);
        throw error;
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
      for (const prefix of (await fs.readdir(chunkDir)).sort()) {
        if (!/^[0-9a-f]{2}$/.test(prefix)) continue;
        for (const name of await fs.readdir(join(chunkDir, prefix))) {
          if (/^[0-9a-f]{64}$/.test(name) && name.startsWith(prefix)) {
            yield name;
          }
        }
      }
    },
    async delete(hash) {
      const dir = join(chunkDir, hash.slice(0, 2));
      try {
        await fs.unlink(pathOf(assertChunkHash(hash)));
      } catch (error) {
        if (isErrno(error, "ENOENT")) return false;
        throw error;
      }
      await syncDir(dir);
      return true;
    },
  };
}

function fsLogFile(path: string, writable: boolean): LogFile {
  let handle: fs.FileHandle | undefined;
  const open = async () => handle ??= await fs.open(path, "r+");
  return {
    name: path,
    async read() {
      try {
        return new Uint8Array(await fs.readFile(path));
      } catch (error) {
        if (isErrno(error, "ENOENT")) {
          throw new Error(
            `Cannot read manifest log "${path}": it does not exist`,
          );
        }
        throw error;
      }
    },
    async append(bytes) {
      if (!writable) {
        throw new Error(
          `Cannot append to manifest log "${path}": it was opened read-only`,
        );
      }
      const h = await open();
      const { size } = await h.stat();
      let written = 0;
      while (written < bytes.length) {
        written += (await h.write(
          bytes,
          written,
          bytes.length - written,
          size + written,
        )).bytesWritten;
      }
      await h.datasync();
    },
    async truncate(size) {
      const h = await open();
      await h.truncate(size);
      await h.sync();
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
  let config: Partial<StoreConfig>;
  try {
    config = JSON.parse(text);
  } catch {
    throw new SyntaxError(
      `Cannot open store "${root}": its config file is not valid JSON`,
    );
  }
  if (
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
    if (entries.some((e) => !SUBDIRS.includes(e))) {
      throw new Error(
        `Cannot open store "${root}": the directory is not empty and has no cairn config; pick an empty or new directory`,
      );
    }
    if (options.create === false) {
      throw new Error(`Cannot open store "${root}": it is not a cairn store`);
    }
    await fs.mkdir(root, { recursive: true });
    for (const sub of SUBDIRS) await ensureDir(join(root, sub), root);
    const temp = await writeTemp(
      join(root, "tmp"),
      new TextEncoder().encode(JSON.stringify(CONFIG, null, 2) + "\n"),
      0o444,
    );
    try {
      await fs.link(temp, join(root, "config"));
    } catch (error) {
      if (!isErrno(error, "EEXIST")) throw error; // another process created it first
    }
    await fs.rm(temp, { force: true });
    await syncDir(root);
    config = await readConfig(root);
  }
  for (const sub of SUBDIRS) await ensureDir(join(root, sub), root);
  return fsStore(root);
}

function fsStore(root: string): Store {
  const jobsDir = join(root, "jobs");
  const locksDir = join(root, "locks");
  const logPath = (job: string, run: string) =>
    join(jobsDir, assertName("job", job), `${assertName("run", run)}.log`);
  const listDir = async (dir: string): Promise<Dirent[]> => {
    try {
      return await fs.readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isErrno(error, "ENOENT")) return [];
      throw error;
    }
  };
  return {
    location: root,
    chunks: fsChunks(root),
    async createLog(job, run) {
      const path = logPath(job, run);
      await ensureDir(join(jobsDir, job), jobsDir);
      const temp = await writeTemp(join(root, "tmp"), logHeader(), 0o644);
      try {
        await fs.link(temp, path);
      } catch (error) {
        if (isErrno(error, "EEXIST")) {
          throw new Error(
            `Cannot create run "${run}" of job "${job}": "${path}" exists`,
          );
        }
        throw error;
      } finally {
        await fs.rm(temp, { force: true });
      }
      await syncDir(join(jobsDir, job));
      return await openFramedLog(fsLogFile(path, true), { write: true });
    },
    async openLog(job, run) {
      return await openFramedLog(fsLogFile(logPath(job, run), true), {
        write: true,
      });
    },
    async readLog(job, run) {
      return await openFramedLog(fsLogFile(logPath(job, run), false));
    },
    async listJobs() {
      const jobs: string[] = [];
      for (const entry of await listDir(jobsDir)) {
        if (
          entry.isDirectory() &&
          (await listDir(join(jobsDir, entry.name))).some((e) =>
            e.name.endsWith(".log")
          )
        ) {
          jobs.push(entry.name);
        }
      }
      return jobs.sort();
    },
    async listRuns(job) {
      return (await listDir(join(jobsDir, assertName("job", job))))
        .filter((e) => e.isFile() && e.name.endsWith(".log"))
        .map((e) => e.name.slice(0, -4))
        .sort();
    },
    async deleteRun(job, run) {
      await fs.rm(logPath(job, run), { force: true });
      await syncDir(join(jobsDir, job)).catch(() => {});
    },
    lock: (job, options) => acquireLock(locksDir, job, options),
    readLock: (job) => readLock(locksDir, job),
    breakLock: (job) => breakLock(locksDir, job),
    sweepTemp: (olderThanMs) => sweepTemp(root, olderThanMs),
  };
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
    const s = await fs.stat(path).catch(() => undefined);
    if (s !== undefined && Date.now() - s.mtimeMs >= olderThanMs) {
      await fs.rm(path, { force: true });
      removed++;
    }
  }
  return removed;
}
