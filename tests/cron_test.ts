/**
 * The CLI as cron and systemd timers run it (docs/cron.md): no terminal, stdin
 * closed, a minimal environment, and a second copy started while the first
 * still runs. Set `CAIRN_CLI_BIN` to run these against a compiled binary.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { collect, runCairn, startCairn } from "./cli_command.ts";
import { tempDir } from "./temp.ts";

const ESC = "\x1b";
const STAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ /;
const QUICK = ["--rows", "2000", "--steps", "4", "--delay", "0"];

/** cron's environment: PATH, HOME and SHELL, nothing else (no TERM, no NO_COLOR). */
function cronEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {
    PATH: "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/tmp",
    SHELL: "/bin/sh",
    ...extra,
  };
  // Keep the runtimes' caches where they are, so that a source run compiles nothing new.
  for (const name of ["DENO_DIR", "BUN_INSTALL_CACHE_DIR", "TMPDIR"]) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

test("cairn demo from cron: stdin closed, no TTY, minimal env: timestamped lines, no colour, exit 0", async () => {
  const dir = await tempDir();
  const store = join(dir, "store");
  const env = cronEnv({ CAIRN_STORE: store });
  const run = await runCairn(["demo", ...QUICK], {
    env,
    cleanEnv: true,
    closeStdin: true,
    cwd: dir,
  });
  assert.equal(run.code, 0, run.stderr);
  assert.ok(!run.stderr.includes(ESC) && !run.stdout.includes(ESC));
  assert.ok(!run.stderr.includes("\r"), "no progress bar off a TTY");
  const lines = run.stderr.trimEnd().split("\n");
  for (const line of lines) assert.match(line, STAMP, line);
  assert.match(lines[0]!, / demo: started run \S+ \(9 steps\)$/);
  assert.ok(lines.some((l) => / demo: completed run \S+: 9 steps in /.test(l)));
  assert.match(run.stdout, /^demo: run \S+ completed: 2,000 rows/);

  // --quiet: nothing on stderr; --json: one summary object on stdout.
  const quiet = await runCairn(["demo", ...QUICK, "--quiet"], {
    env,
    cleanEnv: true,
    closeStdin: true,
    cwd: dir,
  });
  assert.equal(quiet.code, 0, quiet.stderr);
  assert.equal(quiet.stderr, "");
  const json = await runCairn(["demo", ...QUICK, "--json"], {
    env,
    cleanEnv: true,
    closeStdin: true,
    cwd: dir,
  });
  assert.equal(json.code, 0, json.stderr);
  assert.equal(json.stdout.trim().split("\n").length, 1, json.stdout);
  const summary = JSON.parse(json.stdout);
  assert.equal(summary.alreadyCompleted, true);
  assert.equal(summary.reused, 9);
  for (const line of json.stderr.trim().split("\n")) {
    assert.equal(typeof JSON.parse(line).type, "string", line);
  }
});

