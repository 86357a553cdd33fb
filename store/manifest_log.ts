/**
 * The manifest log: an append-only sequence of framed CBOR records, one log
 * per job run. The framing (see `docs/format.md`) survives torn writes: a bad
 * record at the tail is a writer that died and is truncated on open for
 * writing; a bad record followed by a good one is corruption and a hard error.
 *
 * Backends implement {@linkcode ManifestLog}; the byte-file ones (fs, memory)
 * share {@linkcode openFramedLog} over a tiny {@linkcode LogFile}, and an
 * object-storage backend can implement the same interface with one segment
 * per commit.
 *
 * @module
 */
import { decodeValue, encodeValue } from "./cbor.ts";
import { blake3BytesSync, blake3Ready, crc32c } from "./hash.ts";

/** One replayed record. */
export interface LogEntry<T = unknown> {
  /** Sequence number, 1 for the first record, contiguous. */
  seq: number;
  /** The decoded record. */
  body: T;
}

/** What opening a log for writing cut off its tail. */
export interface TailRepair {
  /** Byte offset where the valid records end. */
  offset: number;
  /** Bytes removed after it. */
  droppedBytes: number;
  /** Why the first dropped frame was rejected. */
  reason: string;
}

/** Options for {@linkcode ManifestLog.replay}. */
export interface ReplayOptions {
  /** Also check every record's link to the previous one (BLAKE3). Default: false (CRC and sequence only). */
  verifyChain?: boolean;
}

/** An append-only log of CBOR records. */
export interface ManifestLog {
  /** Where the log lives, for messages. */
  readonly name: string;
  /** What opening for writing truncated, if anything. */
  readonly repaired: TailRepair | undefined;
  /** A torn tail seen by a read-only open (left in place: a writer may be mid-append). */
  readonly tornTail: TailRepair | undefined;
  /** Number of records. */
  readonly length: number;
  /**
   * Append records durably; concurrent calls are group-committed (one write, one fsync).
   * Resolves to the sequence number of the last record appended.
   */
  append(bodies: readonly unknown[]): Promise<number>;
  /** Read every record in order from storage. */
  replay<T = unknown>(options?: ReplayOptions): AsyncIterable<LogEntry<T>>;
  /** Wait for pending appends and release resources. */
  close(): Promise<void>;
}

/** A bad record that is followed by good ones: the log is corrupt. */
export class CorruptLogError extends Error {
  /** The log's location. */
  readonly log: string;
  /** Byte offset of the bad record. */
  readonly offset: number;
  /**
   * Names the log, the bad record's offset and what is wrong with it.
   *
   * @param log The log's location.
   * @param offset Byte offset of the bad record.
   * @param reason What is wrong with it.
   */
  constructor(log: string, offset: number, reason: string) {
    const run = /([^/\\]+)[/\\]([^/\\]+)\.log$/.exec(log);
    const target = run === null ? "JOB/RUN" : `${run[1]}/${run[2]}`;
    super(
      `Cannot replay manifest log "${log}": record at byte ${offset} is bad (${reason}) and valid records follow it; run "cairn repair ${target}" to cut the log back to its last good record (the cut bytes are kept aside), or restore the file from a backup`,
    );
    this.name = "CorruptLogError";
    this.log = log;
    this.offset = offset;
  }
}

/** The bytes every log file starts with: "CAIRNLOG", u32 version, u32 reserved. */
export const LOG_MAGIC: Uint8Array = new TextEncoder().encode("CAIRNLOG");
/** Size of the file header. */
export const LOG_HEADER_SIZE = 16;
/** Size of a frame header: u32 length, u32 CRC32C, u64 seq, 16-byte link. */
export const FRAME_HEADER_SIZE = 32;
/** The largest body a frame may carry. */
export const MAX_BODY_SIZE = 64 * 1024 * 1024;
const LINK_SIZE = 16;

/**
 * A fresh log file's header.
 *
 * @returns 16 header bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { logHeader } from "./manifest_log.ts";
 * assert.ok(logHeader().length === 16);
 * ```
 */
export function logHeader(): Uint8Array {
  const header = new Uint8Array(LOG_HEADER_SIZE);
  header.set(LOG_MAGIC);
  new DataView(header.buffer).setUint32(8, 1, true);
  return header;
}

