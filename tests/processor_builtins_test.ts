import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  fileIndex,
  getProcessor,
  jsonlNormalize,
  processorStatus,
  runProcessor,
  speechManifest,
} from "../lib/processor/mod.ts";
import { blake3Hex } from "../store/hash.ts";
import { runCairn } from "./cli_command.ts";
import { tempDir } from "./temp.ts";

function jsonl(text: string): Record<string, unknown>[] {
  return text.trim().split("\n").map((l) => JSON.parse(l));
}

/** A PCM WAV file: 16-bit samples of a sine, `seconds` long. */
function wav(
  sampleRate: number,
  channels: number,
  seconds: number,
): Uint8Array {
  const frames = Math.round(sampleRate * seconds);
  const dataBytes = frames * channels * 2;
  const view = new DataView(new ArrayBuffer(44 + dataBytes));
  const tag = (at: number, s: string) =>
    [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  tag(0, "RIFF");
  view.setUint32(4, 36 + dataBytes, true);
  tag(8, "WAVE");
  tag(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, channels, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * channels * 2, true);
  view.setUint16(32, channels * 2, true);
  view.setUint16(34, 16, true);
  tag(36, "data");
  view.setUint32(40, dataBytes, true);
  for (let i = 0; i < frames * channels; i++) {
    view.setInt16(44 + i * 2, Math.round(8000 * Math.sin(i / 10)), true);
  }
  return new Uint8Array(view.buffer);
}

test("fileIndex indexes every file by relative path with size, BLAKE3, lines and MIME from magic bytes", async () => {
  const dir = await tempDir();
  const input = join(dir, "in");
  await mkdir(join(input, "b", "c"), { recursive: true });
  const png = new Uint8Array([
    0x89,
    0x50,
    0x4e,
    0x47,
    0x0d,
    0x0a,
    0x1a,
    0x0a,
    0,
    0,
    0,
    13,
    0x49,
    0x48,
    0x44,
    0x52,
  ]);
  const files: Record<string, Uint8Array | string> = {
    "a.txt": "one\ntwo\nthree",
    "b/c/deep.md": "# title\n",
    "b/image.png": png,
    "b/sound.wav": wav(8000, 1, 0.1),
    "empty": "",
    "a-b.bin": new Uint8Array([0, 1, 2, 255, 0]),
  };
  for (const [rel, content] of Object.entries(files)) {
    await writeFile(join(input, rel), content);
  }
  const out = join(dir, "index.jsonl");
  await runProcessor(fileIndex, {
    store: "memory:builtin-index",
    dataset: "idx",
    input,
    out,
  });
  const records = jsonl(await readFile(out, "utf8"));
  assert.deepEqual(records.map((r) => r.path), [
    "a-b.bin",
    "a.txt",
    "b/c/deep.md",
    "b/image.png",
    "b/sound.wav",
    "empty",
  ]);
  const byPath = new Map(records.map((r) => [r.path, r]));
  assert.deepEqual(
    [...byPath.values()].map((r) => [r.path, r.mime]),
    [
      ["a-b.bin", "application/octet-stream"],
      ["a.txt", "text/plain"],
      ["b/c/deep.md", "text/plain"],
      ["b/image.png", "image/png"],
      ["b/sound.wav", "audio/wav"],
      ["empty", "application/x-empty"],
    ],
  );
  assert.equal(byPath.get("a.txt")!.lines, 3);
  assert.equal(byPath.get("b/c/deep.md")!.lines, 1);
  assert.equal(byPath.get("empty")!.lines, 0);
  for (const [rel, content] of Object.entries(files)) {
    const bytes = typeof content === "string"
      ? new TextEncoder().encode(content)
      : content;
    assert.equal(byPath.get(rel)!.size, bytes.length);
    assert.equal(byPath.get(rel)!.blake3, await blake3Hex(bytes));
  }
  assert.deepEqual(Object.keys(records[0]!), [
    "path",
    "size",
    "blake3",
    "lines",
    "mime",
  ]);
});

test("jsonlNormalize validates JSONL and CSV against a JSON Schema, normalises, and counts invalid and skipped with first errors per file", async () => {
  const dir = await tempDir();
  const input = join(dir, "in");
  await mkdir(input);
  await writeFile(
    join(input, "a.jsonl"),
    [
      '{"age":"41","name":"Ada","extra":true}',
      "",
      "{not json",
      '{"name":"Bob"}',
      '{"age":"old","name":"Cy"}',
    ].join("\n") + "\n",
  );
  await writeFile(join(input, "b.csv"), "name,age\nDee,7\nEve,\n");
  await writeFile(join(input, "notes.txt"), "ignored");
  const schema = JSON.stringify({
    type: "object",
    properties: {
      name: { type: "string" },
      age: { type: "integer", default: 0 },
      country: { type: "string", default: "?" },
    },
    required: ["name"],
  });
  const out = join(dir, "rows.jsonl");
  const result = await runProcessor(jsonlNormalize, {
    store: "memory:builtin-normalize",
    dataset: "rows",
    input,
    out,
    params: { schema },
  });
  assert.equal(
    await readFile(out, "utf8"),
    [
      '{"name":"Ada","age":41,"country":"?","extra":true}',
      '{"name":"Bob","age":0,"country":"?"}',
      '{"name":"Dee","age":7,"country":"?"}',
      '{"name":"Eve","age":0,"country":"?"}',
    ].join("\n") + "\n",
  );
  const s = result.state;
  assert.equal(s.processed_count, 7);
  assert.equal(s.statistics.error_count, 2);
  assert.equal(s.statistics.skipped_count, 1);
  const files = s.processor_state.dataset_specific_state.files as Record<
    string,
    { invalid: number; skipped: number; first_errors: string[] }
  >;
  assert.equal(files["a.jsonl"]!.invalid, 2);
  assert.equal(files["a.jsonl"]!.skipped, 1);
  assert.match(files["a.jsonl"]!.first_errors[0]!, /^line 3: invalid JSON/);
  assert.match(
    files["a.jsonl"]!.first_errors[1]!,
    /^line 5: \/age must be integer/,
  );
  assert.equal(files["b.csv"], undefined);
  const status = await processorStatus("rows", {
    store: "memory:builtin-normalize",
  });
  assert.deepEqual(status.recentErrors.map((e) => e.id), [
    "a.jsonl:3",
    "a.jsonl:5",
  ]);
});

test("speechManifest writes the common manifest with S ids, and counts a broken WAV header and a missing transcript as errors", async () => {
  const dir = await tempDir();
  const input = join(dir, "corpus");
  await mkdir(join(input, "spk1"), { recursive: true });
  await mkdir(join(input, "spk2"), { recursive: true });
  await writeFile(join(input, "spk1", "u1.wav"), wav(16000, 1, 0.5));
  await writeFile(join(input, "spk1", "u1.txt"), "hello there\n");
  await writeFile(join(input, "spk1", "u2.wav"), wav(8000, 2, 0.25));
  const broken = wav(16000, 1, 0.2);
  broken.set([0x78, 0x78, 0x78, 0x78], 12); // "fmt " chunk id destroyed
  await writeFile(join(input, "spk2", "broken.wav"), broken);
  await writeFile(join(input, "spk2", "broken.txt"), "never read");
  await writeFile(join(input, "spk2", "silent.wav"), wav(22050, 1, 1));
  await writeFile(join(input, "spk2", "u3.wav"), wav(16000, 1, 0.125));
  await writeFile(
    join(input, "transcripts.tsv"),
    "id\ttext\nspk1/u2\tstereo words\n",
  );
  await writeFile(
    join(input, "transcripts.jsonl"),
    '{"id":"u3","text":"by base name"}\n',
  );
  const out = join(dir, "manifest.jsonl");
  const result = await runProcessor(speechManifest, {
    store: "memory:builtin-speech",
    dataset: "speech",
    input,
    out,
  });
  assert.deepEqual(jsonl(await readFile(out, "utf8")), [
    {
      id: "S000001",
      audio_filepath: "spk1/u1.wav",
      duration: 0.5,
      sample_rate: 16000,
      channels: 1,
      text: "hello there",
    },
    {
      id: "S000002",
      audio_filepath: "spk1/u2.wav",
      duration: 0.25,
      sample_rate: 8000,
      channels: 2,
      text: "stereo words",
    },
    {
      id: "S000003",
      audio_filepath: "spk2/u3.wav",
      duration: 0.125,
      sample_rate: 16000,
      channels: 1,
      text: "by base name",
    },
  ]);
  assert.equal(result.state.statistics.error_count, 2);
  assert.equal(result.state.last_generated_id, "S000003");
  const status = await processorStatus("speech", {
    store: "memory:builtin-speech",
  });
  const errors = new Map(status.recentErrors.map((e) => [e.id, e.error]));
  assert.match(errors.get("spk2/broken.wav")!, /^unreadable audio/);
  assert.match(errors.get("spk2/silent.wav")!, /^missing transcript/);
});

test("getProcessor names the known processors when one is unknown", async () => {
  await assert.rejects(
    getProcessor("nope"),
    /known processors are "file-index", "jsonl-normalize", "speech-manifest"/,
  );
});

test("cairn processor run, status, ls work for jsonl-normalize and refuse bad usage with exit 2", async () => {
  const dir = await tempDir();
  const store = join(dir, "store");
  const input = join(dir, "in.jsonl");
  await writeFile(input, '{"n":"1"}\n{"n":"x"}\n');
  const schemaFile = join(dir, "schema.json");
  await writeFile(
    schemaFile,
    JSON.stringify({ type: "object", properties: { n: { type: "number" } } }),
  );
  const out = join(dir, "out.jsonl");
  const base = [
    "--store",
    store,
    "processor",
    "run",
    "jsonl-normalize",
    "--dataset",
    "cli",
    "--input",
    input,
    "--out",
    out,
  ];
  const noSchema = await runCairn(base);
  assert.equal(noSchema.code, 2);
  assert.match(noSchema.stderr, /Missing --schema/);
  const ok = await runCairn([...base, "--schema", schemaFile, "--json"]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).records, 1);
  assert.equal(await readFile(out, "utf8"), '{"n":1}\n');
  const status = await runCairn([
    "--store",
    store,
    "processor",
    "status",
    "cli",
  ]);
  assert.match(
    status.stdout,
    /processed: +2\/2 \(100%\): 1 ok, 1 errors, 0 skipped/,
  );
  assert.match(status.stdout, /in\.jsonl:2: does not match the schema/);
  const files = await runCairn([
    "--store",
    store,
    "processor",
    "status",
    "cli",
    "--files",
    "--json",
  ]);
  assert.deepEqual(JSON.parse(files.stdout).processed_files, [
    "in.jsonl:1",
    "in.jsonl:2",
  ]);
  const ls = await runCairn([
    "--store",
    store,
    "processor",
    "ls",
    "--json",
  ]);
  assert.equal(JSON.parse(ls.stdout)[0].dataset, "cli");
  const unknown = await runCairn([
    "--store",
    store,
    "processor",
    "run",
    "nope",
    "--dataset",
    "x",
    "--input",
    dir,
    "--out",
    out,
  ]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Cannot find processor "nope"/);
  const missing = await runCairn([
    "--store",
    store,
    "processor",
    "status",
    "none",
  ]);
  assert.equal(missing.code, 2);
  const changed = await runCairn([
    ...base.slice(0, -2),
    "--out",
    out,
    "--input",
    dir,
    "--schema",
    schemaFile,
    "--checkpoint-every",
    "0",
  ]);
  assert.equal(changed.code, 2);
  assert.match(changed.stderr, /Invalid --checkpoint-every "0"/);
});

