import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runProcessor } from "../lib/processor/mod.ts";
import { collectOutput } from "./child_process.ts";
import { startCairn } from "./cli_command.ts";
import { smallFiles } from "./fixtures/processor_fns.ts";
import { tempDir } from "./temp.ts";
import { LONG, testRandom } from "./test_seed.ts";

const SPEC = `${
  fileURLToPath(new URL("./fixtures/processor_fns.ts", import.meta.url))
}#smallFiles`;

/** `n` small files; every 97th one makes the processor throw. */
async function corpus(dir: string, n: number): Promise<number> {
  await mkdir(dir, { recursive: true });
  let bad = 0;
  const writes: Promise<void>[] = [];
  for (let i = 1; i <= n; i++) {
    const isBad = i % 97 === 0;
    if (isBad) bad++;
    writes.push(
      writeFile(
        join(dir, `f${String(i).padStart(6, "0")}.txt`),
        isBad ? `bad ${i}\n` : `item ${i}\n`,
      ),
    );
    if (writes.length >= 256) await Promise.all(writes.splice(0));
  }
  await Promise.all(writes);
  return bad;
}

/** `cairn --store STORE ARGS`, from source or the binary in `CAIRN_CLI_BIN`. */
function cli(store: string, args: string[], env: Record<string, string> = {}) {
  return startCairn(["--store", store, ...args], { env });
}

async function reference(input: string, out: string): Promise<string> {
  await runProcessor(smallFiles, {
    store: `memory:reference-${Math.random()}`,
    dataset: "reference",
    input,
    out,
    checkpointEvery: 100,
  });
  return await readFile(out, "utf8");
}

function lines(path: string): string[] {
  return existsSync(path)
    ? readFileSync(path, "utf8").split("\n").filter((l) => l !== "")
    : [];
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 3000; i++) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`Timed out waiting for ${what}`);
}

test("processor run killed with SIGKILL at random points and rerun gives the uninterrupted output: no item lost or repeated, ids never repeat", async () => {
  const files = LONG ? 20_000 : 2000;
  const kills = LONG ? 12 : 4;
  const { random } = testRandom("processor kill test");
  const dir = await tempDir();
  const input = join(dir, "in");
  const bad = await corpus(input, files);
  const expected = await reference(input, join(dir, "reference.jsonl"));
  const store = join(dir, "store");
  const out = join(dir, "out.jsonl");
  const args = [
    "processor",
    "run",
    SPEC,
    "--dataset",
    "corpus",
    "--input",
    input,
    "--out",
    out,
    "--checkpoint-every",
    "50",
  ];
  let killed = 0;
  for (let round = 0; round < kills * 3 && killed < kills; round++) {
    const selfKill = random() < 0.5;
    if (selfKill) {
      // SIGKILL from inside the processor, at a random item of this process.
      const dieAt = 1 + Math.floor(random() * 400);
      const result = await collectOutput(
        cli(store, args, { CAIRN_TEST_DIE_AT: String(dieAt) }),
      );
      if (result.code === 0) break;
      assert.equal(result.signal, "SIGKILL", result.stderr);
    } else {
      // SIGKILL from outside, a random moment after the first checkpoint (mid-write, often).
      const child = cli(store, args);
      const done = collectOutput(child);
      let stderr = "";
      child.stderr!.on("data", (d) => (stderr += d));
      await waitFor(
        () => stderr.includes("checkpoint") || child.exitCode !== null,
        "a checkpoint",
      );
      await new Promise((r) => setTimeout(r, Math.floor(random() * 150)));
      child.kill("SIGKILL");
      const result = await done;
      if (result.code === 0) break;
    }
    killed++;
  }
  assert.ok(killed > 0, "at least one run was killed");
  const last = await collectOutput(cli(store, args));
  assert.equal(last.code, 0, last.stderr);
  const got = await readFile(out, "utf8");
  assert.equal(got, expected, "byte-identical to an uninterrupted run");
  const records = got.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(records.length, files - bad);
  assert.equal(new Set(records.map((r) => r.path)).size, records.length);
  records.forEach((r, i) =>
    assert.equal(r.id, `S${String(i + 1).padStart(6, "0")}`)
  );
  const status = await collectOutput(
    cli(store, ["processor", "status", "corpus", "--json"]),
  );
  const state = JSON.parse(status.stdout);
  assert.equal(state.status, "completed");
  assert.equal(state.processed_count, files);
  assert.equal(state.statistics.error_count, bad);
  assert.equal(
    state.last_generated_id,
    `S${String(files - bad).padStart(6, "0")}`,
  );
});

