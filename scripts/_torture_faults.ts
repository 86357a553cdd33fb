/**
 * The fault kinds of the torture campaign, one function each. Every choice
 * (kill point, bit, offset, garbage) comes from the campaign's seeded random
 * source, so a printed seed replays the same faults.
 *
 * @module
 */
import {
  appendFile,
  cp,
  lstat,
  mkdir,
  readdir,
  readFile,
  rm,
  symlink,
  truncate,
  utimes,
  writeFile,
} from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import {
  cairnCommand,
  type Exit,
  type Family,
  hasStackTrace,
  runChild,
  storeOf,
  type Tally,
} from "./_torture_core.ts";

/** What every fault function gets. */
export interface Ctx {
  tally: Tally;
  random: () => number;
  /** A fresh directory per call of {@linkcode Ctx.dir}. */
  dir(label: string): Promise<string>;
  /** The uninterrupted output and run time of each family. */
  reference: Map<string, { output: string; ms: number }>;
}

/** A whole number in [lo, hi]. */
export function between(ctx: Ctx, lo: number, hi: number): number {
  return lo + Math.floor(ctx.random() * (hi - lo + 1));
}

function cairn(dir: string, args: string[], timeoutMs = 120_000) {
  return runChild(cairnCommand(["--store", storeOf(dir), ...args]), {
    timeoutMs,
  });
}

/**
 * `verify --read-data` of the store under `dir`, expected to pass; a failure
 * is a finding, described as `what`, and counted under `counter` if given.
 */
async function verifyPasses(
  ctx: Ctx,
  dir: string,
  kind: string,
  fam: string,
  what: string,
  counter?: string,
): Promise<boolean> {
  const verify = await cairn(dir, ["verify", "--read-data", "--quiet"]);
  const ok = verify.code === 0;
  if (counter !== undefined) ctx.tally.add(kind, fam, counter, ok ? 0 : 1);
  return ctx.tally.expect(
    ok,
    kind,
    fam,
    `${what} exit ${verify.code}: ${verify.stdout}${verify.stderr}`,
  );
}

/** Run a family to completion and return its output (or the failure). */
async function finish(
  fam: Family,
  dir: string,
): Promise<{ exit: Exit; output?: string; error?: string }> {
  const exit = await runChild(fam.command(dir));
  if (exit.code !== 0) return { exit };
  try {
    return { exit, output: await fam.output(dir, exit) };
  } catch (error) {
    return { exit, error: String((error as Error).message ?? error) };
  }
}

/** A clear failure: non-zero, not hung, one message, no stack trace. */
function clearFailure(exit: Exit): boolean {
  return exit.code !== 0 && exit.code !== null && !exit.hung &&
    !hasStackTrace(exit.stderr) && exit.stderr.trim() !== "";
}

async function filesUnder(dir: string, filter: RegExp): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile() && filter.test(p)) out.push(p);
    }
  };
  await walk(dir);
  return out.sort();
}

/** Reference outputs and run times, from one uninterrupted run per family. */
export async function references(ctx: Ctx, fams: Family[]): Promise<void> {
  for (const fam of fams) {
    const dir = await ctx.dir(`ref-${fam.name}`);
    await fam.prepare(dir);
    const started = Date.now();
    const done = await finish(fam, dir);
    if (done.output === undefined) {
      throw new Error(
        `Cannot run family "${fam.name}" uninterrupted: exit ${done.exit.code}: ${done.exit.stderr}${
          done.error ?? ""
        }`,
      );
    }
    ctx.reference.set(fam.name, {
      output: done.output,
      ms: Date.now() - started,
    });
  }
}

/**
 * SIGKILL a family's job 1 to 3 times per episode at random moments (by
 * progress line or by time), rerun it to completion, compare the output with
 * the uninterrupted one, count repeated and missing side effects, verify.
 */
