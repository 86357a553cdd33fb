// What checkpointing costs a pipeline, and what a resume saves: a pipeline of
// --components components run by cairn (fs store in a temp directory, each
// component's output stored as chunks) against the same components called in
// a plain loop; and a resume after the last component failed against a full
// checkpointed run from scratch.
//
//   npx deno run -A bench/pipeline.ts        npx bun run bench/pipeline.ts
//
// Options: --components N (10), --values N (100000), --work-ms X (50),
// --rounds N (5), --quick (5 components, 10,000 values, 10 ms, 3 rounds),
// --json (for bench/suite.ts: the text goes to stderr and the comparisons to
// stdout as suite rows).
//
// Each component does real work on the data passed along: the first makes a
// Float64Array of --values numbers, every later one maps the previous array to
// a new one (x * a + b); each also spins on performance.now() for --work-ms, a
// calibrated busy-wait standing in for the component's compute. The plain loop
// calls the same component objects in order, handing each output to the next.
// cairn's run is `runPipeline` with checkpoints on and the defaults otherwise
// (cleanup-on-success included), so each output is encoded, hashed, written
// and fsync'd, with a manifest record per component. For the resume, a run on
// a fresh store fails in the last component; `resumePipeline` then reads the
// stored output of the one before it and runs only the last (checked: every
// other component is called zero times). The text output also shows a run
// with checkpoints off, which is still a job storing every output but without
// memo keys, so nothing can resume it. Each round runs every variant,
// interleaved in the same process; medians over the rounds are reported, and
// only the ratios mean anything on this shared machine.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import {
  parsePipelineConfig,
  pipelineOutput,
  registerComponent,
  resumePipeline,
  runPipeline,
} from "../lib/pipeline/mod.ts";
import { busyWork, checkIntegerFlags, timed } from "./_measure.ts";
import { type BenchRow, median, ratio, runtimeName } from "./_table.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    components: { type: "string" },
    values: { type: "string" },
    "work-ms": { type: "string" },
    rounds: { type: "string" },
    quick: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const quick = flags.quick;
const COMPONENTS = Number(flags.components ?? (quick ? 5 : 10));
const VALUES = Number(flags.values ?? (quick ? 10_000 : 100_000));
const WORK_MS = Number(flags["work-ms"] ?? (quick ? 10 : 50));
const ROUNDS = Number(flags.rounds ?? (quick ? 3 : 5));
checkIntegerFlags("pipeline", [
  ["components", COMPONENTS, 2],
  ["values", VALUES, 1],
  ["rounds", ROUNDS, 1],
]);
if (!(WORK_MS >= 0)) {
  throw new RangeError(
    `Cannot run the pipeline benchmark: --work-ms must be a number >= 0, found "${WORK_MS}"`,
  );
}
const say = flags.json ? console.error : console.log;

const work = busyWork(WORK_MS);

/** Calls of each component index in the current variant. */
let calls: number[] = [];
/** When set, the last component throws (the failure a resume recovers from). */
let broken = false;

/** The one component type: instance-config { index } says which step it is. */
function benchStep(config: { index: number }) {
  return {
    run: (input: Float64Array | undefined): Float64Array => {
      calls[config.index] = (calls[config.index] ?? 0) + 1;
      if (broken && config.index === COMPONENTS - 1) {
        throw new Error("The last component is broken for this run");
      }
      work();
      if (config.index === 0) {
        const out = new Float64Array(VALUES);
        for (let i = 0; i < VALUES; i++) out[i] = (i * 7919) % 1000 / 10;
        return out;
      }
      const a = 1 + config.index / 1000;
      const out = new Float64Array(input!.length);
      for (let i = 0; i < out.length; i++) out[i] = input![i]! * a + 1;
      return out;
    },
  };
}
registerComponent("bench-step", benchStep);

const config = parsePipelineConfig({
  pipeline: {
    "pipeline-name": "Bench pipeline",
    checkpoint: { enabled: true },
    "pipeline-components": Array.from({ length: COMPONENTS }, (_, index) => ({
      "instance-type": "bench-step",
      "instance-name": `Step ${index + 1}`,
      "instance-config": { index },
    })),
  },
});

function checksum(values: Float64Array): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i]!;
  return s;
}

const dir = await mkdtemp(join(tmpdir(), "cairn-bench-pipeline-"));
let stores = 0;
const freshStore = () => join(dir, `store-${++stores}`);

