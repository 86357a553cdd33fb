/**
 * Bad input for the torture campaign: malformed .npy and .fvecs files, NaNs,
 * wrong dimensions and bad flags through the CLI; bad pipeline configs; and
 * fuzzed CBOR and manifest bytes through the decoders (fast-check). Each must
 * fail with a clear error, exit 2 through the CLI, allocate nothing a header
 * merely claims, and leave the store as it was.
 *
 * @module
 */
import fc from "npm:fast-check@^4.3.0";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { decodeValue, encodeValue } from "../store/cbor.ts";
import { newLogBytes, scanLog } from "../store/manifest_log.ts";
import { parseNpy } from "../lib/io/npy.ts";
import { parseFvecs } from "../lib/io/fvecs.ts";
import {
  cairnCommand,
  hasStackTrace,
  npyBytes,
  runChild,
  storeOf,
} from "./_torture_core.ts";
import { between, type Ctx } from "./_torture_faults.ts";

function npyWithHeader(header: string, data: Uint8Array): Uint8Array {
  const total = 10 + header.length + 1;
  const head = `${header}${" ".repeat((64 - (total % 64)) % 64)}\n`;
  const bytes = new Uint8Array(10 + head.length + data.length);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(bytes.buffer).setUint16(8, head.length, true);
  bytes.set(new TextEncoder().encode(head), 10);
  bytes.set(data, 10 + head.length);
  return bytes;
}

function fvecs(rows: number[][], dimOverride?: number): Uint8Array {
  const parts: number[] = [];
  for (const row of rows) {
    parts.push(dimOverride ?? row.length, ...row);
  }
  const view = new DataView(new ArrayBuffer(parts.length * 4));
  let at = 0;
  for (const row of rows) {
    view.setInt32(at, dimOverride ?? row.length, true);
    at += 4;
    for (const v of row) {
      view.setFloat32(at, v, true);
      at += 4;
    }
  }
  return new Uint8Array(view.buffer);
}

/** Malformed input files: name, bytes, suffix. */
function badFiles(): [string, Uint8Array, string][] {
  const data = new Uint8Array(6 * 4);
  const good = npyBytes(8, 3);
  const nan = npyBytes(8, 3);
  new DataView(nan.buffer).setFloat32(nan.length - 8, Number.NaN, true);
  const f = "'fortran_order': False";
  return [
    [
      "npy: bad magic",
      new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]),
      ".npy",
    ],
    ["npy: header not a dict", npyWithHeader("hello", data), ".npy"],
    [
      "npy: header length past the end",
      good.slice(0, 9).map((b, i) => i === 8 ? 0xff : b),
      ".npy",
    ],
    [
      "npy: shape lies (more rows than data)",
      npyWithHeader(`{'descr': '<f4', ${f}, 'shape': (1000, 3), }`, data),
      ".npy",
    ],
    [
      "npy: huge dimensions (2^40 rows)",
      npyWithHeader(
        `{'descr': '<f4', ${f}, 'shape': (1099511627776, 3), }`,
        data,
      ),
      ".npy",
    ],
    [
      "npy: huge product (2^31 x 2^31)",
      npyWithHeader(
        `{'descr': '<f4', ${f}, 'shape': (2147483648, 2147483648), }`,
        data,
      ),
      ".npy",
    ],
    [
      "npy: negative shape",
      npyWithHeader(`{'descr': '<f4', ${f}, 'shape': (-2, 3), }`, data),
      ".npy",
    ],
    [
      "npy: unsupported dtype",
      npyWithHeader(`{'descr': '<c16', ${f}, 'shape': (2, 3), }`, data),
      ".npy",
    ],
    [
      "npy: fortran order",
      npyWithHeader(
        `{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }`,
        data,
      ),
      ".npy",
    ],
    [
      "npy: three dimensions",
      npyWithHeader(`{'descr': '<f4', ${f}, 'shape': (1, 2, 3), }`, data),
      ".npy",
    ],
    ["npy: truncated data", good.slice(0, good.length - 5), ".npy"],
    ["npy: NaN in data", nan, ".npy"],
    ["npy: empty file", new Uint8Array(), ".npy"],
    ["fvecs: huge dimension field", fvecs([[1, 2]], 0x3fffffff), ".fvecs"],
    ["fvecs: negative dimension", fvecs([[1, 2]], -4), ".fvecs"],
    [
      "fvecs: rows of different dimensions",
      fvecs([[1, 2], [1, 2, 3]]),
      ".fvecs",
    ],
    ["fvecs: truncated", fvecs([[1, 2, 3], [4, 5, 6]]).slice(0, 21), ".fvecs"],
    ["fvecs: Infinity in data", fvecs([[1, Infinity], [1, 2]]), ".fvecs"],
  ];
}

