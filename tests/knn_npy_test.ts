import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "npm:fast-check@^4.3.0";
import {
  encodeNpy,
  matrixFrom,
  parseFvecs,
  parseNpy,
  parseNpyHeader,
  readMatrixFile,
  validateFinite,
  writeNpyFile,
} from "../lib/knn/mod.ts";
import { propertyRuns } from "./test_seed.ts";

/** Builds a .npy file by hand, with any header text and version. */
function rawNpy(
  dict: string,
  data: Uint8Array,
  version = 1,
): Uint8Array {
  const preamble = version === 1 ? 10 : 12;
  const header = new TextEncoder().encode(dict + "\n");
  const out = new Uint8Array(preamble + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set(header, preamble);
  out.set(data, preamble + header.length);
  return out;
}

function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(new Float32Array(values).buffer);
}

function fvecs(rows: number[][]): Uint8Array {
  const size = rows.reduce((s, r) => s + 4 + 4 * r.length, 0);
  const view = new DataView(new ArrayBuffer(size));
  let at = 0;
  for (const row of rows) {
    view.setInt32(at, row.length, true);
    at += 4;
    for (const v of row) {
      view.setFloat32(at, v, true);
      at += 4;
    }
  }
  return new Uint8Array(view.buffer);
}

test("parseNpy() round-trips float32 and float64 matrices", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1, max: 9 }),
      fc.boolean(),
      fc.integer(),
      (rows, cols, f64, seed) => {
        const n = rows * cols;
        const data = f64 ? new Float64Array(n) : new Float32Array(n);
        for (let i = 0; i < n; i++) data[i] = Math.sin(seed + i) * 1e3;
        const bytes = encodeNpy(data, [rows, cols]);
        const header = parseNpyHeader(bytes);
        assert.equal(header.dataOffset % 64, 0);
        assert.equal(header.descr, f64 ? "<f8" : "<f4");
        const m = parseNpy(bytes);
        assert.deepEqual([m.rows, m.cols], [rows, cols]);
        assert.equal(m.data.constructor, data.constructor);
        assert.deepEqual(m.data, data);
      },
    ),
    propertyRuns(100),
  );
});

test("encodeNpy() writes int32 and int64 with NumPy headers", () => {
  const i32 = encodeNpy(new Int32Array([1, -2, 3, 4, 5, 6]), [2, 3]);
  const h32 = parseNpyHeader(i32);
  assert.deepEqual(
    [h32.descr, h32.fortranOrder, h32.shape, h32.version],
    ["<i4", false, [2, 3], [1, 0]],
  );
  const v32 = new DataView(i32.buffer, h32.dataOffset);
  assert.equal(v32.getInt32(4, true), -2);
  const i64 = encodeNpy(new BigInt64Array([0n, 2n ** 40n, -7n]), [3]);
  const h64 = parseNpyHeader(i64);
  assert.deepEqual([h64.descr, h64.shape], ["<i8", [3]]);
  const text = new TextDecoder().decode(i64.subarray(10, h64.dataOffset));
  assert.match(text, /'shape': \(3,\), \}\s*\n$/);
  assert.equal(
    new DataView(i64.buffer, h64.dataOffset).getBigInt64(8, true),
    2n ** 40n,
  );
  assert.equal(i64.length, h64.dataOffset + 24);
  assert.throws(
    () => encodeNpy(new Int32Array(5), [2, 3]),
    /shape \[2, 3\] holds 6 elements, but the array has 5/,
  );
  assert.throws(
    () => encodeNpy(new Uint8Array(4) as unknown as Int32Array, [4]),
    /"Uint8Array" is not supported/,
  );
});

test("parseNpy() reads version 2 and 3 headers", () => {
  const data = f32Bytes([1, 2, 3, 4]);
  const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
  for (const version of [2, 3]) {
    const m = parseNpy(rawNpy(dict, data, version));
    assert.deepEqual(Array.from(m.data), [1, 2, 3, 4]);
  }
});

