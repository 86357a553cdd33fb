import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmod,
  lstat,
  mkdir,
  readdir,
  readFile,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { execFileSync } from "node:child_process";
import { pathToFileURL } from "node:url";
import { join } from "node:path";
import { COMMANDS } from "../cli/commands.ts";
import { openJob } from "../lib/job.ts";
import { openFsStore } from "../store/fs.ts";
import { putValue } from "../store/chunk_store.ts";
import { parseNpyHeader } from "../lib/io/npy.ts";
import { ProgressRenderer } from "../cli/progress.ts";
import { CLI_BIN, runCairn, runCairnEach } from "./cli_command.ts";
import { collectOutput, IS_DENO } from "./child_process.ts";
import { spawn } from "node:child_process";
import { tempDir } from "./temp.ts";

const ESC = "\x1b";
/** A quick demo: 2,000 rows in 4 blocks (9 steps), no artificial delay. */
const QUICK = ["--rows", "2000", "--steps", "4", "--delay", "0"];

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cairn(
  args: string[],
  env: Record<string, string> = {},
): Promise<Result> {
  return runCairn(args, { env: { NO_COLOR: "", CAIRN_DEBUG: "", ...env } });
}

/** `runCairnEach` with this file's environment. */
function cairnEach(lists: string[][]): Promise<Result[]> {
  return runCairnEach(lists, { NO_COLOR: "", CAIRN_DEBUG: "" });
}