async function storeState(store: string): Promise<string> {
  const parts: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (!p.includes("/tmp/") && !p.includes("/locks/")) {
        parts.push(`${p}:${(await readFile(p)).toString("base64")}`);
      }
    }
  };
  await walk(store);
  return parts.sort().join("\n");
}

/** One CLI call with bad input: exit 2, short, no stack trace, no hang, store unchanged. */
async function expectRefused(
  ctx: Ctx,
  kind: string,
  fam: string,
  label: string,
  dir: string,
  args: string[],
  codes: number[] = [2],
): Promise<void> {
  const before = await storeState(storeOf(dir));
  const exit = await runChild(
    cairnCommand(["--store", storeOf(dir), ...args]),
    { timeoutMs: 60_000 },
  );
  const changed = (await storeState(storeOf(dir))) !== before;
  ctx.tally.add(kind, fam, "inputs");
  const ok = exit.code !== null && codes.includes(exit.code) && !exit.hung &&
    !hasStackTrace(exit.stderr) &&
    exit.stderr.trim() !== "" && exit.stderr.length < 2000 && !changed;
  ctx.tally.add(
    kind,
    fam,
    "refused cleanly (exit 2 or for a missing file 1; no trace; store unchanged)",
    ok ? 1 : 0,
  );
  ctx.tally.expect(
    ok,
    kind,
    fam,
    `${label}: exit ${exit.code}${exit.hung ? " (hung)" : ""}${
      changed ? " (store changed)" : ""
    }: ${exit.stderr.slice(0, 300)}`,
  );
}