test("jsonlNormalize.count() gives the number of items from a byte scan, across line endings, blank lines and quoted CSV line breaks", async () => {
  const input = join(await tempDir(), "in");
  await mkdir(input);
  const files: Record<string, string> = {
    "lf.jsonl": '{"a":1}\n\n{"a":2}\n',
    "no-final-newline.jsonl": '{"a":1}\n{"a":2}',
    "crlf.jsonl": '{"a":1}\r\n{"a":2}\r\n\r\n',
    "cr.ndjson": '{"a":1}\r{"a":2}',
    "empty.jsonl": "",
    "blank.jsonl": "\n",
    "rows.csv": 'name,note\n\nAda,"two\r\nlines"\nBob,"say ""hi"""\n\n',
    "header-only.csv": "name,note\n",
    "crlf.csv": "name\r\nAda\r\nBob",
    // Past one 64 KiB read, so line breaks straddle reads.
    "big-crlf.jsonl": '{"padding":"0123456789012345678901234567"}\r\n'.repeat(
      3000,
    ),
    "big-lf.jsonl": '{"padding":"0123456789012345678901234567"}\n'.repeat(3000),
  };
  for (const [name, text] of Object.entries(files)) {
    await writeFile(join(input, name), text);
  }
  const ctx = {
    dataset: "count",
    params: {},
    signal: new AbortController().signal,
  };
  let items = 0;
  for await (const _ of jsonlNormalize.items(input, ctx)) items++;
  assert.equal(await jsonlNormalize.count!(input, ctx), items);
  assert.equal(items, 6017);
});