export async function kills(ctx: Ctx, fam: Family, count: number) {
  const { tally } = ctx;
  const kind = "SIGKILL, rerun";
  const ref = ctx.reference.get(fam.name)!;
  let landed = 0;
  for (let episode = 0; landed < count && episode < count * 3; episode++) {
    const dir = await ctx.dir(`kill-${fam.name}`);
    await fam.prepare(dir);
    let here = 0;
    let completed: Exit | undefined;
    let ended = 0;
    const tries = Math.min(between(ctx, 1, 3), count - landed);
    for (let i = 0; i < tries && completed === undefined; i++) {
      const byLine = fam.lines > 0 && ctx.random() < 0.7;
      const exit = await runChild(
        fam.command(dir),
        byLine
          ? {
            killAt: {
              pattern: fam.progress,
              count: between(ctx, 0, fam.lines - 1),
            },
          }
          : { killAfterMs: between(ctx, 0, Math.max(50, ref.ms)) },
      );
      if (exit.signal === "SIGKILL" && !exit.hung) {
        here++;
        landed++;
        tally.add(kind, fam.name, "kills");
        ended = Math.max(ended, (await fam.endedBeforeKill?.(dir)) ?? 0);
      } else if (exit.code !== 0) {
        tally.find(
          kind,
          fam.name,
          `a run after ${here} kill(s) exited ${exit.code}: ${
            exit.stderr.slice(-400)
          }`,
        );
      } else completed = exit; // it ended before the kill: that is the rerun
    }
    // A completed pipeline run is not reused (a new run starts), so a job
    // that ended before its kill is not run again.
    const done = completed === undefined
      ? await finish(fam, dir)
      : await fam.output(dir, completed).then(
        (output) => ({ exit: completed!, output, error: undefined }),
        (error) => ({
          exit: completed!,
          output: undefined,
          error: String(error),
        }),
      );
    if (
      !tally.expect(
        done.output !== undefined,
        kind,
        fam.name,
        `the rerun after ${here} kill(s) did not complete: exit ${done.exit.code} ${
          done.exit.stderr.slice(-400)
        }${done.error ?? ""}`,
      )
    ) {
      tally.add(kind, fam.name, "unfinished reruns");
      continue;
    }
    if (done.output !== ref.output) {
      tally.add(kind, fam.name, "corrupt outputs");
      tally.find(
        kind,
        fam.name,
        `output differs after ${here} kill(s) in ${dir}`,
      );
    } else tally.add(kind, fam.name, "corrupt outputs", 0);
    if (fam.sideEffects !== undefined) {
      const { repeated, missing } = await fam.sideEffects(dir);
      tally.add(kind, fam.name, "lost items", missing);
      const beyond = Math.max(0, repeated - here * fam.inFlight - ended);
      tally.add(
        kind,
        fam.name,
        "side effects repeated beyond in-flight",
        beyond,
      );
      if (missing > 0 || beyond > 0) {
        tally.find(
          kind,
          fam.name,
          `${missing} items never ran, ${repeated} repeats after ${here} kills in ${dir}`,
        );
      }
    }
    const verify = await runChild(cairnCommand([
      "--store",
      fam.store?.(dir) ?? storeOf(dir),
      "verify",
      "--read-data",
      "--quiet",
    ]));
    tally.add(kind, fam.name, "verify failures", verify.code === 0 ? 0 : 1);
    if (verify.code !== 0) {
      tally.find(
        kind,
        fam.name,
        `verify exit ${verify.code}: ${verify.stdout}${verify.stderr}`,
      );
    }
  }
}

function flipBit(bytes: Uint8Array, ctx: Ctx, from = 0): number {
  const at = between(ctx, from, bytes.length - 1);
  bytes[at]! ^= 1 << between(ctx, 0, 7);
  return at;
}