/** Malformed files through `cairn knn` and the parsers, bad flags, bad pipeline configs. */
export async function badInput(ctx: Ctx): Promise<void> {
  const { tally } = ctx;
  const dir = await ctx.dir("input");
  await runChild(
    cairnCommand([
      "--store",
      storeOf(dir),
      "demo",
      "--rows",
      "500",
      "--steps",
      "3",
      "--delay",
      "0ms",
      "--quiet",
    ]),
  );
  await writeFile(join(dir, "good.npy"), npyBytes(8, 3));
  await writeFile(join(dir, "good4.npy"), npyBytes(8, 4));
  let kind = "malformed .npy/.fvecs";
  for (const [label, bytes, suffix] of badFiles()) {
    const path = join(dir, `bad${suffix}`);
    await writeFile(path, bytes);
    await expectRefused(ctx, kind, "kNN (cairn knn)", label, dir, [
      "knn",
      "--ref",
      path,
      "--k",
      "2",
      "--out",
      join(dir, "out"),
    ]);
    // In process: the parser must not allocate what the header claims.
    const before = process.memoryUsage().arrayBuffers;
    let error: unknown;
    try {
      if (suffix === ".npy") parseNpy(bytes);
      else parseFvecs(bytes);
    } catch (e) {
      error = e;
    }
    const grown = process.memoryUsage().arrayBuffers - before;
    const parserOk = grown < 64 * 2 ** 20 &&
      (error === undefined || (error instanceof Error &&
        ["SyntaxError", "TypeError", "RangeError"].includes(error.name) &&
        !/Cannot read properties|Array buffer allocation|Invalid typed array length/
          .test(error.message)));
    tally.add(kind, "kNN (parsers)", "inputs");
    tally.add(
      kind,
      "kNN (parsers)",
      "clear errors without claimed allocations",
      parserOk ? 1 : 0,
    );
    tally.expect(
      parserOk,
      kind,
      "kNN (parsers)",
      `${label}: ${String(error)}; ${grown} bytes allocated`,
    );
  }
  kind = "bad flags and dimensions";
  for (
    const [label, args, codes] of [
      ["negative rows", ["demo", "--rows", "-5"]],
      ["rows not a number", ["demo", "--rows", "abc"]],
      ["steps overflow", ["demo", "--steps", "1e309"]],
      ["unknown flag", ["demo", "--frobnicate"]],
      ["k zero", [
        "knn",
        "--ref",
        join(dir, "good.npy"),
        "--k",
        "0",
        "--out",
        join(dir, "o"),
      ]],
      ["k past the rows", [
        "knn",
        "--ref",
        join(dir, "good.npy"),
        "--k",
        "99",
        "--out",
        join(dir, "o"),
      ]],
      ["query of other dimensions", [
        "knn",
        "--ref",
        join(dir, "good.npy"),
        "--query",
        join(dir, "good4.npy"),
        "--k",
        "2",
        "--out",
        join(dir, "o"),
      ]],
      ["missing input file", [
        "knn",
        "--ref",
        join(dir, "nope.npy"),
        "--k",
        "2",
        "--out",
        join(dir, "o"),
      ], [1, 2]],
      ["output is a file", [
        "knn",
        "--ref",
        join(dir, "good.npy"),
        "--k",
        "2",
        "--out",
        join(dir, "good.npy"),
      ], [1, 2]],
      ["bad duration", ["demo", "--delay", "soon"]],
      ["bad metric", [
        "knn",
        "--ref",
        join(dir, "good.npy"),
        "--k",
        "2",
        "--metric",
        "manhattan",
        "--out",
        join(dir, "o"),
      ]],
    ] as [string, string[], number[]?][]
  ) {
    await expectRefused(ctx, kind, "CLI", label, dir, args, codes);
  }
  kind = "bad processor inputs";
  await writeFile(join(dir, "in.jsonl"), '{"id":1}\n');
  await writeFile(join(dir, "schema.txt"), "{ not json");
  const processorRun = (extra: string[]) => [
    "processor",
    "run",
    ...extra,
    "--dataset",
    "bad",
    "--out",
    join(dir, "p.jsonl"),
  ];
  for (
    const [label, args] of [
      [
        "unknown processor",
        processorRun(["no-such", "--input", join(dir, "in.jsonl")]),
      ],
      [
        "schema not JSON",
        processorRun([
          "jsonl-normalize",
          "--input",
          join(dir, "in.jsonl"),
          "--schema",
          join(dir, "schema.txt"),
        ]),
      ],
      [
        "schema missing",
        processorRun([
          "jsonl-normalize",
          "--input",
          join(dir, "in.jsonl"),
          "--schema",
          join(dir, "nope.json"),
        ]),
      ],
      [
        "checkpoint every 0",
        processorRun(["file-index", "--input", dir, "--checkpoint-every", "0"]),
      ],
      ["dataset name with a slash", [
        "processor",
        "run",
        "file-index",
        "--input",
        dir,
        "--dataset",
        "../x",
        "--out",
        join(dir, "p.jsonl"),
      ]],
    ] as [string, string[]][]
  ) {
    await expectRefused(ctx, kind, "processor", label, dir, args);
  }
  kind = "bad pipeline configs";
  const components =
    new URL("../tests/fixtures/pipeline_components.ts", import.meta.url)
      .pathname;
  for (
    const [label, text] of [
      ["unparsable HOCON", "pipeline { pipeline-name = "],
      [
        "no components",
        `pipeline { pipeline-name = "x", pipeline-components = [] }`,
      ],
      [
        "components not a list",
        `pipeline { pipeline-name = "x", pipeline-components = 5 }`,
      ],
      [
        "unknown component module",
        `pipeline { pipeline-name = "x", pipeline-components = [ { instance-type = "./nope.ts#X", instance-name = a } ] }`,
      ],
      [
        "unknown export",
        `pipeline { pipeline-name = "x", pipeline-components = [ { instance-type = "${components}#Nope", instance-name = a } ] }`,
      ],
      [
        "a null component",
        `pipeline { pipeline-name = "x", pipeline-components = [ null ] }`,
      ],
      [
        "a component without a type",
        `pipeline { pipeline-name = "x", pipeline-components = [ { instance-name = a } ] }`,
      ],
      ["no pipeline block", `other = 1`],
      ["JSON null", `null`],
    ]
  ) {
    const path = join(dir, `bad-${between(ctx, 0, 1e9)}.conf`);
    await writeFile(path, text!);
    await expectRefused(ctx, kind, "pipeline", label!, dir, [
      "pipeline",
      "run",
      path,
    ]);
  }
}

