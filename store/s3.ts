/**
 * The S3 backend: a store in an S3-compatible bucket (AWS S3, Ceph RGW,
 * MinIO, R2) that relies on conditional writes. Chunks are created with
 * `If-None-Match: *` (a 412 is a dedup hit); a manifest log is a sequence of
 * segment objects at sequential keys, each created with `If-None-Match: *`,
 * so two writers can never both write segment N; locks are lease objects
 * changed only by compare-and-swap (`If-Match`). The layout is described in
 * `docs/format.md`, "The S3 layout".
 *
 * @module
 */
import {
  createS3Client,
  type CreateS3ClientOptions,
  parseS3Url,
  probeConditionalWrites,
  type S3Client,
} from "./_s3_client.ts";
import { s3Leases } from "./_s3_lease.ts";
import {
  assertChunkHash,
  type ChunkStat,
  type ChunkStore,
  CorruptChunkError,
  MissingChunkError,
  type PutResult,
} from "./chunk_store.ts";
import { blake3Hex } from "./hash.ts";
import { type JobLock, LockLostError, trackLock } from "./lock.ts";
import {
  isUnbornLog,
  LOG_HEADER_SIZE,
  type LogFile,
  logPrefix,
  type LogRepair,
  type ManifestLog,
  newLogBytes,
  openFramedLog,
  repairReport,
} from "./manifest_log.ts";
import { assertName, type Store } from "./store.ts";

/** Options for {@linkcode openS3Store}. */
export interface OpenS3StoreOptions {
  /** Where to read `AWS_*` variables. Default: `process.env`. */
  env?: Record<string, string | undefined>;
  /** Retry policy and `fetch` of the S3 client. Default: 6 attempts from 50 ms. */
  client?: CreateS3ClientOptions;
  /** Create the store's config when the prefix holds none. Default: true. */
  create?: boolean;
}

const CONFIG = {
  format: "cairn-store",
  version: 1,
  hash: "blake3-256",
  encoding: "cbor",
};
/** Metadata holding a chunk's last write or dedup hit (ms, the writer's clock). */
const TOUCHED = "cairn-touched";
/** A chunk GC is judging has a marker `gc/<hash>`; one older than this was left by a killed GC. */
const MARKER_ABANDONED_MS = 30_000;
/** Largest chunk read when the caller gives no size: a chunk is at most 64 MiB. */
const MAX_CHUNK_READ = 256 * 1024 * 1024;
/** Chunks at least this large are looked up (HEAD) before they are uploaded. */
const HEAD_FIRST_BYTES = 1024 * 1024;
/** Segment keys: 12 decimal digits, so they sort in order. */
const SEGMENT_DIGITS = 12;
/** Requests in flight when reading a log's segments or listing runs. */
const PARALLEL = 16;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function mapLimited<T, R>(
  items: readonly T[],
  fn: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(
    Array.from({ length: Math.min(PARALLEL, items.length) }, worker),
  );
  return out;
}

function touchedOf(
  object: { lastModified: number; metadata?: Record<string, string> },
): number {
  const meta = Number(object.metadata?.[TOUCHED]);
  return Number.isFinite(meta) && meta > 0 ? meta : object.lastModified;
}