/** The rerun after damage: the same output, or a clear failure; never other data. */
async function rerunAfterDamage(
  ctx: Ctx,
  fam: Family,
  dir: string,
  kind: string,
  mayFail = true,
): Promise<"same" | "clear" | "bad"> {
  const ref = ctx.reference.get(fam.name)!;
  const done = await finish(fam, dir);
  if (done.output === ref.output) {
    ctx.tally.add(kind, fam.name, "reruns recomputed or fell back");
    return "same";
  }
  if (mayFail && done.output === undefined) {
    // Through the CLI: one message, no trace. A library fixture prints its
    // uncaught error with a trace: judged by the error's class and message.
    const clear = done.error !== undefined
      ? !/\n\s+at /.test(done.error)
      : fam.library
      ? /(CorruptLogError|LockedError|TypeError|RangeError|SyntaxError): Cannot /
        .test(done.exit.stderr)
      : clearFailure(done.exit);
    if (clear) {
      ctx.tally.add(kind, fam.name, "reruns failed clearly");
      return "clear";
    }
  }
  if (done.output === undefined) {
    ctx.tally.add(kind, fam.name, "reruns failed instead of recomputing");
  } else ctx.tally.add(kind, fam.name, "bad data used");
  ctx.tally.find(
    kind,
    fam.name,
    `after damage in ${dir}: exit ${done.exit.code}, ${
      done.output === undefined
        ? `no output: ${done.exit.stderr.slice(-600)}${done.error ?? ""}`
        : "a different output"
    }`,
  );
  return "bad";
}

/**
 * Tears and flips on a completed run: a bit flipped in a chunk, in a log
 * record or in a lock file, the newest log truncated or grown with garbage,
 * and half-written temp files left behind.
 */
