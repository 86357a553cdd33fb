/**
 * The `speech-manifest` processor (the seed's domain): walks a corpus of
 * audio files with transcripts and writes a manifest in the common JSONL form
 * `{"id", "audio_filepath", "duration", "sample_rate", "channels", "text"}`,
 * with ids `S000001`, … that never repeat across kills and resumes. Audio
 * headers are read by `music-metadata` (WAV, FLAC, MP3, Ogg, M4A, …).
 * Transcripts come from a `.txt` beside each audio file, or from a
 * `transcripts.tsv` (`id<TAB>text`) or `transcripts.jsonl` (`{"id", "text"}`)
 * at the corpus root, where the id is the audio path without extension or its
 * base name. Unreadable audio and missing transcripts are item errors with
 * reasons.
 *
 * @module
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { type InputFile, listFiles } from "./_files.ts";
import type { Processor } from "./types.ts";

/** One line of the manifest. */
export interface SpeechManifestRecord {
  /** `S000001`, … from `ctx.nextId("S")`. */
  id: string;
  /** Path relative to the corpus root, with "/" separators. */
  audio_filepath: string;
  /** Seconds. */
  duration: number;
  /** Samples per second. */
  sample_rate: number;
  /** Audio channels. */
  channels: number;
  /** The transcript, trimmed. */
  text: string;
}

const AUDIO = /\.(wav|flac|mp3|ogg|opus|m4a|aac|aiff?)$/i;
const TABLE_NAMES = ["transcripts.tsv", "transcripts.jsonl"];

/** The listing `count` made, which `items` then uses instead of walking the input again. */
const listings = new Map<string, Promise<InputFile[]>>();

/** Transcript tables by corpus root, loaded once per run. */
const tables = new Map<string, Map<string, string>>();

async function loadTable(input: string): Promise<Map<string, string>> {
  const table = new Map<string, string>();
  for (const name of TABLE_NAMES) {
    const text = await readFile(join(input, name), "utf8").catch(() => "");
    for (const [i, line] of text.split("\n").entries()) {
      if (line.trim() === "") continue;
      if (name.endsWith(".tsv")) {
        const tab = line.indexOf("\t");
        if (tab < 0) continue;
        const id = line.slice(0, tab).trim();
        if (i === 0 && id === "id") continue;
        table.set(id, line.slice(tab + 1).replace(/\r$/, "").trim());
      } else {
        try {
          const row = JSON.parse(line) as { id?: unknown; text?: unknown };
          if (typeof row.id === "string" && typeof row.text === "string") {
            table.set(row.id, row.text.trim());
          }
        } catch {
          // A bad table line leaves its audio without a transcript: reported per item.
        }
      }
    }
  }
  return table;
}

async function transcriptOf(
  input: string,
  file: InputFile,
): Promise<string | undefined> {
  const stem = file.rel.replace(/\.[^./]+$/, "");
  const beside = await readFile(
    `${file.path.replace(/\.[^./]+$/, "")}.txt`,
    "utf8",
  )
    .catch(() => undefined);
  if (beside !== undefined) return beside.trim();
  const table = tables.get(input) ?? new Map<string, string>();
  return table.get(stem) ?? table.get(stem.split("/").at(-1)!);
}

// music-metadata loads on the first file read, so importing the family stays cheap.
let musicMetadata:
  | Promise<typeof import("npm:music-metadata@^12.1.0")>
  | undefined;
function loadMusicMetadata(): Promise<
  typeof import("npm:music-metadata@^12.1.0")
> {
  return musicMetadata ??= import("npm:music-metadata@^12.1.0");
}

/**
 * The `speech-manifest` processor. Items are the audio files under the input
 * (ids are relative paths, in path order).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mkdtemp, readFile, writeFile } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { speechManifest } from "./speech_manifest.ts";
 * import { runProcessor } from "./run.ts";
 *
 * // 0.5 s of 16-bit mono silence at 8 kHz.
 * const wav = new DataView(new ArrayBuffer(44 + 8000));
 * const tag = (at: number, s: string) => [...s].forEach((c, i) => wav.setUint8(at + i, c.charCodeAt(0)));
 * tag(0, "RIFF"); wav.setUint32(4, 36 + 8000, true); tag(8, "WAVE"); tag(12, "fmt ");
 * wav.setUint32(16, 16, true); wav.setUint16(20, 1, true); wav.setUint16(22, 1, true);
 * wav.setUint32(24, 8000, true); wav.setUint32(28, 16000, true); wav.setUint16(32, 2, true);
 * wav.setUint16(34, 16, true); tag(36, "data"); wav.setUint32(40, 8000, true);
 * const dir = await mkdtemp(join(tmpdir(), "cairn-speech-"));
 * await writeFile(join(dir, "utt1.wav"), new Uint8Array(wav.buffer));
 * await writeFile(join(dir, "utt1.txt"), "hello world\n");
 * await runProcessor(speechManifest, { store: "memory:speech-example", dataset: "speech", input: dir, out: `${dir}.jsonl` });
 * assert.deepEqual(JSON.parse(await readFile(`${dir}.jsonl`, "utf8")), {
 *   id: "S000001", audio_filepath: "utt1.wav", duration: 0.5, sample_rate: 8000, channels: 1, text: "hello world",
 * });
 * ```
 */
export const speechManifest: Processor<
  InputFile & { id: string; root: string }
> = {
  name: "speech-manifest",
  version: "1",
  async setup(input) {
    tables.set(input, await loadTable(input));
  },
  async count(input) {
    const listing = listFiles(input, (rel) => AUDIO.test(rel));
    listings.set(input, listing);
    return (await listing).length;
  },
  async *items(input) {
    const listing = listings.get(input) ??
      listFiles(input, (rel) => AUDIO.test(rel));
    listings.delete(input);
    for (const file of await listing) {
      yield { id: file.rel, root: input, ...file };
    }
  },
  async process(item, ctx) {
    const { parseFile } = await loadMusicMetadata();
    let format;
    try {
      format = (await parseFile(item.path, { duration: true })).format;
    } catch (error) {
      throw new Error(`unreadable audio: ${(error as Error).message}`);
    }
    const { sampleRate, numberOfChannels, duration } = format;
    if (
      sampleRate === undefined || numberOfChannels === undefined ||
      duration === undefined || !Number.isFinite(duration)
    ) {
      throw new Error(
        `unreadable audio: no valid ${
          format.container ?? "audio"
        } header (sample rate, channels or duration missing)`,
      );
    }
    const text = await transcriptOf(item.root, item);
    if (text === undefined) {
      throw new Error(
        `missing transcript: no "${
          item.rel.replace(/\.[^./]+$/, "")
        }.txt" beside it and no entry in transcripts.tsv or transcripts.jsonl`,
      );
    }
    const record: SpeechManifestRecord = {
      id: ctx.nextId("S"),
      audio_filepath: item.rel,
      duration: Math.round(duration * 1e6) / 1e6,
      sample_rate: sampleRate,
      channels: numberOfChannels,
      text,
    };
    return [record];
  },
};