async function plainLoop(): Promise<number> {
  calls = [];
  const components = config.components.map((c) =>
    benchStep(c.instanceConfig as { index: number })
  );
  const [ms, out] = await timed(() => {
    let value: Float64Array | undefined;
    for (const c of components) value = c.run(value);
    return Promise.resolve(value!);
  });
  expected ??= checksum(out);
  if (checksum(out) !== expected) throw new Error("Wrong plain loop output");
  return ms;
}

async function checkpointed(): Promise<number> {
  calls = [];
  const store = freshStore();
  const [ms, run] = await timed(() => runPipeline(config, { store }));
  if (run.status !== "completed") {
    throw new Error(`Checkpointed run ended "${run.status}": ${run.error}`);
  }
  const out = await pipelineOutput(run.runId, { store }) as Float64Array;
  if (checksum(out) !== expected) throw new Error("Wrong pipeline output");
  return ms;
}

/** runPipeline with checkpoints off: still a job storing each output, without memo keys (nothing can resume). */
async function unchecked(): Promise<number> {
  calls = [];
  const [ms, run] = await timed(() =>
    runPipeline(config, { store: freshStore(), checkpoint: false })
  );
  if (run.status !== "completed") {
    throw new Error(`Unchecked run ended "${run.status}": ${run.error}`);
  }
  return ms;
}

async function resumed(): Promise<number> {
  const store = freshStore();
  broken = true;
  const failed = await runPipeline(config, { store });
  broken = false;
  if (failed.failedAt?.index !== COMPONENTS - 1) {
    throw new Error(
      `The failing run stopped at "${failed.failedAt?.label}", expected the last component`,
    );
  }
  calls = [];
  const [ms, run] = await timed(() =>
    resumePipeline(config, failed.runId, { store })
  );
  if (run.status !== "completed") {
    throw new Error(`Resumed run ended "${run.status}": ${run.error}`);
  }
  const reran = calls.flatMap((n, i) => n ? [i] : []);
  if (reran.length !== 1 || reran[0] !== COMPONENTS - 1) {
    throw new Error(
      `The resume ran components ${
        JSON.stringify(reran)
      }, expected only the last (${COMPONENTS - 1})`,
    );
  }
  const out = await pipelineOutput(run.runId, { store }) as Float64Array;
  if (checksum(out) !== expected) throw new Error("Wrong resumed output");
  return ms;
}

/** The plain loop's output checksum, which every cairn run must match. */
let expected: number | undefined;

try {
  // Warm up every path once.
  await plainLoop();
  await checkpointed();
  await resumed();
  await unchecked();

  const times = {
    plain: [] as number[],
    full: [] as number[],
    resume: [] as number[],
    off: [] as number[],
  };
  for (let round = 0; round < ROUNDS; round++) {
    times.plain.push(await plainLoop());
    times.full.push(await checkpointed());
    times.resume.push(await resumed());
    times.off.push(await unchecked());
  }
  const plain = median(times.plain);
  const full = median(times.full);
  const resume = median(times.resume);
  const off = median(times.off);
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const mb = (COMPONENTS * VALUES * 8 / 2 ** 20).toFixed(1);
  say(
    `pipeline bench on ${runtimeName()}: ${COMPONENTS} components × ${WORK_MS} ms, ${VALUES} float64 values passed along (${mb} MiB stored per run), median of ${ROUNDS} interleaved rounds`,
  );
  say(`plain loop:                               ${ms(plain)}`);
  say(
    `runPipeline, checkpoints on:              ${ms(full)} (${
      ratio(full, plain)
    } the plain loop, ${
      ms((full - plain) / COMPONENTS)
    } more per component, the run's fixed costs included)`,
  );
  say(
    `runPipeline, checkpoints off:             ${ms(off)} (${
      ratio(off, plain)
    } the plain loop; outputs still stored, no memo keys)`,
  );
  say(
    `resumePipeline after the last one failed: ${ms(resume)} (${
      ratio(resume, full)
    } a full checkpointed run)`,
  );
  if (flags.json) {
    const caseName = `${COMPONENTS} components × ${WORK_MS} ms, ${
      VALUES.toLocaleString("en-US")
    } float64 values passed along`;
    const rows: BenchRow[] = [
      {
        section: "pipeline",
        case: `checkpointed run, ${caseName}`,
        cairn: ms(full),
        peer: "the same components in a plain loop",
        peerValue: ms(plain),
        ratio: ratio(full, plain),
      },
      {
        section: "pipeline",
        case: `resume after the last component failed, ${caseName}`,
        cairn: ms(resume),
        peer: "full checkpointed run from scratch",
        peerValue: ms(full),
        ratio: ratio(resume, full),
      },
    ];
    console.log(JSON.stringify(rows));
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