export async function tearsAndFlips(ctx: Ctx, fam: Family, count: number) {
  const { tally } = ctx;
  const kinds = [
    "bit flip in a chunk",
    "bit flip in a log record",
    "log truncated",
    "garbage appended to log",
    "half-written temp files",
    "bit flip in a lock file",
  ];
  for (let i = 0; i < count; i++) {
    const kind = kinds[i % kinds.length]!;
    const dir = await ctx.dir(`flip-${fam.name}`);
    await fam.prepare(dir);
    const store = storeOf(dir);
    if (kind === "bit flip in a lock file") {
      // A killed run leaves its lock behind.
      let exit: Exit | undefined;
      for (let t = 0; t < 5; t++) {
        exit = await runChild(
          fam.command(dir),
          fam.lines > 1
            ? {
              killAt: {
                pattern: fam.progress,
                count: between(ctx, 1, fam.lines - 1),
              },
            }
            : {
              killAfterMs: between(
                ctx,
                ctx.reference.get(fam.name)!.ms / 3,
                ctx.reference.get(fam.name)!.ms * 0.9,
              ),
            },
        );
        if (exit.signal === "SIGKILL") break;
        await rm(dir, { recursive: true, force: true });
        await mkdir(dir, { recursive: true });
        await fam.prepare(dir);
      }
      const locks = await filesUnder(join(store, "locks"), /\.lock$/);
      if (locks.length === 0) {
        tally.add(kind, fam.name, "skipped (no lock left)");
        continue;
      }
      const lock = locks[0]!;
      const bytes = new Uint8Array(await readFile(lock));
      flipBit(bytes, ctx);
      await writeFile(lock, bytes);
      tally.add(kind, fam.name, "flips");
      let done = await finish(fam, dir);
      if (done.exit.code === 3) {
        tally.add(kind, fam.name, "refused with exit 3, then unlocked");
        const job = lock.split("/").pop()!.slice(0, -5);
        const unlock = await cairn(dir, ["unlock", job]);
        tally.expect(
          unlock.code === 0,
          kind,
          fam.name,
          `unlock of a dead holder's flipped lock exit ${unlock.code}: ${unlock.stderr}`,
        );
        done = await finish(fam, dir);
      }
      const same = done.output === ctx.reference.get(fam.name)!.output;
      tally.add(kind, fam.name, "reruns completed", same ? 1 : 0);
      tally.expect(
        same,
        kind,
        fam.name,
        `rerun after a flipped lock: exit ${done.exit.code} ${
          done.exit.stderr.slice(-400)
        }`,
      );
      continue;
    }
    const first = await finish(fam, dir);
    if (first.output === undefined) {
      tally.find(kind, fam.name, `setup run failed: ${first.exit.stderr}`);
      continue;
    }
    const logs = await filesUnder(join(store, "jobs"), /\.log$/);
    const newest = logs.at(-1)!;
    if (kind === "bit flip in a chunk") {
      const chunks = await filesUnder(join(store, "chunks"), /\/[0-9a-f]{64}$/);
      const chunk = chunks[between(ctx, 0, chunks.length - 1)]!;
      const bytes = new Uint8Array(await readFile(chunk));
      flipBit(bytes, ctx);
      await writeFile(chunk, bytes);
      tally.add(kind, fam.name, "flips");
      const verify = await cairn(dir, ["verify", "--read-data"]);
      const hash = chunk.split("/").pop()!;
      const found = verify.code === 4 &&
        (verify.stdout + verify.stderr).includes(hash);
      tally.add(kind, fam.name, "found by verify --read-data", found ? 1 : 0);
      tally.expect(
        found,
        kind,
        fam.name,
        `verify did not name flipped chunk ${hash}: exit ${verify.code}`,
      );
      // A job that needs a corrupt chunk recomputes it: failing is a finding.
      await rerunAfterDamage(ctx, fam, dir, kind, false);
    } else if (kind === "bit flip in a log record") {
      const bytes = new Uint8Array(await readFile(newest));
      flipBit(bytes, ctx, Math.min(16, bytes.length - 1));
      await writeFile(newest, bytes);
      tally.add(kind, fam.name, "flips");
      const verify = await cairn(dir, ["verify", "--json"]);
      let noted = verify.code === 4;
      try {
        noted ||= (JSON.parse(verify.stdout).notes ?? []).length > 0;
      } catch { /* not JSON: judged by the exit code */ }
      tally.add(kind, fam.name, "found by verify", noted ? 1 : 0);
      tally.expect(
        noted,
        kind,
        fam.name,
        `verify saw nothing after a flip in ${newest}`,
      );
      await rerunAfterDamage(ctx, fam, dir, kind);
    } else if (kind === "log truncated" || kind === "garbage appended to log") {
      if (kind === "log truncated") {
        const size = (await lstat(newest)).size;
        await truncate(newest, between(ctx, 0, size - 1));
      } else {
        const garbage = new Uint8Array(between(ctx, 1, 4096));
        for (let b = 0; b < garbage.length; b++) {
          garbage[b] = between(ctx, 0, 255);
        }
        await appendFile(newest, garbage);
      }
      tally.add(kind, fam.name, "tears");
      await rerunAfterDamage(ctx, fam, dir, kind);
      await verifyPasses(
        ctx,
        dir,
        kind,
        fam.name,
        "verify after rerun",
        "verify failures after the rerun",
      );
    } else if (kind === "half-written temp files") {
      const temps = [
        join(store, "tmp", `${between(ctx, 2, 99999)}-0123456789ab.tmp`),
        join(
          store,
          "locks",
          `.x.lock.${between(ctx, 2, 99999)}-0123456789ab.tmp`,
        ),
      ];
      const outDir = join(dir, "out");
      if ((await lstat(outDir).catch(() => undefined))?.isDirectory()) {
        temps.push(
          join(outDir, `.index.npy.${between(ctx, 2, 99999)}-0123456789ab.tmp`),
        );
      }
      for (const t of temps) {
        await writeFile(t, new Uint8Array(between(ctx, 1, 5000)).fill(7));
        const old = new Date(Date.now() - 86_400_000);
        await utimes(t, old, old);
      }
      tally.add(kind, fam.name, "temp files", temps.length);
      await rerunAfterDamage(ctx, fam, dir, kind);
      const gc = await cairn(dir, ["gc", "--quiet"]);
      const left = (await readdir(join(store, "tmp"))).filter((n) =>
        n.endsWith(".tmp")
      );
      tally.add(kind, fam.name, "temp files gc left in tmp/", left.length);
      tally.expect(
        gc.code === 0 && left.length === 0,
        kind,
        fam.name,
        `gc exit ${gc.code} left ${left.join(", ")}`,
      );
    }
  }
}

