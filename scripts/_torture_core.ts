/**
 * The torture campaign's plumbing: the tally of faults and outcomes, child
 * processes, and the families (jobs) the faults are injected into.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { createS3Client, parseS3Url } from "../store/_s3_client.ts";

const isDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";
const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A path inside the repository. */
export function repoPath(...parts: string[]): string {
  return join(ROOT, ...parts);
}

/** The command that runs a TypeScript file under the runtime running this script. */
export function scriptCommand(
  path: string,
  args: string[],
): [string, string[]] {
  return [
    process.execPath,
    isDeno ? ["run", "-A", "--quiet", path, ...args] : ["run", path, ...args],
  ];
}

/** The command that runs `cairn ARGS` from source. */
export function cairnCommand(args: string[]): [string, string[]] {
  return scriptCommand(repoPath("cli", "main.ts"), args);
}

/** How a child ended and what it printed. */
export interface Exit {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  /** Whether the campaign killed it (its timeout counts as a hang). */
  hung: boolean;
}

/** Options for {@linkcode runChild}. */
export interface RunChildOptions {
  /** SIGKILL once a progress count reaches this. */
  killAt?: { pattern: RegExp; count: number };
  /** SIGKILL after this many ms (a kill), when `killAt` has not fired. */
  killAfterMs?: number;
  /** Treated as a hang and SIGKILLed after this many ms. Default: 120 s. */
  timeoutMs?: number;
  /** Extra environment. */
  env?: Record<string, string>;
  /** Called once the child is started. */
  started?: (child: ChildProcess) => void;
}

/**
 * Run a command, optionally SIGKILLing it after a number of progress lines
 * (counted on stdout and stderr) or a delay.
 */
export function runChild(
  [cmd, argv]: [string, string[]],
  options: RunChildOptions = {},
): Promise<Exit> {
  const child = spawn(cmd, argv, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1", ...options.env },
  });
  options.started?.(child);
  let stdout = "";
  let stderr = "";
  let seen = 0;
  let hung = false;
  const check = (text: string) => {
    const k = options.killAt;
    if (k === undefined) return;
    seen += text.match(new RegExp(k.pattern, "gm"))?.length ?? 0;
    if (seen >= k.count) child.kill("SIGKILL");
  };
  child.stdout!.on("data", (d) => {
    stdout += d;
    check(String(d));
  });
  child.stderr!.on("data", (d) => {
    stderr += d;
    check(String(d));
  });
  if (options.killAt?.count === 0) child.kill("SIGKILL");
  const timers: ReturnType<typeof setTimeout>[] = [];
  if (options.killAfterMs !== undefined) {
    timers.push(setTimeout(() => child.kill("SIGKILL"), options.killAfterMs));
  }
  timers.push(
    setTimeout(() => {
      hung = true;
      child.kill("SIGKILL");
    }, options.timeoutMs ?? 120_000),
  );
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => {
      for (const t of timers) clearTimeout(t);
      resolve({ code, signal, stdout, stderr, hung });
    });
  });
}

/** Whether a child's stderr shows an uncaught stack trace. */
export function hasStackTrace(text: string): boolean {
  return /^\s+at .+[:(].*\d+:\d+\)?$/m.test(text) ||
    /Uncaught|error: Uncaught/.test(text);
}

/** Counters of one (fault kind, family) row. */
export type Counters = Record<string, number>;

/** One failed expectation, with what replays it. */
export interface Finding {
  kind: string;
  family: string;
  what: string;
}

/**
 * Findings known and left to a family's owners, each with why: reported in
 * the table and on stderr, but they do not fail the campaign. Keep it short.
 */
export const KNOWN_FINDINGS: { kind: string; family: string; why: string }[] =
  [];

/** Faults injected and what survived, per kind and family. */
export class Tally {
  readonly rows = new Map<string, Counters>();
  readonly findings: Finding[] = [];
  /** Findings matching {@linkcode KNOWN_FINDINGS}. */
  readonly known: Finding[] = [];
  readonly skipped: string[] = [];

  /** Add to a counter of a row. */
  add(kind: string, family: string, counter: string, by = 1): void {
    const key = `${kind}\u0000${family}`;
    const row = this.rows.get(key) ?? {};
    row[counter] = (row[counter] ?? 0) + by;
    this.rows.set(key, row);
  }