test("processor run on SIGTERM writes a final checkpoint, exits 143, and resume continues from exactly there", async () => {
  const dir = await tempDir();
  const input = join(dir, "in");
  await corpus(input, 200);
  const expected = await reference(input, join(dir, "reference.jsonl"));
  const store = join(dir, "store");
  const out = join(dir, "out.jsonl");
  const calls = join(dir, "calls.log");
  // No count or time checkpoint can happen: the only one is the shutdown's.
  const child = cli(store, [
    "processor",
    "run",
    SPEC,
    "--dataset",
    "graceful",
    "--input",
    input,
    "--out",
    out,
    "--checkpoint-every",
    "100000",
  ], { CAIRN_TEST_SLOW_MS: "10", CAIRN_TEST_CALLS: calls });
  const done = collectOutput(child);
  await waitFor(() => lines(calls).length >= 20, "20 processed items");
  // Not child.kill(): Deno's ChildProcess then reports the signal it sent
  // instead of the exit code the child chose.
  process.kill(child.pid!, "SIGTERM");
  const stopped = await done;
  assert.equal(stopped.code, 143, stopped.stderr);
  assert.match(stopped.stderr, /checkpoint graceful_\d+_1 \(in_progress\)/);
  const processed = lines(calls).length;
  const status = JSON.parse(
    (await collectOutput(
      cli(store, ["processor", "status", "graceful", "--json"]),
    )).stdout,
  );
  assert.equal(status.status, "in_progress");
  assert.equal(status.processed_count, processed);
  assert.equal(status.processor_state.current_position, processed);
  const resumed = await collectOutput(
    cli(store, ["processor", "resume", "graceful"], {
      CAIRN_TEST_CALLS: calls,
    }),
  );
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.match(
    resumed.stderr,
    new RegExp(`resuming from checkpoint graceful_\\d+_1 at item ${processed}`),
  );
  const all = lines(calls);
  assert.equal(all.length, 200, "no item was processed twice");
  assert.equal(new Set(all).size, 200);
  assert.equal(await readFile(out, "utf8"), expected);
  const after = JSON.parse(
    (await collectOutput(
      cli(store, ["processor", "status", "graceful", "--json"]),
    )).stdout,
  );
  assert.equal(after.status, "completed");
});

test("processor run of a second copy on the same dataset exits 3 while the first runs", async () => {
  const dir = await tempDir();
  const input = join(dir, "in");
  await corpus(input, 100);
  const store = join(dir, "store");
  const calls = join(dir, "calls.log");
  const args = [
    "processor",
    "run",
    SPEC,
    "--dataset",
    "busy",
    "--input",
    input,
    "--out",
    join(dir, "out.jsonl"),
  ];
  const first = cli(store, args, {
    CAIRN_TEST_SLOW_MS: "30",
    CAIRN_TEST_CALLS: calls,
  });
  const firstDone = collectOutput(first);
  await waitFor(() => lines(calls).length >= 1, "the first copy to start");
  const second = await collectOutput(cli(store, args));
  assert.equal(second.code, 3, second.stderr);
  assert.match(second.stderr, /lock/i);
  process.kill(first.pid!, "SIGTERM");
  assert.equal((await firstDone).code, 143);
});

test("processor run that fails exits 1 after its retries, status says failed, and a rerun resumes to the same output", async () => {
  const dir = await tempDir();
  const input = join(dir, "in");
  await corpus(input, 120);
  const expected = await reference(input, join(dir, "reference.jsonl"));
  const store = join(dir, "store");
  const out = join(dir, "out.jsonl");
  const args = [
    "processor",
    "run",
    SPEC,
    "--dataset",
    "flaky",
    "--input",
    input,
    "--out",
    out,
    "--checkpoint-every",
    "25",
    "--max-retries",
    "1",
    "--retry-delay",
    "10ms",
  ];
  const failed = await collectOutput(
    cli(store, args, { CAIRN_TEST_SOURCE_FAILS_AT: "60" }),
  );
  assert.equal(failed.code, 1, failed.stderr);
  assert.match(
    failed.stderr,
    /attempt 1 failed \(Corpus went away\); retry 1\/1/,
  );
  assert.match(failed.stderr, /Corpus went away/);
  const status = JSON.parse(
    (await collectOutput(
      cli(store, ["processor", "status", "flaky", "--json"]),
    ))
      .stdout,
  );
  assert.equal(status.status, "failed");
  assert.equal(status.error, "Corpus went away");
  assert.equal(status.processed_count, 59);
  const rerun = await collectOutput(cli(store, args));
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.match(
    rerun.stderr,
    /resuming from checkpoint flaky_\d+_\d+ at item 59/,
  );
  assert.equal(await readFile(out, "utf8"), expected);
});