/** Run `cairn` on a store and expect an exit code. */
async function expectExit(
  store: string,
  args: string[],
  code: number,
): Promise<Result> {
  const result = await cairn(["--store", store, ...args]);
  assert.equal(
    result.code,
    code,
    `cairn ${
      args.join(" ")
    } exited with ${result.code}, expected ${code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
  );
  return result;
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text.trim().split("\n").filter((l) => l !== "").map((l) =>
    JSON.parse(l)
  );
}

async function chunkFiles(store: string): Promise<string[]> {
  const out: string[] = [];
  for (const prefix of await readdir(join(store, "chunks"))) {
    for (const name of await readdir(join(store, "chunks", prefix))) {
      out.push(join(store, "chunks", prefix, name));
    }
  }
  return out;
}

async function newStore(): Promise<string> {
  const store = join(await tempDir(), "store");
  await expectExit(store, ["demo", ...QUICK], 0);
  return store;
}

test("cairn --help lists every command, --version prints it, no command is a usage error", async () => {
  const help = await cairn(["--help"]);
  assert.equal(help.code, 0);
  for (const c of COMMANDS) {
    assert.match(help.stdout, new RegExp(`\\n  ${c.name} `));
  }
  assert.match(help.stdout, /--wait-lock DURATION/);
  const version = await cairn(["--version"]);
  assert.equal(version.code, 0);
  assert.match(version.stdout, /^cairn \d+\.\d+\.\d+/);
  const none = await cairn([]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /Usage: cairn COMMAND/);
  const helpLs = await cairn(["help", "ls"]);
  assert.equal(helpLs.code, 0);
  assert.match(helpLs.stdout, /Usage: cairn ls/);
});

test("cairn COMMAND --help shows usage, options and examples for every command", async () => {
  const results = await cairnEach(COMMANDS.map((c) => [c.name, "--help"]));
  for (const [i, r] of results.entries()) {
    const c = COMMANDS[i]!;
    assert.equal(r.code, 0, `${c.name} --help: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: cairn ${c.name}`));
    assert.match(r.stdout, /Global options:\n {2}--store PATH/);
    assert.match(r.stdout, /Examples:\n {2}cairn /);
    for (const name of Object.keys(c.options)) {
      assert.match(
        r.stdout,
        new RegExp(`--${name}\\b`),
        `${c.name} --help lists --${name}`,
      );
    }
  }
});

test("cairn usage errors exit 2 with one message and a pointer to --help", async () => {
  const store = join(await tempDir(), "store");
  const cases: [string[], RegExp, string][] = [
    [["bogus"], /Unknown command "bogus"/, "cairn --help"],
    [
      ["ls", "--bogus"],
      /Unknown option "--bogus" for "cairn ls"/,
      "cairn ls --help",
    ],
    [
      ["gc", "--grace", "5x"],
      /Invalid --grace: Cannot parse duration "5x"/,
      "cairn gc --help",
    ],
    [
      ["demo", "--wait-lock", "soon"],
      /Invalid --wait-lock/,
      "cairn demo --help",
    ],
    [
      ["forget", "--keep-within", "2w"],
      /Invalid --keep-within/,
      "cairn forget --help",
    ],
    [["forget"], /Missing a retention policy/, "cairn forget --help"],
    [
      ["forget", "--keep-last", "-2"],
      /Invalid --keep-last "-2"/,
      "cairn forget --help",
    ],
    [
      ["ls", "--json=yes"],
      /--json is a flag and takes no value/,
      "cairn ls --help",
    ],
    [["ls", "--store"], /Missing value for --store/, "cairn ls --help"],
    [["gc", "extra"], /Unexpected argument "extra"/, "cairn gc --help"],
    [
      ["verify", "--read-data", "--read-data-subset", "1/2"],
      /pick one/,
      "cairn verify --help",
    ],
    [
      ["verify", "--read-data-subset", "3/2"],
      /1 <= n <= t/,
      "cairn verify --help",
    ],
    [
      ["cat", "not-a-hash"],
      /expected 64 lowercase hex characters/,
      "cairn cat --help",
    ],
    [
      ["export", "demo", "--format", "xml", "--out", "x"],
      /Invalid --format "xml"/,
      "cairn export --help",
    ],
    [
      ["export", "demo", "--format", "jsonl"],
      /Missing --out/,
      "cairn export --help",
    ],
    [["demo", "--fail-at", "0"], /Invalid --fail-at "0"/, "cairn demo --help"],
    [
      ["demo", "--fail-at", "99", ...QUICK],
      /the demo has 9 steps/,
      "cairn demo --help",
    ],
    [["show"], /Expected one JOB\[\/RUN\]/, "cairn show --help"],
    [["show", "bad/"], /Invalid run "bad\/"/, "cairn show --help"],
    [
      ["unlock", ".hidden"],
      /Cannot use job name "\.hidden"/,
      "cairn unlock --help",
    ],
  ];
  const results = await cairnEach(
    cases.map(([args]) => ["--store", store, ...args]),
  );
  for (const [i, r] of results.entries()) {
    const [args, message, help] = cases[i]!;
    assert.equal(r.code, 2, `cairn ${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^[-0-9:TZ]+ cairn: /, "timestamped off a TTY");
    assert.match(lines[0]!, message);
    // The hint names the program as it was started (cairn, ./dist/cairn, …).
    assert.ok(
      lines[0]!.endsWith(`cairn${help.slice("cairn".length)}" for usage`) &&
        lines[0]!.includes('; run "'),
      lines[0],
    );
    assert.equal(r.stdout, "");
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("cairn input files that do not exist exit 2 naming the path, for every family", async () => {
  const dir = await tempDir();
  const store = join(dir, "store");
  const missing = join(dir, "missing.npy");
  const cases: [string[], string, RegExp][] = [
    [
      ["knn", "--ref", missing, "--k", "3", "--out", join(dir, "o")],
      missing,
      /does not exist; check the path/,
    ],
    [
      ["knn-graph", "--ref", missing, "--k", "3", "--out", join(dir, "o")],
      missing,
      /does not exist; check the path/,
    ],
    [
      ["radius", "--ref", missing, "--radius", "1", "--out", join(dir, "o")],
      missing,
      /does not exist; check the path/,
    ],
    [
      ["knn-plan", "--ref", missing, "--k", "3"],
      missing,
      /does not exist; check the path/,
    ],
    [
      ["knn-recall", "--truth", missing, "--candidates", missing],
      missing,
      /does not exist; check the path/,
    ],
    [
      [
        "knn-rerank",
        "--ref",
        missing,
        "--candidates",
        missing,
        "--k",
        "2",
        "--out",
        join(dir, "o"),
      ],
      missing,
      /does not exist; check the path/,
    ],
    [
      ["pipeline", "run", join(dir, "etl.conf")],
      join(dir, "etl.conf"),
      /does not exist; check the path/,
    ],
    [["pipeline", "run", dir], dir, /is a directory; pass a \.conf/],
    [
      [
        "processor",
        "run",
        "file-index",
        "--dataset",
        "d",
        "--input",
        join(dir, "in"),
        "--out",
        join(dir, "o.jsonl"),
      ],
      join(dir, "in"),
      /does not exist; pass an existing file or directory/,
    ],
    [
      ["dataflow", "run", join(dir, "flow.ts")],
      join(dir, "flow.ts"),
      /Cannot load dataflow module/,
    ],
  ];
  const results = await cairnEach(
    cases.map(([args]) => ["--store", store, ...args]),
  );
  for (const [i, r] of results.entries()) {
    const [args, path, fix] = cases[i]!;
    assert.equal(r.code, 2, `cairn ${args.join(" ")}: ${r.stderr}`);
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0]!.includes(`"${path}"`), `names the path: ${lines[0]}`);
    assert.match(lines[0]!, fix);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
  // An output file in a directory that does not exist names the directory.
  assert.equal((await cairn(["--store", store, "demo", ...QUICK])).code, 0);
  const out = join(dir, "no-such-dir", "rows.csv");
  const r = await cairn([
    "--store",
    store,
    "export",
    "demo",
    "--format",
    "csv",
    "--out",
    out,
  ]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /its directory ".*no-such-dir" does not exist; create it or fix the path/,
  );
  assert.doesNotMatch(r.stderr, /\.tmp/, "the temp file is not named");
});

test("cairn --json reports errors as a JSON line; --color and --no-color decide colour", async () => {
  const store = join(await tempDir(), "store");
  const json = await cairn(["--store", store, "--json", "ls", "--bogus"]);
  assert.equal(json.code, 2);
  const [line] = jsonLines(json.stderr);
  assert.equal(line!.type, "error");
  assert.equal(line!.exitCode, 2);
  assert.match(String(line!.message), /Unknown option/);
  const colored = await cairn(["--color", "ls", "--bogus"]);
  assert.match(
    colored.stderr,
    new RegExp(`^[-0-9:TZ]+ \x1b\\[31mcairn:\x1b\\[39m `),
  );
  const plain = await cairn(["--color", "--no-color", "ls", "--bogus"]);
  assert.ok(!plain.stderr.includes(ESC));
  const noColorEnv = await cairn(["ls", "--bogus"], { NO_COLOR: "1" });
  assert.ok(!noColorEnv.stderr.includes(ESC));
  const debug = await cairn(["--store", join(store, "missing"), "ls"], {
    CAIRN_DEBUG: "1",
  });
  assert.equal(debug.code, 2);
  assert.match(
    debug.stderr,
    /^(?:[-0-9:TZ]+ )?cairn: Cannot open store .*there is no cairn store there/,
  );
  assert.match(debug.stderr, /\n\s+at /, "CAIRN_DEBUG=1 prints the stack");
});

test("cairn demo runs, reruns at once, and resumes after --fail-at", async () => {
  const store = join(await tempDir(), "store");
  const first = await expectExit(store, ["demo", ...QUICK], 0);
  assert.match(
    first.stdout,
    /demo: run \S+ completed: 2,000 rows in 4 blocks \(9 steps: 9 computed, 0 reused\)/,
  );
  assert.match(first.stderr, /cairn ls --store/);
  assert.match(
    first.stderr,
    /cairn export demo --format jsonl --out demo\.jsonl/,
  );

  const again = await expectExit(store, ["demo", ...QUICK, "--json"], 0);
  const report = JSON.parse(again.stdout);
  assert.equal(report.alreadyCompleted, true);
  assert.equal(report.computed, 0);
  assert.equal(report.reused, 9);
  assert.equal(report.summary.rows, 2000);
  const events = jsonLines(again.stderr);
  assert.deepEqual(
    [...new Set(events.map((e) => e.type))],
    ["run-start", "step-done", "run-end"],
    "a rerun of a completed run still ends with run-end",
  );

  const failed = await expectExit(store, [
    "demo",
    ...QUICK,
    "--new-run",
    "--fail-at",
    "4",
  ], 1);
  const lines = failed.stderr.trim().split("\n");
  assert.match(
    lines.at(-1)!,
    /^(?:[-0-9:TZ]+ )?cairn: Job "demo" failed at step "stats-02": Demo failure injected at step 4 by --fail-at; the steps before it are kept, run "\S*cairn demo --store \S+" to resume$/,
  );
  assert.doesNotMatch(failed.stderr, /\n\s+at /);
  const resumed = JSON.parse(
    (await expectExit(store, ["demo", ...QUICK, "--json"], 0)).stdout,
  );
  assert.equal(resumed.alreadyCompleted, false);
  assert.equal(resumed.reused, 3);
  assert.equal(resumed.computed, 6);
  assert.deepEqual(resumed.summary, report.summary, "same data, same summary");

  const shown = JSON.parse(
    (await expectExit(store, ["show", "demo", "--json"], 0)).stdout,
  );
  assert.equal(shown.run, resumed.run);
  assert.equal(shown.status, "completed");
  assert.equal(shown.attempts, 2);
  assert.equal(shown.failures.length, 1);
  assert.equal(shown.failures[0].key, "stats-02");
  assert.deepEqual(shown.summary, report.summary);

  const quiet = await expectExit(store, ["demo", ...QUICK, "--quiet"], 0);
  assert.equal(quiet.stderr, "", "--quiet prints nothing on stderr");
});

test("cairn demo exits 3 when the job is locked, and --wait-lock waits for the holder", async () => {
  const store = join(await tempDir(), "store");
  const fsStore = await openFsStore(store);
  const lock = await fsStore.lock("demo");
  try {
    const locked = await expectExit(store, ["demo", ...QUICK], 3);
    assert.match(
      locked.stderr,
      new RegExp(
        `^(?:[-0-9:TZ]+ )?cairn: Cannot open job "demo": locked by pid ${process.pid} on host`,
      ),
    );
    assert.match(locked.stderr, /cairn unlock demo/);
    const lockedJson = await expectExit(store, ["demo", ...QUICK, "--json"], 3);
    assert.equal(jsonLines(lockedJson.stderr).at(-1)!.exitCode, 3);
    setTimeout(() => lock.release(), 700);
    const started = Date.now();
    const waited = await expectExit(store, [
      "demo",
      ...QUICK,
      "--wait-lock",
      "5s",
    ], 0);
    assert.ok(Date.now() - started >= 600, "it waited for the holder");
    assert.match(waited.stdout, /completed/);
  } finally {
    await lock.release();
  }
});

test("cairn unlock refuses a live holder with exit 3, removes it with --force, and says when there is none", async () => {
  const store = join(await tempDir(), "store");
  const fsStore = await openFsStore(store);
  const lock = await fsStore.lock("nightly", { command: "test holder" });
  const refused = await expectExit(store, ["unlock", "nightly"], 3);
  assert.match(
    refused.stderr,
    /^(?:[-0-9:TZ]+ )?cairn: Cannot unlock job "nightly": pid \d+ on host "[^"]+" holds it and looks alive/,
  );
  assert.match(
    refused.stderr,
    /; if you know the holder is gone .*, pass --force\n$/,
  );
  await lock.refresh();
  assert.equal(lock.lost, false, "a refused unlock leaves the lock alone");
  const removed = await expectExit(store, ["unlock", "--force", "nightly"], 0);
  assert.match(
    removed.stdout,
    new RegExp(
      `^Removed the lock of job "nightly": pid ${process.pid} on host .*command "test holder"`,
    ),
  );
  assert.match(removed.stderr, /looked alive/);
  await lock.refresh();
  assert.equal(lock.lost, true);
  await lock.release();
  const none = await expectExit(store, ["unlock", "nightly", "--json"], 0);
  assert.deepEqual(JSON.parse(none.stdout), {
    job: "nightly",
    removed: null,
    holderWasAlive: false,
    staleReason: null,
  });
  await expectExit(store, ["unlock"], 2);
});