test("cairn demo: an overlapping second process exits 3 with one line; --wait-lock waits; ls --json shows the holder", async () => {
  const store = join(await tempDir(), "store");
  const slow = ["demo", "--rows", "2000", "--steps", "10", "--delay", "250ms"];
  const first = startCairn(["--store", store, ...slow], { closeStdin: true });
  const firstDone = collect(first);
  // Wait for the first process to hold the lock: it logs "started run" after taking it.
  await new Promise<void>((ok, fail) => {
    let err = "";
    first.stderr!.on("data", (d) => {
      err += d;
      if (/started run/.test(err)) ok();
    });
    first.on(
      "close",
      () => fail(new Error(`The first run ended early: ${err}`)),
    );
  });

  const second = await runCairn(["--store", store, ...slow], {
    closeStdin: true,
  });
  assert.equal(second.code, 3, second.stderr);
  assert.equal(second.stdout, "");
  const lines = second.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, second.stderr);
  assert.match(
    lines[0]!,
    new RegExp(
      `^(?:[-0-9:TZ]+ )?cairn: Cannot open job "demo": locked by pid ${first.pid} on host .*; to wait for the holder, pass --wait-lock 5m; if it is gone, run "\\S*cairn unlock demo"$`,
    ),
  );

  const ls = await runCairn(["--store", store, "ls", "--json", "demo"]);
  assert.equal(ls.code, 0, ls.stderr);
  const [entry] = JSON.parse(ls.stdout);
  assert.equal(entry.status, "running");
  assert.equal(entry.lock.pid, first.pid);
  assert.equal(entry.total, 21);

  const waited = await runCairn(
    ["--store", store, ...slow, "--wait-lock", "2m", "--json"],
    { closeStdin: true },
  );
  const firstResult = await firstDone;
  assert.equal(firstResult.code, 0, firstResult.stderr);
  assert.equal(waited.code, 0, waited.stderr);
  const report = JSON.parse(waited.stdout);
  assert.equal(
    report.alreadyCompleted,
    true,
    "it ran after the first finished",
  );
  assert.equal(report.computed, 0);

  const after = JSON.parse(
    (await runCairn(["--store", store, "ls", "--json", "demo"])).stdout,
  );
  assert.equal(after[0].status, "completed");
  assert.equal(after[0].lock, null);
});

test("cairn from cron: a failure prints one timestamped line, with and without --quiet", async () => {
  const dir = await tempDir();
  const env = cronEnv({ CAIRN_STORE: join(dir, "store") });
  for (const extra of [["--quiet"], []]) {
    const run = await runCairn(
      ["demo", ...QUICK, "--new-run", "--fail-at", "3", ...extra],
      { env, cleanEnv: true, closeStdin: true, cwd: dir },
    );
    assert.equal(run.code, 1, run.stderr);
    const lines = run.stderr.trimEnd().split("\n");
    for (const line of lines) assert.match(line, STAMP, line);
    const errors = lines.filter((l) => / cairn: /.test(l));
    assert.equal(errors.length, 1, run.stderr);
    assert.match(errors[0]!, /cairn: Job "demo" failed at step "rows-02"/);
    if (extra.length > 0) {
      assert.equal(lines.length, 1, `--quiet: one line\n${run.stderr}`);
    }
  }
  // A usage error and a missing store: one timestamped line each.
  for (
    const args of [["ls", "--bogus"], ["--store", join(dir, "nope"), "ls"]]
  ) {
    const run = await runCairn([...args, "--quiet"], {
      env,
      cleanEnv: true,
      closeStdin: true,
      cwd: dir,
    });
    assert.equal(run.code, 2, run.stderr);
    const lines = run.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, run.stderr);
    assert.match(lines[0]!, STAMP);
  }
});

test("cairn from cron: the sample maintenance lines print nothing when all is well", async () => {
  const dir = await tempDir();
  const env = cronEnv({ CAIRN_STORE: join(dir, "store") });
  const opts = { env, cleanEnv: true, closeStdin: true, cwd: dir };
  for (let i = 0; i < 3; i++) {
    const r = await runCairn(["demo", ...QUICK, "--new-run", "--quiet"], opts);
    assert.equal(r.code, 0, r.stderr);
  }
  // The crontab lines of docs/cron.md (verify with a fixed subset).
  for (
    const args of [
      ["forget", "--keep-daily", "7", "--keep-weekly", "4", "--quiet"],
      ["gc", "--quiet"],
      ["verify", "--read-data-subset", "1/5", "--quiet"],
    ]
  ) {
    const r = await runCairn(args, opts);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "", `${args[0]} --quiet: nothing on stdout`);
    assert.equal(r.stderr, "", `${args[0]} --quiet: nothing on stderr`);
  }
  // Without --quiet they report; verify --quiet still names problems.
  const loud = await runCairn(["gc"], opts);
  assert.match(loud.stdout, /^Marked \d+ chunks referenced by \d+ runs?\n/);
});