  /** Record a finding (and count it on its row). */
  find(kind: string, family: string, what: string): void {
    if (KNOWN_FINDINGS.some((k) => k.kind === kind && k.family === family)) {
      this.known.push({ kind, family, what });
      this.add(kind, family, "known findings");
      return;
    }
    this.findings.push({ kind, family, what });
    this.add(kind, family, "findings");
  }

  /** Check `ok`; a false one is a finding. Returns `ok`. */
  expect(ok: boolean, kind: string, family: string, what: string): boolean {
    if (!ok) this.find(kind, family, what);
    return ok;
  }
}

/** What a family needs to be run, resumed and compared. */
export interface Family {
  /** Name in the table. */
  name: string;
  /** Write inputs into `dir` (new per episode). */
  prepare(dir: string): Promise<void>;
  /** The command that runs (or resumes) the job to completion in `dir`. */
  command(dir: string): [string, string[]];
  /** Progress lines, to place kills between them. */
  progress: RegExp;
  /** Progress lines of a full run (for kill placement). */
  lines: number;
  /** The job's outputs after a successful run, as comparable bytes. */
  output(dir: string, exit: Exit): Promise<string>;
  /** Side effects that ran more than once, and ones that never ran. */
  sideEffects?(dir: string): Promise<{ repeated: number; missing: number }>;
  /** Side effects a kill may repeat (the work in flight). */
  inFlight: number;
  /** Job name in the store (for unlock, export). */
  job: string;
  /** The store's location when it is not `storeOf(dir)` (an S3 URL); such a family gets only kills. */
  store?(dir: string): string;
  /** Run through a library fixture rather than the CLI. */
  library?: boolean;
  /**
   * Side effects a rerun may repeat when the kill landed after the job had
   * done all its work (a completed pipeline run is not reused: the rerun is
   * a new run). Absent: none.
   */
  endedBeforeKill?(dir: string): Promise<number>;
}

/** The store of a family's episode directory. */
export function storeOf(dir: string): string {
  return join(dir, "store");
}

async function countLines(path: string): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  const text = await readFile(path, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    if (line !== "") counts.set(line, (counts.get(line) ?? 0) + 1);
  }
  return counts;
}

function sideEffectsOf(
  file: string,
  expected: string[],
): (dir: string) => Promise<{ repeated: number; missing: number }> {
  return async (dir) => {
    const counts = await countLines(join(dir, file));
    let repeated = 0;
    let missing = 0;
    for (const key of expected) {
      const n = counts.get(key) ?? 0;
      if (n === 0) missing++;
      repeated += Math.max(0, n - 1);
    }
    return { repeated, missing };
  };
}

async function filesOf(dir: string): Promise<string> {
  const names = (await readdir(dir)).filter((n) => !n.endsWith(".tmp")).sort();
  const parts: string[] = [];
  for (const name of names) {
    const s = await stat(join(dir, name));
    if (!s.isFile()) continue;
    parts.push(
      `${name}:${
        Buffer.from(await readFile(join(dir, name))).toString("base64")
      }`,
    );
  }
  return parts.join("\n");
}

/**
 * The S3 server the campaign's S3 family runs on, from `AWS_ENDPOINT_URL` and
 * `CAIRN_S3_BUCKET` (with credentials in the usual variables), or why there
 * is none.
 */
export function s3Target(): { bucket: string; skip?: undefined } | {
  skip: string;
} {
  const { AWS_ENDPOINT_URL: endpoint, CAIRN_S3_BUCKET: bucket } = process.env;
  if (!endpoint || !bucket) {
    return {
      skip:
        'SIGKILLs of cairn demo on S3: no S3 server; set AWS_ENDPOINT_URL and CAIRN_S3_BUCKET (eval "$(bash scripts/rgw_start.sh)" starts Ceph RGW)',
    };
  }
  return { bucket };
}

/** Export a job's newest run as JSON lines (the byte-comparable output). */
export async function exportJob(
  dir: string,
  job: string,
  store: string = storeOf(dir),
): Promise<string> {
  const exit = await runChild(cairnCommand([
    "--store",
    store,
    "export",
    job,
    "--format",
    "jsonl",
    "--out",
    "-",
  ]));
  if (exit.code !== 0) {
    throw new Error(
      `Cannot export "${job}": exit ${exit.code}: ${exit.stderr}`,
    );
  }
  return exit.stdout;
}