test("cairn ls shows runs for people and as JSON; a run without a live holder is interrupted", async () => {
  const store = await newStore();
  const human = await expectExit(store, ["ls"], 0);
  const [header, row] = human.stdout.trim().split("\n");
  assert.match(
    header!,
    /^JOB\s+RUN\s+KIND\s+STATUS\s+STEPS\s+CHUNKS\s+SIZE\s+STARTED$/,
  );
  assert.match(
    row!,
    /^demo\s+\S+\s+demo\s+completed\s+9\/9\s+9\s+[\d.]+ KiB\s+\d{4}-/,
  );

  // A run left open by this process: running while its lock is held, interrupted once it is broken.
  const job = await openJob("open-run", { store, kind: "test", total: 3 });
  await job.step("a", () => 1);
  let [entry] = JSON.parse(
    (await expectExit(store, ["ls", "open-run", "--json"], 0)).stdout,
  );
  assert.equal(entry.status, "running");
  assert.equal(entry.kind, "test");
  assert.equal(entry.steps, 1);
  assert.equal(entry.total, 3);
  assert.equal(entry.lock.pid, process.pid);
  await (await openFsStore(store)).breakLock("open-run", { force: true });
  [entry] = JSON.parse(
    (await expectExit(store, ["ls", "open-run", "--json"], 0)).stdout,
  );
  assert.equal(entry.status, "interrupted");
  assert.equal(entry.lock, null);
  // Fenced: the writer whose lock was broken cannot append its end record.
  await assert.rejects(
    job.close(),
    (e: unknown) => (e as Error).name === "LockLostError",
  );

  const all = JSON.parse(
    (await expectExit(store, ["ls", "--json", "--latest"], 0)).stdout,
  );
  assert.deepEqual(all.map((e: { job: string }) => e.job), [
    "demo",
    "open-run",
  ]);
  for (const e of all) {
    for (
      const key of [
        "run",
        "kind",
        "status",
        "steps",
        "chunks",
        "bytes",
        "startedAt",
      ]
    ) {
      assert.ok(key in e, `ls --json has ${key}`);
    }
  }
  const missing = await expectExit(store, ["ls", "nosuch"], 0);
  assert.match(missing.stderr, /Job "nosuch" has no runs/);
  await expectExit(join(store, "nothing-here"), ["ls"], 2);
});

