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
   * @param log The log's location.
   * @param offset Byte offset of the bad record.
   * @param reason What is wrong with it.
   */
  constructor(log: string, offset: number, reason: string) {
    super(
      `Cannot replay manifest log "${log}": record at byte ${offset} is bad (${reason}) and valid records follow it; restore the file from a backup or forget this run`,
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
  const bytes = await file.read();
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
  readonly repaired: TailRepair | undefined;
  readonly tornTail: TailRepair | undefined;

  constructor(
    file: LogFile,
    length: number,
    link: Uint8Array,
    repaired: TailRepair | undefined,
    tornTail: TailRepair | undefined,
    writable: boolean,
  ) {
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
      encoded = bodies.map((b) => {
        const body = encodeValue(b);
        if (body.length > MAX_BODY_SIZE) {
          throw new RangeError(
            `Cannot append a ${body.length}-byte record: the limit is ${MAX_BODY_SIZE}; store large data as chunks`,
          );
        }
        return body;
      });
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
        const total = encoded.reduce(
          (n, b) => n + FRAME_HEADER_SIZE + b.length,
          0,
        );
        const out = new Uint8Array(total);
        const view = new DataView(out.buffer);
        let pos = 0;
        let seq = this.#length;
        let link = this.#link;
        for (const body of encoded) {
          view.setUint32(pos, body.length, true);
          view.setBigUint64(pos + 8, BigInt(++seq), true);
          out.set(link, pos + 16);
          out.set(body, pos + FRAME_HEADER_SIZE);
          const frame = out.subarray(
            pos,
            pos + FRAME_HEADER_SIZE + body.length,
          );
          view.setUint32(pos + 4, crc32c(frame.subarray(8)), true);
          link = linkOf(frame);
          pos += frame.length;
        }
        await this.#file.append(out);
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