const PLAIN_STEPS = 24;
const MAP_ITEMS = 5000;
const PARTS = 16;
const PROCESSOR_ROWS = 4000;

/** A float32 .npy of `rows` x `cols` values. */
export function npyBytes(rows: number, cols: number, seed = 1): Uint8Array {
  const header =
    `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  const total = 10 + header.length + 1;
  const pad = (64 - (total % 64)) % 64;
  const head = `${header}${" ".repeat(pad)}\n`;
  const bytes = new Uint8Array(10 + head.length + rows * cols * 4);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  new DataView(bytes.buffer).setUint16(8, head.length, true);
  bytes.set(new TextEncoder().encode(head), 10);
  const data = new Float32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = Math.sin(i * 1.37 + seed);
  bytes.set(new Uint8Array(data.buffer), 10 + head.length);
  return bytes;
}

/** The families of the campaign. */
export function families(): Family[] {
  const plainCli: Family = {
    name: "plain (cairn demo)",
    job: "demo",
    prepare: async () => {},
    command: (dir) =>
      cairnCommand([
        "--store",
        storeOf(dir),
        "--json",
        "demo",
        "--rows",
        "4000",
        "--steps",
        "10",
        "--delay",
        "15ms",
      ]),
    progress: /"step-done"/,
    lines: 21,
    output: (dir) => exportJob(dir, "demo"),
    inFlight: 1,
  };
  const plainLib: Family = {
    name: "plain (runJob)",
    library: true,
    job: "killme",
    prepare: async () => {},
    command: (dir) =>
      scriptCommand(repoPath("tests", "fixtures", "kill_job.ts"), [
        storeOf(dir),
        join(dir, "side.txt"),
        String(PLAIN_STEPS),
      ]),
    progress: /^(computed|cached) /,
    lines: PLAIN_STEPS,
    output: (dir) => exportJob(dir, "killme"),
    sideEffects: sideEffectsOf(
      "side.txt",
      Array.from(
        { length: PLAIN_STEPS },
        (_, i) => `step-${String(i).padStart(3, "0")}`,
      ),
    ),
    inFlight: 1,
  };
  const map: Family = {
    name: "map",
    library: true,
    job: "kill-square",
    prepare: async () => {},
    command: (dir) =>
      scriptCommand(repoPath("tests", "fixtures", "map_kill_child.ts"), [
        storeOf(dir),
        join(dir, "side.txt"),
        join(dir, "result.json"),
      ]),
    // The fixture prints nothing: kills are placed by time.
    progress: /^$/,
    lines: 0,
    output: (dir) => readFile(join(dir, "result.json"), "utf8"),
    sideEffects: sideEffectsOf(
      "side.txt",
      Array.from({ length: MAP_ITEMS }, (_, i) => String(i)),
    ),
    // Two batches of 100 items in flight at most.
    inFlight: 200,
  };
  const knn: Family = {
    name: "kNN",
    library: true,
    job: "knn-kill",
    prepare: (dir) => writeFile(join(dir, "ref.npy"), npyBytes(600, 16)),
    command: (dir) =>
      scriptCommand(repoPath("tests", "fixtures", "knn_job_child.ts"), [
        "knn",
        storeOf(dir),
        join(dir, "ref.npy"),
        join(dir, "out"),
        "40",
        "5",
      ]),
    progress: /^step /,
    lines: 15,
    output: (dir) => filesOf(join(dir, "out")),
    inFlight: 1,
  };
  const pipeline: Family = {
    name: "pipeline",
    job: "",
    prepare: async (dir) => {
      const components = repoPath(
        "tests",
        "fixtures",
        "pipeline_components.ts",
      );
      const log = join(dir, "side.txt");
      await writeFile(
        join(dir, "p.conf"),
        `pipeline {
  pipeline-name = "Torture"
  checkpoint { enabled = true, location = "${
          storeOf(dir)
        }", auto-resume = true, cleanup-on-success = false }
  pipeline-components = [
    { instance-type = "${components}#Source", instance-name = Source, instance-config { log = "${log}", n = 48 } }
    { instance-type = "${components}#Slow", instance-name = Slow, instance-config { log = "${log}", parts = ${PARTS}, delayMs = 20 } }
    { instance-type = "${components}#Sum", instance-name = Sum, instance-config { log = "${log}" } }
  ]
}
`,
      );
    },
    command: (dir) =>
      cairnCommand(["--json", "pipeline", "run", join(dir, "p.conf")]),
    progress: /^$/,
    lines: 0,
    output: async (dir, exit) => {
      const { runId } = JSON.parse(exit.stdout) as { runId: string };
      const out = await runChild(cairnCommand([
        "--store",
        storeOf(dir),
        "pipeline",
        "output",
        runId,
      ]));
      if (out.code !== 0) {
        throw new Error(`Cannot read pipeline output: ${out.stderr}`);
      }
      return out.stdout;
    },
    sideEffects: sideEffectsOf(
      "side.txt",
      Array.from({ length: PARTS }, (_, i) => `Slow ${i}`),
    ),
    // The last component ran: the kill landed after the run's work was done.
    endedBeforeKill: async (dir) =>
      (await countLines(join(dir, "side.txt"))).has("Sum") ? PARTS : 0,
    inFlight: 1,
  };
  const processor: Family = {
    name: "processor",
    job: "",
    prepare: async (dir) => {
      const lines = Array.from(
        { length: PROCESSOR_ROWS },
        (_, i) => JSON.stringify({ id: i, text: `row ${i}`, v: i / 2 }),
      );
      await writeFile(join(dir, "in.jsonl"), lines.join("\n") + "\n");
      await writeFile(
        join(dir, "schema.json"),
        JSON.stringify({
          type: "object",
          properties: {
            id: { type: "integer" },
            text: { type: "string" },
            v: { type: "number" },
          },
          required: ["id", "text"],
        }),
      );
    },
    command: (dir) =>
      cairnCommand([
        "--store",
        storeOf(dir),
        "--json",
        "processor",
        "run",
        "jsonl-normalize",
        "--dataset",
        "torture",
        "--input",
        join(dir, "in.jsonl"),
        "--schema",
        join(dir, "schema.json"),
        "--out",
        join(dir, "out.jsonl"),
        "--checkpoint-every",
        "100",
        "--retry-delay",
        "0s",
      ]),
    progress: /^\{"type":"/,
    lines: 40,
    output: (dir) => readFile(join(dir, "out.jsonl"), "utf8"),
    inFlight: 100,
  };
  const dataflow: Family = {
    name: "dataflow",
    job: "killme",
    library: true,
    prepare: async () => {},
    command: (dir) =>
      scriptCommand(repoPath("tests", "fixtures", "dataflow_kill_child.ts"), [
        storeOf(dir),
        "1",
      ]),
    progress: /^call /,
    lines: 46,
    output: (_dir, exit) => {
      const line = exit.stdout.split("\n").find((l) => l.startsWith("result "));
      if (line === undefined) {
        return Promise.reject(new Error("The dataflow printed no result"));
      }
      // Each run advances the dataflow's logical time: not part of the data.
      return Promise.resolve(line.replace(/,"time":\d+\}$/, "}"));
    },
    inFlight: 1,
  };
  const all = [plainCli, plainLib, map, knn, pipeline, processor, dataflow];
  const s3 = s3Target();
  if (s3.skip === undefined) {
    const { bucket } = s3;
    // One prefix per episode directory, unique to the campaign's work dir.
    const url = (dir: string) =>
      `s3://${bucket}/torture/${basename(dirname(dir))}/${basename(dir)}`;
    all.push({
      ...plainCli,
      name: "plain (cairn demo on S3)",
      store: url,
      prepare: async (dir) => {
        await createS3Client(parseS3Url(url(dir))).createBucket();
      },
      command: (dir) =>
        cairnCommand([
          "--store",
          url(dir),
          "--json",
          "demo",
          "--rows",
          "4000",
          "--steps",
          "10",
          "--delay",
          "15ms",
        ]),
      output: (dir) => exportJob(dir, "demo", url(dir)),
    });
  }
  return all;
}