/** Fuzzed CBOR and manifest bytes through the decoders. */
export function fuzzDecoders(ctx: Ctx, runs: number): void {
  const { tally } = ctx;
  const seed = Math.floor(ctx.random() * 2 ** 31);
  const acceptable = (error: unknown) =>
    error instanceof Error &&
    ["SyntaxError", "TypeError", "RangeError", "CorruptLogError", "Error"]
      .includes(error.name) &&
    /^[A-Z]/.test(error.message) &&
    !/Cannot read properties|Maximum call stack|is not a function|Array buffer allocation|Invalid typed array length|undefined/
      .test(error.message);
  const values = fc.jsonValue({ maxDepth: 4 });
  let kind = "fuzzed CBOR chunks";
  const check = (
    label: string,
    bytes: Uint8Array,
    decode: (b: Uint8Array) => unknown,
  ) => {
    const started = performance.now();
    const before = process.memoryUsage().arrayBuffers;
    let error: unknown;
    try {
      decode(bytes);
    } catch (e) {
      error = e;
    }
    const grown = process.memoryUsage().arrayBuffers - before;
    const ms = performance.now() - started;
    const ok = (error === undefined || acceptable(error)) &&
      grown < 64 * 2 ** 20 && ms < 2000;
    tally.add(kind, "store decoders", "inputs");
    tally.add(
      kind,
      "store decoders",
      "crashes or hangs or claimed allocations",
      ok ? 0 : 1,
    );
    if (!ok) {
      tally.find(
        kind,
        "store decoders",
        `${label} (fast-check seed ${seed}): ${
          String(error)
        }; ${grown} bytes, ${ms.toFixed(0)} ms; bytes ${
          Buffer.from(bytes.slice(0, 64)).toString("hex")
        }`,
      );
    }
  };
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
      check("random bytes", bytes, decodeValue);
    }),
    { seed, numRuns: runs },
  );
  fc.assert(
    fc.property(
      values,
      fc.nat(),
      fc.nat(7),
      fc.nat(),
      (value, at, bit, cut) => {
        const bytes = encodeValue(value).slice();
        if (bytes.length === 0) return;
        bytes[at % bytes.length]! ^= 1 << bit;
        check("an encoding with a flipped bit", bytes, decodeValue);
        check(
          "a truncated encoding",
          bytes.subarray(0, cut % bytes.length),
          decodeValue,
        );
      },
    ),
    { seed, numRuns: runs },
  );
  kind = "hostile CBOR (decoder limits)";
  const big = new Uint8Array(6 + 300_000).fill(0xab);
  big.set([0xc2, 0x5a, 0x00, 0x04, 0x93, 0xe0]);
  check("a 300 KB bignum", big, decodeValue);
  for (const head of [0x81, 0xc6]) {
    check(
      "items nested 10,000 deep",
      new Uint8Array(10_000).fill(head),
      decodeValue,
    );
  }
  for (const head of [0x9b, 0xbb, 0x5b]) {
    check(
      "a header claiming 2^40 items",
      new Uint8Array([head, 0, 0, 1, 0, 0, 0, 0, 0, 1]),
      decodeValue,
    );
  }
  kind = "fuzzed manifest bytes";
  const garbage = new Uint8Array(4 << 20);
  for (let i = 0; i < garbage.length; i += 4) {
    garbage.set([0xf0, 0xff, 0x00, 0x00], i);
  }
  const log = newLogBytes({ type: "run" });
  const grown = new Uint8Array(log.length + garbage.length);
  grown.set(log);
  grown.set(garbage, log.length);
  check(
    "4 MiB of plausible garbage after a log",
    grown,
    (b) => scanLog(b, "fuzz.log"),
  );
  fc.assert(
    fc.property(
      fc.array(values, { maxLength: 5 }),
      fc.nat(),
      fc.nat(7),
      fc.uint8Array({ maxLength: 64 }),
      (records, at, bit, tail) => {
        const good = newLogBytes(records[0] ?? { type: "run" });
        const bytes = new Uint8Array(good.length + tail.length);
        bytes.set(good);
        bytes.set(tail, good.length);
        bytes[at % bytes.length]! ^= 1 << bit;
        check(
          "a log with a flipped bit and garbage",
          bytes,
          (b) => scanLog(b, "fuzz.log"),
        );
      },
    ),
    { seed, numRuns: runs },
  );
}