test("parseNpy() explains what is wrong and how to fix it", () => {
  const data = f32Bytes([1, 2, 3, 4]);
  const cases: [string, Uint8Array, string, RegExp][] = [
    [
      "bad magic",
      new TextEncoder().encode("a,b\n1,2\n"),
      "SyntaxError",
      /bad magic string; a \.npy file starts with/,
    ],
    [
      "int dtype",
      encodeNpy(new Int32Array(4), [2, 2]),
      "TypeError",
      /dtype "<i4" is not supported; supported dtypes are "<f4" and "<f8".*astype/,
    ],
    [
      "big-endian",
      rawNpy(
        "{'descr': '>f8', 'fortran_order': False, 'shape': (1, 1), }",
        data,
      ),
      "TypeError",
      /dtype ">f8" is not supported/,
    ],
    [
      "structured dtype",
      rawNpy(
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1, 1), }",
        data,
      ),
      "TypeError",
      /dtype "\[\('a', '<f4'\)\]" is not supported/,
    ],
    [
      "Fortran order",
      rawNpy(
        "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }",
        data,
      ),
      "TypeError",
      /Fortran order; save it in C order with np\.save\(path, np\.ascontiguousarray\(arr\)\)/,
    ],
    [
      "1-D",
      encodeNpy(new Float32Array(4), [4]),
      "TypeError",
      /shape \(4\) is not two-dimensional; reshape to \(rows, cols\)/,
    ],
    [
      "3-D",
      encodeNpy(new Float64Array(8), [2, 2, 2]),
      "TypeError",
      /shape \(2, 2, 2\) is not two-dimensional/,
    ],
    [
      "truncated data",
      encodeNpy(new Float32Array(6), [2, 3]).subarray(0, 128 + 20),
      "SyntaxError",
      /data is truncated: shape \(2, 3\) "<f4" needs 24 bytes, but only 20 follow/,
    ],
    [
      "truncated header",
      encodeNpy(new Float32Array(6), [2, 3]).subarray(0, 40),
      "SyntaxError",
      /header is truncated/,
    ],
    [
      "version 9",
      rawNpy("{}", data, 9),
      "SyntaxError",
      /format version 9\.0 is not supported/,
    ],
    [
      "no shape",
      rawNpy("{'descr': '<f4', 'fortran_order': False}", data),
      "SyntaxError",
      /lacks "descr", "fortran_order" or "shape"/,
    ],
    [
      "empty",
      encodeNpy(new Float32Array(0), [0, 3]),
      "RangeError",
      /shape \(0, 3\) is empty/,
    ],
  ];
  for (const [label, bytes, name, message] of cases) {
    assert.throws(() => parseNpy(bytes), { name, message }, label);
    assert.throws(() => parseNpy(bytes), /^\w+Error: Cannot parse \.npy: /);
  }
});

test("parseFvecs() reads vectors and rejects ragged or truncated files", () => {
  const m = parseFvecs(fvecs([[1, 2, 3], [4, 5, 6]]));
  assert.deepEqual([m.rows, m.cols], [2, 3]);
  assert.deepEqual(Array.from(m.data), [1, 2, 3, 4, 5, 6]);
  assert.throws(() => parseFvecs(fvecs([[1, 2], [3]])), {
    name: "SyntaxError",
    message:
      "Cannot parse .fvecs: vector 1 has dimension 1, but vector 0 has 2",
  });
  assert.throws(
    () => parseFvecs(fvecs([[1, 2], [3, 4]]).subarray(0, 22)),
    /data is truncated: vector 1 needs 8 bytes of values, but only 6 remain/,
  );
  assert.throws(() => parseFvecs(new Uint8Array(0)), /holds no vectors/);
  assert.throws(
    () => parseFvecs(new Uint8Array([0, 0, 0, 0])),
    /declares dimension 0/,
  );
});