function s3Chunks(client: S3Client, prefix: string): ChunkStore {
  const chunkKey = (hash: string) =>
    `${prefix}chunks/${assertChunkHash(hash).slice(0, 2)}/${hash}`;
  const markerKey = (hash: string) => `${prefix}gc/${hash}`;
  const where = client.url;
  const touch = () => ({ [TOUCHED]: String(Date.now()) });

  /** Wait while a GC judges this chunk; false when its marker was abandoned and removed. */
  async function waitForGc(hash: string): Promise<boolean> {
    for (;;) {
      const marker = await client.head(markerKey(hash));
      if (marker === undefined) return true;
      if (Date.now() - touchedOf(marker) > MARKER_ABANDONED_MS) {
        await client.delete(markerKey(hash));
        return false;
      }
      await sleep(20);
    }
  }

  return {
    async put(bytes): Promise<PutResult> {
      const hash = await blake3Hex(bytes);
      const key = chunkKey(hash);
      // A large chunk that exists is not uploaded just to be refused.
      let probe = bytes.length >= HEAD_FIRST_BYTES;
      for (;;) {
        if (!probe || (await client.head(key)) === undefined) {
          const created = await client.put(key, bytes, {
            ifAbsent: true,
            metadata: touch(),
          });
          if (created.written) {
            return { hash, size: bytes.length, stored: true };
          }
        }
        probe = false;
        // A dedup hit counts only once (1) its refresh landed, (2) no GC
        // marker is seen after it, and (3) the chunk is still there after
        // that. A GC puts its marker before it reads the chunk's time and
        // removes it after deleting: a GC that marked after (2) reads our
        // refresh and keeps the chunk; one that marked before (2) and was
        // gone by then had deleted before (3), which sees it.
        if (!(await client.copy(key, key, touch()))) continue; // deleted: write again
        if (await client.head(markerKey(hash)) !== undefined) {
          await waitForGc(hash);
          continue;
        }
        if (await client.head(key) !== undefined) {
          return { hash, size: bytes.length, stored: false };
        }
      }
    },
    async get(hash, options = {}) {
      // Never read more than the recorded size (plus one byte, to see a longer object).
      const { size } = options;
      const got = await client.get(chunkKey(hash), {
        maxBytes: size !== undefined && Number.isSafeInteger(size) && size >= 0
          ? Math.min(size + 1, MAX_CHUNK_READ)
          : MAX_CHUNK_READ,
      });
      if (got === undefined) throw new MissingChunkError(hash, where);
      const actual = await blake3Hex(got.body);
      if (actual !== hash) {
        throw new CorruptChunkError(
          hash,
          actual,
          `${where}${chunkKey(hash).slice(prefix.length)}`,
        );
      }
      return got.body;
    },
    async has(hash) {
      return (await client.head(chunkKey(hash))) !== undefined;
    },
    async stat(hash): Promise<ChunkStat | undefined> {
      const head = await client.head(chunkKey(hash));
      return head && { hash, size: head.size, mtimeMs: touchedOf(head) };
    },
    async *list() {
      const root = `${prefix}chunks/`;
      for await (const object of client.list(root)) {
        const name = object.key.slice(root.length);
        if (
          /^[0-9a-f]{2}\/[0-9a-f]{64}$/.test(name) &&
          name.slice(3, 5) === name.slice(0, 2)
        ) {
          yield name.slice(3);
        }
      }
    },
    async delete(hash, options = {}) {
      const key = chunkKey(hash);
      const { notTouchedSince } = options;
      if (notTouchedSince === undefined) {
        if ((await client.head(key)) === undefined) return false;
        await client.delete(key);
        return true;
      }
      // Mark, then judge, then delete: a writer's dedup hit refreshes the
      // chunk and then looks for the marker, so one of the two sees the other.
      const marked = await client.put(markerKey(hash), new Uint8Array(), {
        ifAbsent: true,
        metadata: touch(),
      });
      if (!marked.written) return false; // another GC is on it
      try {
        const head = await client.head(key);
        if (head === undefined || touchedOf(head) >= notTouchedSince) {
          return false;
        }
        await client.delete(key);
        return true;
      } finally {
        await client.delete(markerKey(hash));
      }
    },
  };
}

/** A log's segments as listed: contiguous from 0. */
interface Segment {
  index: number;
  key: string;
  size: number;
  etag: string;
}

/** Bytes of log segments already read, by key; up to this many bytes are kept. */
const SEGMENT_CACHE_BYTES = 32 * 1024 * 1024;

/**
 * Open (and by default create) a store under an `s3://bucket/prefix` URL.
 * Endpoint, region and credentials come from `AWS_ENDPOINT_URL`,
 * `AWS_REGION`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`. The
 * bucket must exist. Opening probes once that the server honours
 * `If-None-Match: *` and refuses one that does not.
 *
 * @param url The store URL (`s3://` or `s3a://`).
 * @param options Environment, client and creation options.
 * @returns The store.
 *
 * @example Credentials are checked before anything is sent
 * ```ts
 * import assert from "node:assert/strict";
 * import { openS3Store } from "./s3.ts";
 * await assert.rejects(
 *   openS3Store("s3://cairn-test/nightly", { env: {} }),
 *   /set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
 * );
 * ```
 *
 * @example Open a store on a local Ceph RGW (`eval "$(bash scripts/rgw_start.sh)"` first)
 * ```ts ignore
 * import { openS3Store } from "./s3.ts";
 * const store = await openS3Store("s3://cairn-test/nightly");
 * await store.chunks.put(new Uint8Array([1]));
 * ```
 */