/** Races: contention, gc/forget beside a writer, two gcs, fencing, unlock of a live holder. */
export async function races(ctx: Ctx, rounds: number) {
  const { tally } = ctx;
  const fam = "plain (cairn demo)";
  const demo = (dir: string, extra: string[] = []) =>
    cairnCommand([
      "--store",
      storeOf(dir),
      "--json",
      "demo",
      "--rows",
      "4000",
      "--steps",
      "12",
      "--delay",
      "60ms",
      ...extra,
    ]);
  for (let round = 0; round < rounds; round++) {
    // Several processes on one job: exactly one proceeds, the others exit 3.
    {
      const kind = "processes racing for one job";
      const dir = await ctx.dir("race-lock");
      const n = between(ctx, 2, 4);
      const exits = await Promise.all(
        Array.from({ length: n }, () => runChild(demo(dir))),
      );
      const codes = exits.map((e) => e.code).sort();
      tally.add(kind, fam, "processes", n);
      const ok = codes.filter((c) => c === 0).length === 1 &&
        codes.filter((c) => c === 3).length === n - 1;
      tally.add(kind, fam, "races with one winner", ok ? 1 : 0);
      tally.expect(
        ok,
        kind,
        fam,
        `exit codes ${codes.join(",")}: ${
          exits.map((e) =>
            e.stderr.split("\n").filter((l) => !l.startsWith("{")).join(" ")
          ).join(" | ")
        }`,
      );
    }
    // gc and forget beside a job that writes (and re-puts chunks it dedups).
    {
      const kind = "gc and forget beside a writer";
      const dir = await ctx.dir("race-gc");
      await runChild(demo(dir, ["--delay", "0ms"]));
      // Two hours old, past any grace: the new run dedups (refreshes) these
      // chunks while gc, after forget, would sweep every one it can.
      const twoHoursAgo = new Date(Date.now() - 7_200_000);
      for (const chunk of await filesUnder(join(storeOf(dir), "chunks"), /./)) {
        await utimes(chunk, twoHoursAgo, twoHoursAgo);
      }
      const job = runChild(demo(dir, ["--new-run"]));
      let gcs = 0;
      let running = true;
      void job.then(() => (running = false));
      while (running) {
        const which = ctx.random() < 0.3
          ? ["forget", "--keep-last", "1", "--quiet"]
          : ["gc", "--grace", "0s", "--quiet"]; // 1 minute while the job runs
        const e = await cairn(dir, which);
        if (e.code !== 0) {
          tally.find(
            kind,
            fam,
            `${which[0]} beside a writer exit ${e.code}: ${e.stderr}`,
          );
        }
        gcs++;
      }
      const exit = await job;
      tally.add(kind, fam, "gc/forget runs", gcs);
      tally.expect(
        exit.code === 0,
        kind,
        fam,
        `the writer exit ${exit.code}: ${exit.stderr.slice(-300)}`,
      );
      await verifyPasses(
        ctx,
        dir,
        kind,
        fam,
        "verify",
        "chunks swept from under a run",
      );
    }
    // Two gcs at once, after a forget.
    {
      const kind = "two gcs at once";
      const dir = await ctx.dir("race-2gc");
      for (const rows of ["1000", "2000", "3000"]) {
        await runChild(
          cairnCommand([
            "--store",
            storeOf(dir),
            "demo",
            "--rows",
            rows,
            "--steps",
            "4",
            "--delay",
            "0ms",
            "--new-run",
            "--quiet",
          ]),
        );
      }
      await cairn(dir, ["forget", "--keep-last", "1", "--quiet"]);
      const [a, b] = await Promise.all([
        cairn(dir, ["gc"]),
        cairn(dir, ["gc"]),
      ]);
      tally.add(kind, fam, "gc pairs");
      tally.expect(
        [a!, b!].every((e) => e.code === 0 || clearFailure(e)),
        kind,
        fam,
        `gc exits ${a!.code}/${b!.code}: ${a!.stderr}${b!.stderr}`,
      );
      await verifyPasses(ctx, dir, kind, fam, "verify", "verify failures");
    }
    // A writer whose lock is removed by hand is fenced; unlock of a live holder is refused.
    {
      const kind = "lock removed under a writer";
      const dir = await ctx.dir("race-fence");
      const lockFile = join(storeOf(dir), "locks", "demo.lock");
      let first = "";
      const a = runChild(demo(dir));
      // Wait for a few steps of A.
      for (let t = 0; t < 200; t++) {
        if ((await lstat(lockFile).catch(() => undefined)) !== undefined) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await new Promise((r) => setTimeout(r, between(ctx, 100, 400)));
      const unlockLive = await cairn(dir, ["unlock", "demo"]);
      const stillThere = (await lstat(lockFile).catch(() =>
        undefined
      )) !== undefined;
      tally.add("unlock of a live holder", fam, "attempts");
      const refused = unlockLive.code !== 0 && stillThere;
      tally.add("unlock of a live holder", fam, "refused", refused ? 1 : 0);
      tally.expect(
        refused,
        "unlock of a live holder",
        fam,
        `unlock exit ${unlockLive.code}, lock ${
          stillThere ? "kept" : "removed"
        }`,
      );
      await rm(lockFile, { force: true });
      const b = await runChild(demo(dir));
      const aExit = await a;
      first = aExit.stderr;
      tally.add(kind, fam, "writers");
      const fenced = aExit.code !== 0 && /lock/i.test(first);
      tally.add(kind, fam, "fenced", fenced ? 1 : 0);
      // A may also have finished before B needed the log; only B must succeed.
      tally.expect(
        b.code === 0,
        kind,
        fam,
        `the second writer exit ${b.code}: ${b.stderr.slice(-300)}`,
      );
      await verifyPasses(ctx, dir, kind, fam, "verify", "verify failures");
    }
  }
}

/** gc and forget SIGKILLed at random moments, then verify --read-data. */
export async function maintenanceKills(ctx: Ctx, count: number) {
  const { tally } = ctx;
  const base = await ctx.dir("maint-base");
  for (
    const [job, rows] of [["a", "3000"], ["a", "5000"], ["b", "4000"], [
      "b",
      "6000",
    ], ["a", "7000"]]
  ) {
    await runChild(
      cairnCommand([
        "--store",
        storeOf(base),
        "demo",
        "--job",
        job!,
        "--rows",
        rows!,
        "--steps",
        "24",
        "--delay",
        "0ms",
        "--new-run",
        "--quiet",
      ]),
    );
  }
  const maintenance = async (which: string) => {
    const dir = await ctx.dir("maint");
    await cp(storeOf(base), storeOf(dir), { recursive: true });
    if (which === "gc") {
      await cairn(dir, ["forget", "--keep-last", "1", "--quiet"]);
    }
    const args = which === "gc"
      ? ["--store", storeOf(dir), "gc", "--grace", "0s"]
      : ["--store", storeOf(dir), "forget", "--keep-last", "1"];
    return { dir, args };
  };
  // How long each command takes uninterrupted here, so that the kills fall
  // in its second half (its work) on a quiet machine as on a loaded one.
  const took = new Map<string, number>();
  for (const which of ["gc", "forget"]) {
    const { args } = await maintenance(which);
    const started = Date.now();
    await runChild(cairnCommand(args));
    took.set(which, Date.now() - started);
  }
  for (let i = 0; i < count; i++) {
    const which = i % 2 === 0 ? "gc" : "forget";
    const fam = `cairn ${which}`;
    const kind = "maintenance SIGKILLed";
    const { dir, args } = await maintenance(which);
    const ms = took.get(which)!;
    const exit = await runChild(cairnCommand(args), {
      killAfterMs: between(ctx, Math.floor(ms * 0.5), Math.floor(ms * 0.95)),
    });
    tally.add(
      kind,
      fam,
      exit.signal === "SIGKILL" ? "kills" : "ended before the kill",
    );
    await verifyPasses(
      ctx,
      dir,
      kind,
      fam,
      `verify after a killed ${which}`,
      "verify failures",
    );
    const again = await runChild(cairnCommand(args));
    tally.expect(
      again.code === 0,
      kind,
      fam,
      `${which} after its kill exit ${again.code}: ${again.stderr}`,
    );
  }
}

function mountTmpfs(dir: string, size: string): string | undefined {
  const r = spawnSync("mount", [
    "-t",
    "tmpfs",
    "-o",
    `size=${size}`,
    "tmpfs",
    dir,
  ]);
  return r.status === 0
    ? undefined
    : (String(r.stderr).trim() || `mount exit ${r.status}`);
}

function remount(dir: string, options: string): boolean {
  return spawnSync("mount", ["-o", `remount,${options}`, dir]).status === 0;
}

/** A full disk (a 2 MiB tmpfs) and a read-only store. */
export async function resources(ctx: Ctx) {
  const { tally } = ctx;
  const fam = "plain (cairn demo)";
  const big = ["demo", "--rows", "60000", "--steps", "6", "--delay", "0ms"];
  const refDir = await ctx.dir("res-ref");
  await runChild(cairnCommand(["--store", storeOf(refDir), ...big, "--quiet"]));
  const { exportJob } = await import("./_torture_core.ts");
  const expected = await exportJob(refDir, "demo");
  const dir = await ctx.dir("res-full");
  const why = mountTmpfs(dir, "2m");
  if (why !== undefined) {
    tally.skipped.push(
      `resource faults skipped: cannot mount a tmpfs (${why})`,
    );
    return;
  }
  try {
    let kind = "disk full (2 MiB tmpfs)";
    const exit = await cairn(dir, big);
    tally.add(kind, fam, "runs");
    const clear = clearFailure(exit) && /disk is full/.test(exit.stderr) &&
      exit.stderr.includes(dir);
    tally.add(kind, fam, "clear errors naming the path", clear ? 1 : 0);
    tally.expect(
      clear,
      kind,
      fam,
      `exit ${exit.code}: ${exit.stderr.slice(-500)}`,
    );
    await verifyPasses(ctx, dir, kind, fam, "verify on the full disk");
    remount(dir, "size=64m");
    const rerun = await cairn(dir, [...big, "--quiet"]);
    const same = rerun.code === 0 &&
      (await exportJob(dir, "demo")) === expected;
    tally.add(kind, fam, "completed after space was freed", same ? 1 : 0);
    tally.expect(
      same,
      kind,
      fam,
      `rerun after freeing space exit ${rerun.code}: ${
        rerun.stderr.slice(-300)
      }`,
    );
    await verifyPasses(
      ctx,
      dir,
      kind,
      fam,
      "verify after space was freed",
      "verify failures",
    );

    kind = "read-only store";
    remount(dir, "ro");
    const ro = await cairn(dir, [...big, "--new-run"]);
    tally.add(kind, fam, "runs");
    const roClear = clearFailure(ro) && /read-only/.test(ro.stderr) &&
      ro.stderr.includes(dir);
    tally.add(kind, fam, "clear errors naming the path", roClear ? 1 : 0);
    tally.expect(
      roClear,
      kind,
      fam,
      `exit ${ro.code}: ${ro.stderr.slice(-500)}`,
    );
    await verifyPasses(
      ctx,
      dir,
      kind,
      fam,
      "verify of a read-only store",
      "verify failures",
    );
  } finally {
    spawnSync("umount", [dir]);
  }
}

/** Paths: hostile job names, links inside the store pointing outside. */
export async function paths(ctx: Ctx) {
  const { tally } = ctx;
  const fam = "plain (cairn demo)";
  const dir = await ctx.dir("paths");
  const outside = join(dir, "outside");
  await mkdir(outside);
  await writeFile(join(outside, "keep.txt"), "precious\n");
  const snapshot = async () => {
    const names: string[] = [];
    const walk = async (d: string) => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (p === storeOf(dir)) continue;
        names.push(
          `${p}:${e.isFile() ? (await readFile(p)).toString("base64") : "d"}`,
        );
        if (e.isDirectory()) await walk(p);
      }
    };
    await walk(dir);
    return names.sort().join("\n");
  };
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
  const before = await snapshot();
  let kind = "hostile job names";
  for (
    const name of [
      "../escape",
      "/abs/x",
      "a/b",
      "..",
      ".",
      "x".repeat(100_000),
      "bad\nname",
    ]
  ) {
    const exit = await cairn(dir, [
      "demo",
      "--job",
      name,
      "--rows",
      "100",
      "--steps",
      "1",
      "--delay",
      "0ms",
    ]);
    tally.add(kind, fam, "names");
    const ok = exit.code === 2 && !hasStackTrace(exit.stderr) &&
      exit.stderr.length < 2000;
    tally.add(kind, fam, "refused with exit 2 and a short message", ok ? 1 : 0);
    tally.expect(
      ok,
      kind,
      fam,
      `--job ${
        JSON.stringify(name.slice(0, 20))
      }: exit ${exit.code}, ${exit.stderr.length} chars: ${
        exit.stderr.slice(0, 200)
      }`,
    );
  }
  tally.expect(
    (await snapshot()) === before,
    kind,
    fam,
    "a hostile job name changed files outside the store",
  );
  kind = "links inside the store";
  const store = storeOf(dir);
  const chunks = await filesUnder(join(store, "chunks"), /\/[0-9a-f]{64}$/);
  const victim = chunks[0]!;
  const hash = victim.split("/").pop()!;
  await rm(victim);
  await symlink("/dev/zero", victim);
  await mkdir(join(outside, "zz"));
  await writeFile(join(outside, "zz", "zz".padEnd(64, "0")), "outside chunk\n");
  await symlink(join(outside, "zz"), join(store, "chunks", "zz"));
  await mkdir(join(outside, "jobdir"));
  await writeFile(join(outside, "jobdir", "r.log"), "not a log\n");
  await symlink(join(outside, "jobdir"), join(store, "jobs", "evil"));
  const before2 = await snapshot();
  for (
    const args of [
      ["verify", "--read-data"],
      ["gc", "--grace", "0s"],
      ["cat", hash],
      ["ls"],
      ["forget", "--keep-last", "1"],
      [
        "demo",
        "--job",
        "evil",
        "--rows",
        "100",
        "--steps",
        "1",
        "--delay",
        "0ms",
      ],
      ["demo", "--rows", "500", "--steps", "3", "--delay", "0ms", "--new-run"],
      [
        "export",
        "demo",
        "--format",
        "jsonl",
        "--out",
        join(outside, "keep.txt"),
      ],
    ]
  ) {
    const exit = await cairn(dir, args, 30_000);
    tally.add(kind, fam, "commands");
    const ok = !exit.hung && !hasStackTrace(exit.stderr);
    tally.add(kind, fam, "hangs or stack traces", ok ? 0 : 1);
    tally.expect(
      ok,
      kind,
      fam,
      `cairn ${args[0]} with links in the store: exit ${exit.code}${
        exit.hung ? " (hung)" : ""
      }: ${exit.stderr.slice(0, 300)}`,
    );
  }
  const after = await snapshot();
  // export --out may replace keep.txt (a regular file the user named); nothing else may change.
  const strip = (s: string) =>
    s.split("\n").filter((l) => !l.includes("keep.txt")).join("\n");
  const same = strip(after) === strip(before2);
  tally.add(kind, fam, "files outside the store changed", same ? 0 : 1);
  tally.expect(same, kind, fam, "a command followed a link out of the store");
  const link = join(dir, "link-out");
  await symlink(join(outside, "keep.txt"), link);
  const exp = await cairn(dir, [
    "export",
    "demo",
    "--format",
    "jsonl",
    "--out",
    link,
  ]);
  const target = await readFile(join(outside, "keep.txt"), "utf8");
  tally.add(kind, fam, "commands");
  tally.expect(
    exp.code !== 0 && (await lstat(link)).isSymbolicLink(),
    kind,
    fam,
    `export --out replaced a link: exit ${exp.code}; target now ${
      target.slice(0, 40)
    }`,
  );
}