/** The 16-byte link that the frame after this one carries. */
function linkOf(frame: Uint8Array): Uint8Array {
  return blake3BytesSync(frame.subarray(8)).subarray(0, LINK_SIZE);
}

/** A frame that checks out, and where it ends. */
interface FrameAt {
  seq: number;
  start: number;
  end: number;
}

function frameAt(
  bytes: Uint8Array,
  view: DataView,
  pos: number,
): FrameAt | string {
  if (bytes.length - pos < FRAME_HEADER_SIZE) return "truncated frame header";
  const length = view.getUint32(pos, true);
  if (length === 0 || length > MAX_BODY_SIZE) {
    return `implausible body length ${length}`;
  }
  const end = pos + FRAME_HEADER_SIZE + length;
  if (end > bytes.length) {
    return `truncated body: ${length} bytes declared, ${
      bytes.length - pos - FRAME_HEADER_SIZE
    } present`;
  }
  if (crc32c(bytes.subarray(pos + 8, end)) !== view.getUint32(pos + 4, true)) {
    return "checksum mismatch";
  }
  return { seq: Number(view.getBigUint64(pos + 8, true)), start: pos, end };
}

/**
 * The first valid frame at or after `from` whose sequence number could follow
 * record `expected - 1`, if any. Cheap header checks (a plausible length that
 * fits, a sequence number in range) come before the checksum, so garbage costs
 * O(1) per byte and the scan stays linear (a checksum at every offset was
 * quadratic).
 */
function findFrameAfter(
  bytes: Uint8Array,
  view: DataView,
  from: number,
  expected: number,
): FrameAt | undefined {
  // No more records can follow than fit in the remaining bytes.
  const maxSeq = expected +
    Math.ceil((bytes.length - from) / FRAME_HEADER_SIZE);
  for (let p = from; p + FRAME_HEADER_SIZE < bytes.length; p++) {
    const length = view.getUint32(p, true);
    if (length === 0 || p + FRAME_HEADER_SIZE + length > bytes.length) continue;
    if (view.getUint32(p + 12, true) !== 0) continue; // seq above 2^32
    const seq = view.getUint32(p + 8, true);
    if (seq < expected || seq > maxSeq) continue;
    const found = frameAt(bytes, view, p);
    if (typeof found !== "string") return found;
  }
  return undefined;
}

/** The result of scanning a log's bytes. */
export interface LogScan {
  /** Valid frames in order. */
  frames: FrameAt[];
  /** Offset where valid frames end. */
  end: number;
  /** The bad tail after `end`, if any. */
  tail: TailRepair | undefined;
}

/**
 * Scan a whole log file: validate the header and every frame, stop at a torn
 * tail, and throw {@linkcode CorruptLogError} when a bad frame is followed by a good one.
 *
 * @param bytes The log file's bytes.
 * @param name The log's location, for messages.
 * @returns The valid frames and any torn tail.
 *
 * @example Scan a fresh log
 * ```ts
 * import assert from "node:assert/strict";
 * import { logHeader, scanLog } from "./manifest_log.ts";
 * assert.ok(scanLog(logHeader(), "x").frames.length === 0);
 * ```
 */