export async function openS3Store(
  url: string,
  options: OpenS3StoreOptions = {},
): Promise<Store> {
  const client = createS3Client(parseS3Url(url, options.env), options.client);
  const prefix = client.location.prefix;
  await probeConditionalWrites(client);
  const configKey = `${prefix}config`;
  let config = await client.get(configKey, { maxBytes: 64 * 1024 });
  if (config === undefined) {
    if (options.create === false) {
      throw new Error(
        `Cannot open store "${client.url}": it is not a cairn store`,
      );
    }
    await client.put(
      configKey,
      new TextEncoder().encode(JSON.stringify(CONFIG, null, 2) + "\n"),
      { ifAbsent: true },
    );
    config = await client.get(configKey, { maxBytes: 64 * 1024 });
  }
  const text = new TextDecoder().decode(config?.body);
  let parsed: Record<string, unknown> | undefined;
  try {
    parsed = JSON.parse(text);
  } catch {
    // reported below
  }
  if (
    parsed?.format !== "cairn-store" || parsed.version !== 1 ||
    parsed.hash !== "blake3-256"
  ) {
    throw new SyntaxError(
      `Cannot open store "${client.url}": expected a cairn-store version 1 config with blake3-256, found ${text.trim()}`,
    );
  }
  return s3Store(client);
}