test("cairn show prints a run's header, steps (elided unless --all), failures and summary", async () => {
  const store = join(await tempDir(), "store");
  await expectExit(store, [
    "demo",
    "--rows",
    "1200",
    "--steps",
    "12",
    "--delay",
    "0",
    "--fail-at",
    "3",
  ], 1);
  await expectExit(store, [
    "demo",
    "--rows",
    "1200",
    "--steps",
    "12",
    "--delay",
    "0",
  ], 0);
  const shown = await expectExit(store, ["show", "demo"], 0);
  assert.match(
    shown.stdout,
    /^Job: {7}demo\nRun: {7}\S+\nKind: {6}demo\nStatus: {4}completed\n/,
  );
  assert.match(
    shown.stdout,
    /Config: {4}\{"dims":8,"rows":1200,"seed":42,"blocks":12\}/,
  );
  assert.match(shown.stdout, /Attempts: {2}2\n/);
  assert.match(shown.stdout, /Steps: {5}25\/25 done, 25 chunks/);
  assert.match(shown.stdout, /\nKEY\s+DURATION\s+ATTEMPT\s+MEMO\s+STATS\n/);
  assert.match(shown.stdout, /… 5 more steps \(--all shows every step\)/);
  assert.match(
    shown.stdout,
    /Failures \(1\):\n {2}rows-02 attempt 1 at \S+: Demo failure injected at step 3 by --fail-at/,
  );
  assert.match(shown.stdout, /Summary:\n {2}\{\n/);
  const all = await expectExit(store, ["show", "demo", "--all"], 0);
  assert.doesNotMatch(all.stdout, /more steps/);
  assert.equal(all.stdout.match(/^(rows|stats)-\d\d /gm)?.length, 24);

  const json = JSON.parse(
    (await expectExit(store, ["show", "--json", "demo"], 0)).stdout,
  );
  const byPrefix = await expectExit(store, [
    "show",
    `demo/${json.run.slice(0, 12)}`,
    "--json",
  ], 0);
  assert.equal(JSON.parse(byPrefix.stdout).run, json.run);
  assert.equal(json.steps.length, 25);
  assert.deepEqual(Object.keys(json.steps[1].stats), ["mean", "checksum"]);

  const noJob = await expectExit(store, ["show", "nosuch"], 2);
  assert.match(
    noJob.stderr,
    /^(?:[-0-9:TZ]+ )?cairn: Cannot find job "nosuch": it has no runs/,
  );
  const noRun = await expectExit(store, ["show", "demo/zzz"], 2);
  assert.match(
    noRun.stderr,
    /^(?:[-0-9:TZ]+ )?cairn: Cannot find run "zzz" of job "demo"/,
  );
});

test("cairn cat prints a chunk as JSON, and --raw its bytes", async () => {
  const store = await newStore();
  const shown = JSON.parse(
    (await expectExit(store, ["show", "demo", "--json"], 0)).stdout,
  );
  const stats = shown.steps.find((s: { key: string }) => s.key === "stats-01");
  const hash = stats.refs[0].hash;
  const cat = await expectExit(store, ["cat", hash], 0);
  const value = JSON.parse(cat.stdout);
  assert.equal(value.block, 1);
  assert.equal(value.rows, 500);
  assert.equal(typeof value.checksum, "string");
  const rowsHash =
    shown.steps.find((s: { key: string }) => s.key === "rows-01").refs[0].hash;
  const rows = JSON.parse(
    (await expectExit(store, ["cat", rowsHash, "--json"], 0)).stdout,
  );
  assert.equal(rows.length, 500);
  assert.equal(
    rows[0].length,
    8,
    "a Float32Array row becomes an array of numbers",
  );
  const raw = await expectExit(store, ["cat", hash, "--raw"], 0);
  assert.ok(raw.stdout.length > 0);
  const missing = await expectExit(store, ["cat", "0".repeat(64)], 1);
  assert.match(
    missing.stderr,
    /^(?:[-0-9:TZ]+ )?cairn: Cannot read chunk "0{64}": it is not in the store/,
  );
});

test("cairn cat accepts a unique hash prefix; an ambiguous one exits 2 listing candidates", async () => {
  const store = await newStore();
  const shown = JSON.parse(
    (await expectExit(store, ["show", "demo", "--json"], 0)).stdout,
  );
  const hashes: string[] = shown.steps.flatMap((
    s: { refs: { hash: string }[] },
  ) => s.refs.map((r) => r.hash));
  const hash = hashes[0]!;
  // The shortest prefix no other chunk shares.
  let n = 1;
  while (hashes.some((h) => h !== hash && h.startsWith(hash.slice(0, n)))) n++;
  const full = await expectExit(store, ["cat", hash, "--json"], 0);
  const short = await expectExit(
    store,
    ["cat", hash.slice(0, n + 2), "--json"],
    0,
  );
  assert.equal(short.stdout, full.stdout);
  // 17 chunks: two share their first hex digit (pigeonhole).
  const chunks = (await openFsStore(store)).chunks;
  const extra: string[] = [];
  for (let i = 0; i < 17; i++) extra.push((await putValue(chunks, { i })).hash);
  const all = [...new Set([...hashes, ...extra])];
  const digit = [..."0123456789abcdef"].find((d) =>
    all.filter((h) => h.startsWith(d)).length > 1
  )!;
  const candidates = all.filter((h) => h.startsWith(digit)).sort();
  const ambiguous = await expectExit(store, ["cat", digit], 2);
  assert.match(
    ambiguous.stderr,
    new RegExp(
      `^(?:[-0-9:TZ]+ )?cairn: Ambiguous chunk "${digit}": it starts ${candidates.length} chunk hashes \\(${
        candidates[0]
      }`,
    ),
  );
  const none = await expectExit(store, ["cat", "zz"], 2);
  assert.match(
    none.stderr,
    /expected 64 lowercase hex characters, or a unique prefix/,
  );
});

test("cairn export writes jsonl, csv and npy atomically, and explains unsuitable outputs", async () => {
  const store = await newStore();
  const dir = await tempDir();
  const jsonl = join(dir, "demo.jsonl");
  await expectExit(store, [
    "export",
    "demo",
    "--format",
    "jsonl",
    "--out",
    jsonl,
  ], 0);
  const lines = jsonLines(await readFile(jsonl, "utf8"));
  assert.deepEqual(
    lines.map((l) => l.key),
    [
      "rows-01",
      "rows-02",
      "rows-03",
      "rows-04",
      "stats-01",
      "stats-02",
      "stats-03",
      "stats-04",
      "summary",
    ],
  );
  assert.equal((lines[0]!.value as number[][]).length, 500);

  const csv = join(dir, "stats.csv");
  const csvRun = await expectExit(store, [
    "export",
    "demo",
    "--format",
    "csv",
    "--step",
    "stats-*",
    "--step",
    "summary",
    "--out",
    csv,
  ], 0);
  assert.match(csvRun.stdout, /Wrote 5 records from 5 steps/);
  const rows = (await readFile(csv, "utf8")).trim().split("\r\n");
  assert.equal(rows.length, 6);
  assert.match(rows[0]!, /^step,/);
  assert.ok(rows[0]!.split(",").includes("checksum"));
  assert.match(rows[5]!, /^summary,/);

  const npy = join(dir, "rows.npy");
  await expectExit(store, [
    "export",
    "demo",
    "--format",
    "npy",
    "--step",
    "rows-*",
    "--out",
    npy,
  ], 0);
  const header = parseNpyHeader(new Uint8Array(await readFile(npy)));
  assert.equal(header.descr, "<f4");
  assert.deepEqual(header.shape, [2000, 8]);

  const stdout = await expectExit(store, [
    "export",
    "demo",
    "--format",
    "jsonl",
    "--step",
    "summary",
    "--out",
    "-",
  ], 0);
  assert.equal(JSON.parse(stdout.stdout).key, "summary");

  const bad = join(dir, "bad.npy");
  const mixed = await expectExit(store, [
    "export",
    "demo",
    "--format",
    "npy",
    "--out",
    bad,
  ], 2);
  assert.match(
    mixed.stderr,
    /^(?:[-0-9:TZ]+ )?cairn: Cannot export step "stats-01" as npy: its output is an object/,
  );
  const nested = await expectExit(store, [
    "export",
    "demo",
    "--format",
    "csv",
    "--step",
    "nope-*",
    "--out",
    bad,
  ], 2);
  assert.match(nested.stderr, /no step key matches "nope-\*"/);
  assert.deepEqual(
    (await readdir(dir)).sort(),
    ["demo.jsonl", "rows.npy", "stats.csv"],
    "failed exports leave no file, not even a temp file",
  );
});

test("cairn knn runs a job on exported demo rows, a rerun returns at once, and ls and verify see it", async () => {
  const store = await newStore();
  const dir = await tempDir();
  const rows = join(dir, "rows.npy");
  await expectExit(store, [
    "export",
    "demo",
    "--format",
    "npy",
    "--step",
    "rows-*",
    "--out",
    rows,
  ], 0);
  const out = join(dir, "knn");
  const args = ["knn", "--ref", rows, "--k", "3", "--out", out, "--json"];
  const first = JSON.parse((await expectExit(store, args, 0)).stdout);
  assert.equal(first.alreadyCompleted, false);
  const index = await readFile(join(out, "index.npy"));
  const header = parseNpyHeader(new Uint8Array(index));
  assert.deepEqual(header.shape, [2000, 3]);
  const again = JSON.parse((await expectExit(store, args, 0)).stdout);
  assert.equal(again.alreadyCompleted, true);
  assert.equal(again.run, first.run);
  assert.deepEqual(await readFile(join(out, "index.npy")), index);
  const runs = JSON.parse(
    (await expectExit(store, ["ls", "--json", "--latest"], 0)).stdout,
  );
  assert.deepEqual(
    runs.map((r: { kind: string; status: string }) => [r.kind, r.status]),
    [["demo", "completed"], ["knn", "completed"]],
  );
  await expectExit(store, ["verify", "--read-data"], 0);

  // Another job into the same --out is refused without --overwrite; nothing is replaced.
  const other = ["knn", "--ref", rows, "--k", "2", "--out", out];
  const refused = await expectExit(store, other, 2);
  assert.match(
    refused.stderr,
    new RegExp(
      `Refusing to write into --out "${out}": it holds 2 \\.npy file\\(s\\) \\(.*\\) and they are the results of job "${first.job}"`,
    ),
  );
  assert.match(refused.stderr, /pass --overwrite to replace them/);
  assert.deepEqual(await readFile(join(out, "index.npy")), index);
  await expectExit(store, [...other, "--overwrite"], 0);
  assert.deepEqual(
    parseNpyHeader(new Uint8Array(await readFile(join(out, "index.npy"))))
      .shape,
    [2000, 2],
  );
  // Files cairn did not write are refused too.
  const foreign = join(dir, "foreign");
  await mkdir(foreign);
  await writeFile(join(foreign, "index.npy"), "not mine");
  const unknown = await expectExit(store, [
    "knn",
    "--ref",
    rows,
    "--k",
    "2",
    "--out",
    foreign,
  ], 2);
  assert.match(unknown.stderr, /cairn did not write them/);
  assert.equal(await readFile(join(foreign, "index.npy"), "utf8"), "not mine");
});

test("cairn verify passes a healthy store, exits 4 naming a corrupt or missing chunk and its run", async () => {
  const store = await newStore();
  const ok = await expectExit(store, ["verify", "--read-data"], 0);
  assert.match(
    ok.stdout,
    /Checked 1 job, 1 run, 9 chunks; re-hashed 9 chunks/,
  );
  assert.match(ok.stdout, /No problems found/);
  const subset = JSON.parse(
    (await expectExit(store, [
      "verify",
      "--read-data-subset",
      "1/1",
      "--json",
      "demo",
    ], 0)).stdout,
  );
  assert.equal(subset.chunksRead, 9);
  assert.equal(subset.ok, true);

  const shown = JSON.parse(
    (await expectExit(store, ["show", "demo", "--json"], 0)).stdout,
  );
  const victim =
    shown.steps.find((s: { key: string }) => s.key === "stats-02").refs[0].hash;
  const path = join(store, "chunks", victim.slice(0, 2), victim);
  const bytes = new Uint8Array(await readFile(path));
  bytes[bytes.length - 1]! ^= 0xff;
  await chmod(path, 0o644);
  await writeFile(path, bytes);

  await expectExit(store, ["verify"], 0); // same size: only re-hashing finds it
  const corrupt = await expectExit(store, ["verify", "--read-data"], 4);
  assert.match(
    corrupt.stdout,
    new RegExp(`corrupt-chunk demo/${shown.run}: chunk "${victim}" hashes to`),
  );
  assert.match(corrupt.stdout, /Found 1 problem: 1 damaged chunk in 1 run/);
  assert.match(corrupt.stderr, /The store has problems/);
  const report = JSON.parse(
    (await expectExit(store, ["verify", "--read-data", "--json"], 4)).stdout,
  );
  assert.equal(report.ok, false);
  assert.deepEqual(
    report.problems.map((
      p: { kind: string; hash: string },
    ) => [p.kind, p.hash]),
    [["corrupt-chunk", victim]],
  );

  // Rerunning the job recomputes the damaged step and stores a good copy.
  const repaired = await expectExit(store, ["demo", ...QUICK], 0);
  assert.match(
    repaired.stderr,
    /Step "stats-02" of job "demo" lost its output/,
  );
  await expectExit(store, ["verify", "--read-data"], 0);

  await rm(path);
  const missing = await expectExit(store, ["verify"], 4);
  assert.match(
    missing.stdout,
    new RegExp(`missing-chunk demo/${shown.run}: chunk "${victim}" is missing`),
  );
  await expectExit(store, ["demo", ...QUICK], 0);
  await expectExit(store, ["verify", "--read-data"], 0);
});

test("cairn forget keeps what the policy names, then gc sweeps what only forgotten runs referenced", async () => {
  const store = join(await tempDir(), "store");
  for (const rows of ["1000", "1100", "1200"]) {
    await expectExit(store, [
      "demo",
      "--job",
      "f",
      "--new-run",
      "--rows",
      rows,
      "--steps",
      "3",
      "--delay",
      "0",
    ], 0);
  }
  await expectExit(store, ["demo", ...QUICK], 0);
  const before = (await chunkFiles(store)).length;

  const dry = await expectExit(store, [
    "forget",
    "--keep-last",
    "1",
    "--dry-run",
    "f",
  ], 0);
  assert.match(dry.stdout, /Would keep 1 run, would remove 2/);
  assert.match(dry.stdout, /\bkeep\s+last\b/);
  assert.match(dry.stderr, /Dry run: nothing was deleted/);
  const dryJson = JSON.parse(
    (await expectExit(store, [
      "forget",
      "--keep-last",
      "1",
      "--dry-run",
      "--json",
    ], 0)).stdout,
  );
  assert.equal(dryJson.dryRun, true);
  assert.equal(dryJson.remove.length, 2);
  assert.equal(
    JSON.parse((await expectExit(store, ["ls", "f", "--json"], 0)).stdout)
      .length,
    3,
  );

  const kept = await expectExit(store, [
    "forget",
    "--keep-within",
    "1h",
    "--json",
  ], 0);
  assert.equal(JSON.parse(kept.stdout).remove.length, 0);
  const forgot = await expectExit(
    store,
    ["forget", "--keep-last", "1", "f"],
    0,
  );
  assert.match(forgot.stdout, /Kept 1 run, removed 2/);
  assert.match(forgot.stderr, /Run "\S*cairn gc"/);
  const left = JSON.parse(
    (await expectExit(store, ["ls", "f", "--json"], 0)).stdout,
  );
  assert.equal(left.length, 1);

  // No job holds a lock: forget, then gc reclaims at once, with no flag.
  const dryGc = JSON.parse(
    (await expectExit(store, ["gc", "--dry-run", "--json"], 0)).stdout,
  );
  assert.ok(dryGc.swept > 0, "forget, then gc reclaims without --grace");
  assert.equal(dryGc.appliedGraceMs, 0);
  assert.equal((await chunkFiles(store)).length, before);
  const gc = await expectExit(store, ["gc"], 0);
  assert.match(
    gc.stdout,
    new RegExp(`Deleted ${dryGc.swept} unreferenced chunks`),
  );
  assert.equal((await chunkFiles(store)).length, before - dryGc.swept);
  await expectExit(store, ["verify", "--read-data"], 0);
  const rerun = JSON.parse(
    (await expectExit(store, ["demo", "--json", ...QUICK], 0)).stdout,
  );
  assert.equal(rerun.alreadyCompleted, true, "kept runs still read back");
});

test("ProgressRenderer draws a throttled bar on a TTY and clears it; off a TTY it logs at most every interval", () => {
  let now = 0;
  let text = "";
  const stream = {
    write: (s: string) => (text += s),
    isTTY: true,
    columns: 100,
  };
  const events = (progress: ProgressRenderer) => {
    progress.onEvent({
      type: "run-start",
      job: "j",
      run: "r",
      resumed: false,
      done: 0,
      total: 10,
    });
    for (let i = 1; i <= 10; i++) {
      now += 400;
      progress.onEvent({
        type: "step-done",
        job: "j",
        key: `k${i}`,
        cached: false,
        durationMs: 400,
        done: i,
        total: 10,
      });
      if (i === 5) progress.message("warning", "half way");
    }
    progress.onEvent({
      type: "run-end",
      job: "j",
      run: "r",
      status: "completed",
      done: 10,
    });
    progress.finish();
  };
  events(
    new ProgressRenderer({
      mode: "tty",
      stream,
      color: false,
      now: () => now,
      redrawMs: 1000,
    }),
  );
  const draws = text.split("\r").filter((s) => s.startsWith("j ["));
  assert.ok(
    draws.length >= 4 && draws.length <= 6,
    `throttled: ${draws.length} redraws`,
  );
  assert.match(
    text,
    /j \[##########----------\] 5\/10 steps \(50%\), 2\.5 steps\/s, ETA 2\.0s/,
  );
  assert.ok(
    text.includes(`\r${ESC}[Kwarning: half way\n`),
    "a message clears the bar first",
  );
  assert.ok(
    text.endsWith("j: completed run r: 10 steps in 4.0s\n"),
    JSON.stringify(text.slice(-80)),
  );

  text = "";
  now = 0;
  events(
    new ProgressRenderer({
      mode: "log",
      stream: { ...stream, isTTY: false },
      color: false,
      now: () => now,
      logIntervalMs: 1500,
    }),
  );
  const lines = text.trim().split("\n");
  assert.ok(!text.includes("\r"), "no bar off a TTY");
  assert.match(
    lines[0]!,
    /^1970-01-01T00:00:00Z j: started run r \(10 steps\)$/,
  );
  assert.deepEqual(
    lines.filter((l) => / j: \d+\/10 steps/.test(l)).length,
    2,
    lines.join("\n"),
  );
  assert.match(
    lines.at(-1)!,
    /^1970-01-01T00:00:04Z j: completed run r: 10 steps in 4\.0s$/,
  );

  text = "";
  events(
    new ProgressRenderer({
      mode: "quiet",
      stream,
      color: false,
      now: () => now,
    }),
  );
  assert.equal(text, "warning: half way\n");
});

test("cairn export --out never replaces a symlink, FIFO or device: exit 2, target untouched", async () => {
  const store = await newStore();
  const dir = await tempDir();
  const target = join(dir, "target.txt");
  await writeFile(target, "keep me");
  const link = join(dir, "link.jsonl");
  await symlink(target, link);
  const fifo = join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  const cases: [string, RegExp][] = [
    [link, /it is a symbolic link, not a regular file/],
    [fifo, /it is a FIFO, not a regular file/],
    ["/dev/null", /it is a device, not a regular file/],
    [dir, /it is a directory, not a regular file/],
  ];
  for (const [out, message] of cases) {
    const r = await expectExit(store, [
      "export",
      "demo",
      "--format",
      "jsonl",
      "--out",
      out,
    ], 2);
    assert.match(r.stderr, message);
    assert.match(r.stderr, new RegExp(`Cannot export to "${out}"`));
  }
  assert.ok(
    (await lstat(link)).isSymbolicLink(),
    "the symlink is still a symlink",
  );
  assert.equal(await readFile(target, "utf8"), "keep me");
  assert.ok((await lstat(fifo)).isFIFO(), "the FIFO is still a FIFO");
  assert.ok((await lstat("/dev/null")).isCharacterDevice());
  const file = join(dir, "plain.jsonl");
  await writeFile(file, "old");
  await expectExit(store, [
    "export",
    "demo",
    "--format",
    "jsonl",
    "--out",
    file,
  ], 0);
  assert.match(await readFile(file, "utf8"), /^\{"key":/);
});

test("cairn --store: a file, a missing store, file:// URLs and unsupported schemes give clear messages", async () => {
  const dir = await tempDir();
  const file = join(dir, "a-file");
  await writeFile(file, "x");
  const [onFile, demoOnFile, under, gs] = await cairnEach([
    ["--store", file, "ls"],
    ["--store", file, "demo", ...QUICK],
    ["--store", join(file, "sub"), "demo", ...QUICK],
    ["--store", "gs://bucket/x", "ls"],
  ]);
  for (const r of [onFile!, demoOnFile!]) {
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^(?:[-0-9:TZ]+ )?cairn: Cannot open store "${file}": it is a file, not a directory`,
      ),
    );
    assert.doesNotMatch(r.stderr, /ENOTDIR|EEXIST/);
  }
  assert.equal(under!.code, 2, under!.stderr);
  assert.match(under!.stderr, /a part of the path is a file, not a directory/);
  assert.equal(gs!.code, 2);
  assert.match(gs!.stderr, /the "gs:\/\/" scheme is not supported/);
  // s3:// is a store; without credentials it names them.
  const s3 = await cairn(["--store", "s3://bucket/x", "ls"], {
    AWS_ACCESS_KEY_ID: "",
    AWS_SECRET_ACCESS_KEY: "",
  });
  assert.equal(s3.code, 2, s3.stderr);
  assert.match(s3.stderr, /set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/);
  const url = pathToFileURL(join(dir, "by-url")).href;
  await expectExit(url, ["demo", ...QUICK, "--quiet"], 0);
  assert.ok((await readdir(join(dir, "by-url"))).includes("config"));
  const listed = await expectExit(url, ["ls", "--json"], 0);
  assert.equal(JSON.parse(listed.stdout)[0].job, "demo");
  await mkdir(join(dir, "empty"));
  await expectExit(join(dir, "empty"), ["ls"], 2);
});

/** The commands in the "Next, try:" block the demo prints on stderr. */
function demoHints(stderr: string): string[] {
  const at = stderr.indexOf("Next, try:");
  assert.ok(at >= 0, stderr);
  return stderr.slice(at).split("\n").slice(1)
    .map((l) => l.replace(/^\d{4}-\d\d-\d\dT\S+Z /, ""))
    .filter((l) => l.startsWith("  "))
    .map((l) => l.trim().split(/\s{2,}/)[0]!);
}

test(
  "cairn demo prints hints that run as written: via npm run and via scripts/cairn",
  {
    // npm run and scripts/cairn start Deno whatever runs the tests: under
    // Bun this would repeat the Deno run exactly.
    skip: CLI_BIN !== undefined || !IS_DENO,
  },
  async () => {
    const root = new URL("..", import.meta.url).pathname;
    const dir = await tempDir();
    for (
      const [how, start] of [
        ["npm", `npm run --silent demo -- --store ${join(dir, "npm")}`],
        ["script", `scripts/cairn demo --store ${join(dir, "script")}`],
      ] as const
    ) {
      const demo = await runShell(`${start} ${QUICK.join(" ")}`, root);
      assert.equal(demo.code, 0, demo.stderr);
      const hints = demoHints(demo.stderr);
      assert.equal(hints.length, 4, `${how}: ${demo.stderr}`);
      for (const hint of hints) {
        assert.ok(
          hint.startsWith(
            how === "npm" ? "npm run cairn -- " : "scripts/cairn ",
          ),
          hint,
        );
        const r = await runShell(
          hint.replace(/--out (\S+)/, `--out ${dir}/$1`),
          root,
        );
        assert.equal(r.code, 0, `${hint}: ${r.stderr}`);
      }
    }
  },
);

/** Run a shell command line in `cwd` with node_modules/.bin on PATH, as after `npm ci`. */
function runShell(line: string, cwd: string): Promise<Result> {
  const child = spawn("bash", ["-c", line], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", CAIRN_PROG: "" },
  });
  return collectOutput(child);
}

test("cairn on a read-only store: a clear message naming the store, exit 2; reading still works", async (t) => {
  const dir = await tempDir();
  const src = join(dir, "src");
  const ro = join(dir, "ro");
  await mkdir(src);
  await mkdir(ro);
  await expectExit(join(src, "store"), ["demo", ...QUICK, "--quiet"], 0);
  try {
    execFileSync("mount", ["--bind", src, ro], { stdio: "ignore" });
  } catch {
    t.skip("needs root and mount --bind (a read-only bind mount)");
    return;
  }
  try {
    execFileSync("mount", ["-o", "remount,ro,bind", ro], { stdio: "ignore" });
    const store = join(ro, "store");
    const run = await expectExit(store, ["demo", ...QUICK, "--new-run"], 2);
    // Caught when the store opens (Bun's access check) or at its first write (Deno as root).
    assert.match(
      run.stderr,
      new RegExp(
        `cairn: Cannot (?:write to|open) store "${store}"(?: \\(".*"\\))?: .*read-only file system`,
      ),
    );
    assert.doesNotMatch(run.stderr, /EROFS:|EACCES:/);
    const fresh = await expectExit(join(ro, "new"), ["demo", ...QUICK], 2);
    assert.match(fresh.stderr, /is on a read-only file system/);
    const ls = await expectExit(store, ["ls", "--json"], 0);
    assert.equal(JSON.parse(ls.stdout)[0].status, "completed");
    await expectExit(store, ["verify", "--read-data", "--quiet"], 0);
  } finally {
    execFileSync("umount", [ro], { stdio: "ignore" });
  }
});

test("cairn with a hostile job name exits 2 without echoing it whole", async () => {
  const store = join(await tempDir(), "store");
  const long = "a".repeat(100_000);
  for (
    const args of [["show", long], ["demo", "--job", "../x"], ["ls", "/etc"]]
  ) {
    const r = await cairn(["--store", store, ...args]);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(
      r.stderr.length < 1000,
      `short message: ${r.stderr.length} characters`,
    );
    assert.match(r.stderr, /Cannot use job name/);
  }
});