export function scanLog(bytes: Uint8Array, name: string): LogScan {
  if (
    bytes.length < LOG_HEADER_SIZE || LOG_MAGIC.some((b, i) => bytes[i] !== b)
  ) {
    throw new SyntaxError(
      `Cannot open manifest log "${name}": it does not start with the "CAIRNLOG" header`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== 1) {
    throw new SyntaxError(
      `Cannot open manifest log "${name}": format version ${version} is not supported (expected 1); upgrade cairn`,
    );
  }
  const frames: FrameAt[] = [];
  let pos = LOG_HEADER_SIZE;
  while (pos < bytes.length) {
    const found = frameAt(bytes, view, pos);
    const reason = typeof found === "string"
      ? found
      : found.seq !== frames.length + 1
      ? `sequence number ${found.seq}, expected ${frames.length + 1}`
      : undefined;
    if (reason !== undefined) {
      const resync = findFrameAfter(bytes, view, pos + 1, frames.length + 1);
      if (resync !== undefined) throw new CorruptLogError(name, pos, reason);
      return {
        frames,
        end: pos,
        tail: { offset: pos, droppedBytes: bytes.length - pos, reason },
      };
    }
    frames.push(found as FrameAt);
    pos = (found as FrameAt).end;
  }
  return { frames, end: pos, tail: undefined };
}

/** The byte-level file under a framed log: what the fs and memory backends provide. */
export interface LogFile {
  /** Where it lives, for messages. */
  readonly name: string;
  /** The whole file. */
  read(): Promise<Uint8Array>;
  /** Append bytes and make them durable (write + fsync). */
  append(bytes: Uint8Array): Promise<void>;
  /** Cut the file to `size` bytes, durably. */
  truncate(size: number): Promise<void>;
  /** Release resources. */
  close(): Promise<void>;
}

/** Options for {@linkcode openFramedLog}. */
export interface OpenFramedLogOptions {
  /** Open for appending, truncating a torn tail. Default: false (read-only, nothing is changed). */
  write?: boolean;
  /**
   * Called before every group commit; a rejection fails that commit and
   * every later append (fencing: the writer's lock is gone). Default: none.
   */
  fence?: () => Promise<void>;
  /** Bytes already read from `file`, to skip a second read. Default: read it. */
  bytes?: Uint8Array;
}

/** What {@linkcode Store.repairLog} did to a damaged log. */
export interface LogRepair {
  /** Records kept. */
  records: number;
  /** Byte offset the log was cut at (its new size). */
  offset: number;
  /** Bytes cut off and set aside (0 when the log was sound). */
  cutBytes: number;
  /** Why the record at `offset` was rejected, when something was cut. */
  reason: string | undefined;
  /** Where the cut bytes were kept, when something was cut. */
  aside: string | undefined;
}

/** Where a log's good prefix ends, never throwing: what repair and unborn checks use. */
export interface LogPrefix {
  /** Complete, valid records from the start, in order. */
  records: number;
  /** Offset just past the last of them (0 when even the header is bad). */
  end: number;
  /** Why the bytes at `end` were rejected, if any follow. */
  reason: string | undefined;
}

/**
 * Find the good prefix of a log's bytes: the header and every valid record
 * up to the first bad one. Linear; never throws.
 *
 * @param bytes The log file's bytes.
 * @returns The prefix.
 *
 * @example A log cut inside its first record is unborn
 * ```ts
 * import assert from "node:assert/strict";
 * import { logPrefix, newLogBytes } from "./manifest_log.ts";
 * const bytes = newLogBytes({ type: "run" });
 * assert.equal(logPrefix(bytes).records, 1);
 * assert.equal(logPrefix(bytes.subarray(0, 20)).records, 0);
 * ```
 */
export function logPrefix(bytes: Uint8Array): LogPrefix {
  if (
    bytes.length < LOG_HEADER_SIZE || LOG_MAGIC.some((b, i) => bytes[i] !== b)
  ) {
    return { records: 0, end: 0, reason: "no CAIRNLOG header" };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(8, true) !== 1) {
    return { records: 0, end: 0, reason: "unsupported format version" };
  }
  let records = 0;
  let pos = LOG_HEADER_SIZE;
  while (pos < bytes.length) {
    const found = frameAt(bytes, view, pos);
    const reason = typeof found === "string"
      ? found
      : found.seq !== records + 1
      ? `sequence number ${found.seq}, expected ${records + 1}`
      : undefined;
    if (reason !== undefined) return { records, end: pos, reason };
    records++;
    pos = (found as FrameAt).end;
  }
  return { records, end: pos, reason: undefined };
}

/**
 * What a repair that cut `bytes` back to their good prefix reports; the one
 * shape every store's `repairLog` returns (nothing cut when the log is sound).
 *
 * @param bytes The log's bytes before the repair.
 * @param prefix Their good prefix ({@linkcode logPrefix}).
 * @param aside Where the cut bytes were kept, when something was cut.
 * @returns The repair's report.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { logPrefix, newLogBytes, repairReport } from "./manifest_log.ts";
 * const bytes = newLogBytes({ type: "run" });
 * assert.equal(repairReport(bytes, logPrefix(bytes)).cutBytes, 0);
 * const torn = new Uint8Array([...bytes, 1, 2, 3]);
 * assert.equal(repairReport(torn, logPrefix(torn), "x").cutBytes, 3);
 * ```
 */
export function repairReport(
  bytes: Uint8Array,
  prefix: LogPrefix,
  aside?: string,
): LogRepair {
  return {
    records: prefix.records,
    offset: prefix.end,
    cutBytes: bytes.length - prefix.end,
    reason: prefix.reason,
    aside,
  };
}

/**
 * Whether a log never got its first record written completely (a crash
 * while creating it): its bytes are a proper prefix of a header plus one
 * record. Such a log is an unborn run: readers skip it and the next writer
 * sets it aside. A complete first record that fails its checksum is damage,
 * not an unborn run.
 *
 * @param head The file's first 48 bytes (or all of it, if shorter).
 * @param size The file's size.
 * @returns True for an unborn log.
 *
 * @example A bare header is unborn
 * ```ts
 * import assert from "node:assert/strict";
 * import { isUnbornLog, logHeader } from "./manifest_log.ts";
 * assert.equal(isUnbornLog(logHeader(), 16), true);
 * assert.equal(isUnbornLog(new Uint8Array(16), 16), false);
 * ```
 */
export function isUnbornLog(head: Uint8Array, size: number): boolean {
  for (let i = 0; i < Math.min(head.length, LOG_MAGIC.length); i++) {
    if (head[i] !== LOG_MAGIC[i]) return false; // not a log at all: damage
  }
  const first = LOG_HEADER_SIZE + FRAME_HEADER_SIZE;
  if (size < first || head.length < first) return true;
  const length = new DataView(head.buffer, head.byteOffset, head.byteLength)
    .getUint32(LOG_HEADER_SIZE, true);
  return size < first + length;
}

/**
 * The bytes of a new log: the header, then `first` as record 1 when given.
 * Backends publish them in one atomic step, so no log lacks its first record.
 *
 * @param first The first record, if any.
 * @returns The file's bytes.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { newLogBytes } from "./manifest_log.ts";
 * assert.equal(newLogBytes().length, 16);
 * assert.ok(newLogBytes({ a: 1 }).length > 48);
 * ```
 */
export function newLogBytes(first?: unknown): Uint8Array {
  if (first === undefined) return logHeader();
  const { bytes } = frameRecords(
    [encodeRecord(first)],
    0,
    new Uint8Array(LINK_SIZE),
    false,
  );
  const out = new Uint8Array(LOG_HEADER_SIZE + bytes.length);
  out.set(logHeader());
  out.set(bytes, LOG_HEADER_SIZE);
  return out;
}

function encodeRecord(body: unknown): Uint8Array {
  const bytes = encodeValue(body);
  if (bytes.length > MAX_BODY_SIZE) {
    throw new RangeError(
      `Cannot append a ${bytes.length}-byte record: the limit is ${MAX_BODY_SIZE}; store large data as chunks`,
    );
  }
  return bytes;
}

/** Frame encoded bodies after record `seq` whose link is `link`. */
function frameRecords(
  encoded: readonly Uint8Array[],
  seq: number,
  link: Uint8Array,
  linkLast = true,
): { bytes: Uint8Array; seq: number; link: Uint8Array } {
  const total = encoded.reduce((n, b) => n + FRAME_HEADER_SIZE + b.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let pos = 0;
  for (const body of encoded) {
    view.setUint32(pos, body.length, true);
    view.setBigUint64(pos + 8, BigInt(++seq), true);
    out.set(link, pos + 16);
    out.set(body, pos + FRAME_HEADER_SIZE);
    const frame = out.subarray(pos, pos + FRAME_HEADER_SIZE + body.length);
    view.setUint32(pos + 4, crc32c(frame.subarray(8)), true);
    // The last link is only needed to append more (it needs blake3Ready()).
    if (linkLast || pos + frame.length < out.length) link = linkOf(frame);
    pos += frame.length;
  }
  return { bytes: out, seq, link };
}

/**
 * Open a framed log over a {@linkcode LogFile}.
 *
 * @param file The underlying file.
 * @param options Whether to open for writing.
 * @returns The log.
 *
 * @example Append and replay in memory
 * ```ts
 * import assert from "node:assert/strict";
 * import { createMemoryStore } from "./memory.ts";
 * const store = createMemoryStore();
 * const log = await store.createLog("demo", "run-1");
 * await log.append([{ hello: 1 }, { hello: 2 }]);
 * const seqs = [];
 * for await (const entry of log.replay()) seqs.push(entry.seq);
 * assert.ok(seqs.join() === "1,2");
 * ```
 */
export async function openFramedLog(
  file: LogFile,
  options: OpenFramedLogOptions = {},
): Promise<ManifestLog> {
  const bytes = options.bytes ?? await file.read();
  const scan = scanLog(bytes, file.name);
  await blake3Ready();
  let repaired: TailRepair | undefined;
  if (scan.tail !== undefined && options.write) {
    await file.truncate(scan.end);
    repaired = scan.tail;
  }
  const last = scan.frames.at(-1);
  const link = last === undefined
    ? new Uint8Array(LINK_SIZE)
    : linkOf(bytes.subarray(last.start, last.end));
  return new FramedLog(
    file,
    scan.frames.length,
    link,
    repaired,
    options.write ? undefined : scan.tail,
    options.write ?? false,
    options.fence,
  );
}

interface PendingAppend {
  encoded: Uint8Array[];
  resolve: (seq: number) => void;
  reject: (error: unknown) => void;
}

class FramedLog implements ManifestLog {
  readonly #file: LogFile;
  readonly #writable: boolean;
  #length: number;
  #link: Uint8Array;
  #queue: PendingAppend[] = [];
  #draining: Promise<void> | undefined;
  #failure: unknown;
  readonly #fence: (() => Promise<void>) | undefined;
  readonly repaired: TailRepair | undefined;
  readonly tornTail: TailRepair | undefined;

  constructor(
    file: LogFile,
    length: number,
    link: Uint8Array,
    repaired: TailRepair | undefined,
    tornTail: TailRepair | undefined,
    writable: boolean,
    fence: (() => Promise<void>) | undefined,
  ) {
    this.#fence = fence;
    this.#file = file;
    this.#length = length;
    this.#link = link;
    this.repaired = repaired;
    this.tornTail = tornTail;
    this.#writable = writable;
  }

  get name(): string {
    return this.#file.name;
  }

  get length(): number {
    return this.#length;
  }

  append(bodies: readonly unknown[]): Promise<number> {
    if (!this.#writable) {
      return Promise.reject(
        new Error(
          `Cannot append to manifest log "${this.name}": it was opened read-only`,
        ),
      );
    }
    // A fenced writer keeps getting the same clear error.
    if ((this.#failure as Error | undefined)?.name === "LockLostError") {
      return Promise.reject(this.#failure);
    }
    if (this.#failure !== undefined) {
      return Promise.reject(
        new Error(
          `Cannot append to manifest log "${this.name}": an earlier append failed; reopen the job`,
          {
            cause: this.#failure,
          },
        ),
      );
    }
    // Encode now, so a record that cannot be encoded fails only this append
    // with its own error, never the queue or later appends.
    let encoded: Uint8Array[];
    try {
      encoded = bodies.map(encodeRecord);
    } catch (error) {
      return Promise.reject(error);
    }
    const done = new Promise<number>((resolve, reject) =>
      this.#queue.push({ encoded, resolve, reject })
    );
    this.#draining ??= this.#drain();
    return done;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0);
      try {
        const encoded = batch.flatMap((p) => p.encoded);
        const framed = frameRecords(encoded, this.#length, this.#link);
        const { seq, link } = framed;
        // Fencing: a writer that lost its lock never appends.
        await this.#fence?.();
        await this.#file.append(framed.bytes);
        let next = this.#length;
        this.#length = seq;
        this.#link = link;
        for (const p of batch) p.resolve(next += p.encoded.length);
      } catch (error) {
        this.#failure = error;
        for (const p of batch.concat(this.#queue.splice(0))) p.reject(error);
      }
    }
    this.#draining = undefined;
  }

  async *replay<T = unknown>(
    options: ReplayOptions = {},
  ): AsyncIterable<LogEntry<T>> {
    const bytes = await this.#file.read();
    const scan = scanLog(bytes, this.name);
    let link: Uint8Array = new Uint8Array(LINK_SIZE);
    for (const f of scan.frames) {
      const frame = bytes.subarray(f.start, f.end);
      if (options.verifyChain) {
        const carried = frame.subarray(16, FRAME_HEADER_SIZE);
        if (carried.some((b, i) => b !== link[i])) {
          throw new CorruptLogError(
            this.name,
            f.start,
            `record ${f.seq} does not link to record ${f.seq - 1}`,
          );
        }
        link = linkOf(frame);
      }
      yield {
        seq: f.seq,
        body: decodeValue<T>(frame.subarray(FRAME_HEADER_SIZE)),
      };
    }
  }

  async close(): Promise<void> {
    await this.#draining;
    await this.#file.close();
  }
}