function s3Store(client: S3Client): Store {
  const prefix = client.location.prefix;
  const url = client.url.replace(/\/$/, "");
  const jobsPrefix = `${prefix}jobs/`;
  const leases = s3Leases(client, `${prefix}locks/`);
  const held = new Map<string, JobLock>();
  const logDir = (job: string, run: string) =>
    `${jobsPrefix}${assertName("job", job)}/${assertName("run", run)}.log/`;
  const segmentKey = (dir: string, index: number) =>
    `${dir}${String(index).padStart(SEGMENT_DIGITS, "0")}`;
  const logName = (job: string, run: string) => `${url}/jobs/${job}/${run}.log`;

  /** The segments of a log, contiguous from 0 (anything after a gap is not part of it). */
  async function listSegments(dir: string): Promise<Segment[]> {
    const segments: Segment[] = [];
    for await (const object of client.list(dir)) {
      const name = object.key.slice(dir.length);
      if (!/^\d+$/.test(name) || Number(name) !== segments.length) break;
      segments.push({
        index: segments.length,
        key: object.key,
        size: object.size,
        etag: object.etag,
      });
    }
    return segments;
  }

  // Segments are never rewritten except by repair (which changes the
  // ETag), so a segment read once is served from memory while its listed
  // ETag matches: a reader polling a live log fetches only new segments.
  const cache = new Map<string, { etag: string; bytes: Uint8Array }>();
  let cachedBytes = 0;
  const remember = (key: string, etag: string, bytes: Uint8Array) => {
    if (bytes.length > SEGMENT_CACHE_BYTES / 4 || etag === "") return;
    const old = cache.get(key);
    if (old !== undefined) cachedBytes -= old.bytes.length;
    cache.delete(key);
    cache.set(key, { etag, bytes });
    cachedBytes += bytes.length;
    for (const [k, v] of cache) {
      if (cachedBytes <= SEGMENT_CACHE_BYTES) break;
      cache.delete(k);
      cachedBytes -= v.bytes.length;
    }
  };

  async function readSegments(
    segments: Segment[],
  ): Promise<Uint8Array> {
    const parts = await mapLimited(segments, async (s) => {
      const hit = cache.get(s.key);
      if (hit !== undefined && hit.etag === s.etag && s.etag !== "") {
        return hit.bytes;
      }
      const got = await client.get(s.key);
      if (got === undefined) {
        throw new Error(
          `Cannot read manifest log segment "${s.key}": it vanished (was the run deleted?)`,
        );
      }
      remember(s.key, got.etag, got.body);
      return got.body;
    });
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  const fenceOf = (job: string) => {
    const lock = held.get(job);
    return lock && (() => lock.assertHeld());
  };

  /**
   * A log over segment objects. A writer creates segment `next` per group
   * commit with `If-None-Match: *`; a 412 means another writer took that
   * slot, so this one is fenced for good.
   */
  function s3LogFile(job: string, run: string, next?: number): LogFile {
    const dir = logDir(job, run);
    const name = logName(job, run);
    let segments: Segment[] = [];
    return {
      name,
      async read() {
        segments = await listSegments(dir);
        if (segments.length === 0) {
          throw new Error(
            `Cannot read manifest log "${name}": it does not exist`,
          );
        }
        return await readSegments(segments);
      },
      async append(bytes) {
        if (next === undefined) {
          throw new Error(
            `Cannot append to manifest log "${name}": it was opened read-only`,
          );
        }
        const slot = next;
        const done = await client.put(segmentKey(dir, slot), bytes, {
          ifAbsent: true,
        });
        if (!done.written) {
          next = undefined;
          const lock = held.get(job);
          if (lock !== undefined) {
            throw new LockLostError(
              job,
              lock.info.token,
              await leases.read(job).catch(() => undefined),
            );
          }
          throw new Error(
            `Cannot append to manifest log "${name}": another writer appended segment ${slot} first; reopen the job`,
          );
        }
        segments.push({
          index: slot,
          key: segmentKey(dir, slot),
          size: bytes.length,
          etag: done.etag,
        });
        remember(segmentKey(dir, slot), done.etag, bytes.slice());
        next = slot + 1;
      },
      async truncate(size) {
        // Only damage by hand leaves a torn tail on S3: keep the segments
        // before `size`, cut the one it falls in, drop the later ones.
        let start = 0;
        let keep = 0;
        for (const s of segments) {
          if (start + s.size <= size) {
            start += s.size;
            keep++;
            continue;
          }
          break;
        }
        for (const s of segments.slice(keep + 1).reverse()) {
          await client.delete(s.key);
        }
        const cut = segments[keep];
        if (cut !== undefined) {
          const got = await client.get(cut.key);
          const body = (got?.body ?? new Uint8Array()).subarray(
            0,
            size - start,
          );
          const put = await client.put(cut.key, body);
          segments = segments.slice(0, keep + 1);
          segments[keep] = {
            ...cut,
            size: body.length,
            etag: put.written ? put.etag : "",
          };
        }
        if (next !== undefined) next = segments.length;
      },
      close: () => Promise.resolve(),
    };
  }

  /** Runs of a job (folders `<run>.log/`), and which are unborn. */
  async function scanRuns(job: string) {
    const root = `${jobsPrefix}${assertName("job", job)}/`;
    const names: string[] = [];
    for await (const folder of client.listFolders(root)) {
      const m = /^([^/]+)\.log\/$/.exec(folder.slice(root.length));
      if (m) names.push(m[1]!);
    }
    const runs: string[] = [];
    const unborn: string[] = [];
    await mapLimited(names, async (run) => {
      const first = await client.head(segmentKey(logDir(job, run), 0));
      // No segment 0: a run whose deletion was cut short; not a run.
      if (first === undefined) return;
      // Segment 0 is written whole in one PUT, so more than a header means a born run.
      if (first.size > LOG_HEADER_SIZE) {
        runs.push(run);
        return;
      }
      const bytes = await readSegments(await listSegments(logDir(job, run)));
      if (isUnbornLog(bytes.subarray(0, 48), bytes.length)) unborn.push(run);
      else runs.push(run);
    });
    return { runs: runs.sort(), unborn };
  }

  /** Move a log's segments to `<run>.log.<kind>-<ms>/` (never deleted by cairn). */
  async function setAside(job: string, run: string, kind: string) {
    const dir = logDir(job, run);
    const aside = `${dir.slice(0, -1)}.${kind}-${Date.now()}/`;
    const segments = await listSegments(dir);
    for (const s of segments) {
      await client.copy(s.key, `${aside}${s.key.slice(dir.length)}`);
    }
    // Segment 0 first: a log without it is no run, wherever this stops.
    for (const s of segments) await client.delete(s.key);
    return `${url}/${aside.slice(prefix.length, -1)}`;
  }

  async function deleteSegments(dir: string): Promise<void> {
    const keys: string[] = [];
    for await (const object of client.list(dir)) keys.push(object.key);
    // Segment 0 first: a half-deleted log is no longer a run.
    for (const key of keys) await client.delete(key);
  }

  return {
    location: url,
    chunks: s3Chunks(client, prefix),
    async createLog(job, run, first): Promise<ManifestLog> {
      const dir = logDir(job, run);
      for (const old of (await scanRuns(job)).unborn) {
        await setAside(job, old, "unborn");
      }
      const bytes = newLogBytes(first);
      const created = await client.put(segmentKey(dir, 0), bytes, {
        ifAbsent: true,
      });
      if (!created.written) {
        throw new Error(
          `Cannot create run "${run}" of job "${job}": "${
            logName(job, run)
          }" exists`,
        );
      }
      const fence = fenceOf(job);
      return await openFramedLog(s3LogFile(job, run, 1), {
        write: true,
        bytes,
        ...(fence === undefined ? {} : { fence }),
      });
    },
    async openLog(job, run) {
      const fence = fenceOf(job);
      await fence?.();
      const dir = logDir(job, run);
      // Claim the next slot with an empty segment: an earlier writer of this
      // log can then never append again (its next create gets a 412).
      for (;;) {
        const segments = await listSegments(dir);
        if (segments.length === 0) {
          throw new Error(
            `Cannot read manifest log "${
              logName(job, run)
            }": it does not exist`,
          );
        }
        const claimed = await client.put(
          segmentKey(dir, segments.length),
          new Uint8Array(),
          { ifAbsent: true },
        );
        if (!claimed.written) continue;
        const file = s3LogFile(job, run, segments.length + 1);
        const bytes = await file.read();
        return await openFramedLog(file, {
          write: true,
          bytes,
          ...(fence === undefined ? {} : { fence }),
        });
      }
    },
    async readLog(job, run) {
      return await openFramedLog(s3LogFile(job, run));
    },
    async listJobs() {
      const jobs: string[] = [];
      for await (const folder of client.listFolders(jobsPrefix)) {
        const job = folder.slice(jobsPrefix.length, -1);
        try {
          assertName("job", job);
        } catch {
          continue;
        }
        for await (const run of client.listFolders(folder)) {
          if (run.endsWith(".log/")) {
            jobs.push(job);
            break;
          }
        }
      }
      return jobs.sort();
    },
    async listRuns(job) {
      return (await scanRuns(job)).runs;
    },
    async deleteRun(job, run) {
      await deleteSegments(logDir(job, run));
    },
    async repairLog(job, run): Promise<LogRepair> {
      const file = s3LogFile(job, run, 0);
      const bytes = await file.read();
      const prefixFound = logPrefix(bytes);
      if (prefixFound.reason === undefined) {
        return repairReport(bytes, prefixFound);
      }
      if (prefixFound.records === 0) {
        const aside = await setAside(job, run, "unborn");
        return repairReport(bytes, prefixFound, aside);
      }
      const asideKey = `${logDir(job, run).slice(0, -1)}.cut-${Date.now()}`;
      await client.put(asideKey, bytes.slice(prefixFound.end), {
        ifAbsent: true,
      });
      await file.truncate(prefixFound.end);
      return repairReport(
        bytes,
        prefixFound,
        `${url}/${asideKey.slice(prefix.length)}`,
      );
    },
    async lock(job, options) {
      const lock = await leases.acquire(job, options);
      return trackLock(held, job, lock);
    },
    readLock: (job) => leases.read(job),
    listLocks: () => leases.list(),
    breakLock: (job, options) => leases.breakLock(job, options),
    async sweepTemp(olderThanMs) {
      // GC markers and probe keys left by killed processes.
      let removed = 0;
      for (const dir of [`${prefix}gc/`, `${prefix}probe/`]) {
        for await (const object of client.list(dir)) {
          if (
            Date.now() - object.lastModified >=
              Math.min(olderThanMs, MARKER_ABANDONED_MS)
          ) {
            await client.delete(object.key);
            removed++;
          }
        }
      }
      return removed;
    },
  };
}