test("readMatrixFile() dispatches on extension and writeNpyFile() is atomic", async () => {
  const dir = await mkdtemp(join(tmpdir(), "cairn-knn-npy-"));
  try {
    const npyPath = join(dir, "m.NPY");
    await writeNpyFile(npyPath, new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]);
    await writeNpyFile(npyPath, new Float32Array([6, 5, 4, 3, 2, 1]), [2, 3]);
    assert.deepEqual(await readdir(dir), ["m.NPY"]);
    const m = await readMatrixFile(npyPath);
    assert.deepEqual([m.rows, m.cols, m.data[0]], [2, 3, 6]);
    const fvecsPath = join(dir, "v.fvecs");
    await writeFile(fvecsPath, fvecs([[1], [2]]));
    assert.equal((await readMatrixFile(fvecsPath)).rows, 2);
    await assert.rejects(readMatrixFile(join(dir, "m.csv")), {
      name: "TypeError",
      message: `Cannot read matrix file "${
        join(dir, "m.csv")
      }": extension ".csv" is not supported; use .npy or .fvecs`,
    });
    const badPath = join(dir, "bad.npy");
    await writeNpyFile(badPath, new Int32Array(4), [2, 2]);
    await assert.rejects(
      readMatrixFile(badPath),
      new RegExp(`Cannot read matrix file ".*bad\\.npy": dtype "<i4"`),
    );
    await assert.rejects(
      writeNpyFile(join(dir, "missing", "x.npy"), new Int32Array(1), [1]),
    );
    assert.deepEqual((await readdir(dir)).sort(), [
      "bad.npy",
      "m.NPY",
      "v.fvecs",
    ]);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("encodeNpy() and parseNpy() agree with NumPy when it is installed", async (t) => {
  const python = ["/usr/bin/python3", "python3"].find((p) =>
    spawnSync(p, ["-c", "import numpy"], { stdio: "ignore" }).status === 0
  );
  if (python === undefined) {
    t.skip("numpy is not installed");
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), "cairn-knn-numpy-"));
  try {
    await writeNpyFile(join(dir, "i8.npy"), new BigInt64Array([5n, -1n]), [2]);
    await writeNpyFile(join(dir, "f4.npy"), new Float32Array([1.5, 2]), [1, 2]);
    const script = [
      "import numpy as np, sys",
      "d = sys.argv[1]",
      "a = np.load(d + '/i8.npy'); assert a.dtype == np.int64 and a.tolist() == [5, -1]",
      "b = np.load(d + '/f4.npy'); assert b.dtype == np.float32 and b.shape == (1, 2)",
      "np.save(d + '/np.npy', np.arange(6, dtype=np.float64).reshape(2, 3))",
      "np.save(d + '/fortran.npy', np.asfortranarray(np.ones((2, 3), np.float32)))",
    ].join("\n");
    const run = spawnSync(python, ["-c", script, dir], { encoding: "utf8" });
    assert.equal(run.status, 0, run.stderr);
    const m = parseNpy(new Uint8Array(await readFile(join(dir, "np.npy"))));
    assert.deepEqual(Array.from(m.data), [0, 1, 2, 3, 4, 5]);
    assert.equal(m.cols, 3);
    await assert.rejects(readMatrixFile(join(dir, "fortran.npy")), /Fortran/);
  } finally {
    await rm(dir, { recursive: true });
  }
});

test("matrixFrom() and validateFinite() check shape and values", () => {
  assert.throws(() => matrixFrom(new Float32Array(7), 2), {
    name: "TypeError",
    message:
      "Cannot create matrix: data length 7 is not a multiple of cols = 2; pass row-major data with 2 values per row",
  });
  assert.throws(() => matrixFrom(new Float32Array(4), 0), RangeError);
  assert.throws(
    () => matrixFrom([1, 2] as unknown as Float32Array, 1),
    /data is "Array", but a Float32Array or Float64Array is required/,
  );
  assert.throws(() => matrixFrom(new Float64Array(0), 4), {
    name: "RangeError",
    message: "Cannot create matrix: it has 0 rows; provide at least one row",
  });
  const m = matrixFrom(new Float32Array([0, 1, -Infinity, 3]), 2);
  assert.throws(() => validateFinite(m, "query matrix"), {
    name: "RangeError",
    message:
      "Cannot use query matrix: row 1 column 0 is -Infinity; remove or impute non-finite values",
  });
});
