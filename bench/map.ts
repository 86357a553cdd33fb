// Overhead of cairn's checkpointed map against a plain loop and a p-map-style
// limiter, and the time a resumed 1,000,000-item job takes to reach new work.
//
//   npx deno run -A bench/map.ts        npx bun run bench/map.ts
//
// Options: --items N (100000), --work-ms X (0.1), --rounds N (3),
// --resume-items N (1000000), --skip-resume, --json (for bench/suite.ts: the
// text goes to stderr and the comparisons to stdout as suite rows).
//
// The work is a calibrated busy-wait: it spins on performance.now() until
// --work-ms has passed (minus the measured cost of one performance.now() call),
// inside an async function. A deadline keeps the work's wall time fixed even
// when the JIT tier changes or this shared machine preempts the process; an
// arithmetic loop calibrated once drifted by 2-4x between call sites here.
// The work is CPU on the calling thread, so concurrency cannot overlap it: the
// comparison isolates what cairn adds (hashing items, encoding results, a
// chunk pair and a manifest record per batch, fsync'd on an fs store in a temp
// directory). The peers are the real p-map (a devDependency) and a
// dozen-line limiter (ordered results, at most N calls in flight), both at the
// same concurrency as cairn; the plain loop awaits one call at a time. A
// cairn run on a memory store splits cairn's cost into the engine (hashing,
// encoding, records) and the durable writes. Each variant runs --rounds
// times, interleaved in the same process, and the median time is reported.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import pMap from "npm:p-map@^7.1.1";
import { map } from "../lib/map/mod.ts";
import { busyWork, timed } from "./_measure.ts";

const { values: flags } = parseArgs({
  args: process.argv.slice(2),
  options: {
    items: { type: "string", default: "100000" },
    "work-ms": { type: "string", default: "0.1" },
    "resume-items": { type: "string", default: "1000000" },
    "skip-resume": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
    rounds: { type: "string", default: "3" },
  },
});
const ITEMS = Number(flags.items);
const WORK_MS = Number(flags["work-ms"]);
const RESUME_ITEMS = Number(flags["resume-items"]);
const ROUNDS = Number(flags.rounds);
const say = flags.json ? console.error : console.log;
const BATCH = 100;
const CONCURRENCY = 8;
const runtime = typeof (globalThis as { Deno?: { version: { deno: string } } })
    .Deno !== "undefined"
  ? `deno ${
    (globalThis as unknown as { Deno: { version: { deno: string } } }).Deno
      .version.deno
  }`
  : `bun ${(process.versions as Record<string, string>).bun}`;

const spin = busyWork(WORK_MS);
function work(x: number): Promise<number> {
  spin();
  return Promise.resolve(x * 2 + 1);
}

function check(out: number[]): void {
  if (out.length !== ITEMS || out[ITEMS - 1] !== (ITEMS - 1) * 2 + 1) {
    throw new Error("wrong result");
  }
}

async function limited<T, R>(
  items: readonly T[],
  fn: (x: T) => Promise<R>,
  concurrency: number,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return out;
}

const dir = await mkdtemp(join(tmpdir(), "cairn-bench-map-"));
try {
  const items = Array.from({ length: ITEMS }, (_, i) => i);
  // Measure the work as the loops will see it.
  const [probe] = await timed(async () => {
    for (let i = 0; i < 5000; i++) await work(i);
  });
  // Warm up every path once on a small input.
  await map(items.slice(0, 2000), work, {
    store: join(dir, "warmup"),
    batchSize: BATCH,
    concurrency: CONCURRENCY,
  });

  const variants: [string, () => Promise<void>][] = [
    ["plain for loop (await each)", async () => {
      const out = new Array<number>(ITEMS);
      for (let i = 0; i < ITEMS; i++) out[i] = await work(items[i]!);
      check(out);
    }],
    [`p-map-style limiter, concurrency ${CONCURRENCY}`, async () => {
      check(await limited(items, work, CONCURRENCY));
    }],
    [`p-map 7, concurrency ${CONCURRENCY}`, async () => {
      check(await pMap(items, work, { concurrency: CONCURRENCY }));
    }],
    [
      `cairn map, batch ${BATCH}, concurrency ${CONCURRENCY}, memory store`,
      async () => {
        check(
          await map(items, work, {
            store: `memory:bench-map-${round}`,
            batchSize: BATCH,
            concurrency: CONCURRENCY,
          }),
        );
      },
    ],
    [
      `cairn map, batch ${BATCH}, concurrency ${CONCURRENCY}, fs store`,
      async () => {
        // A fresh store each round: everything is computed and written.
        check(
          await map(items, work, {
            store: join(dir, `fresh-${round}`),
            batchSize: BATCH,
            concurrency: CONCURRENCY,
          }),
        );
      },
    ],
  ];
  let round = 0;
  const all: number[][] = variants.map(() => []);
  for (; round < ROUNDS; round++) {
    for (let v = 0; v < variants.length; v++) {
      const [ms] = await timed(variants[v]![1]);
      all[v]!.push(ms);
    }
  }
  const med = (v: number[]) => {
    const s = [...v].sort((a, b) => a - b);
    return s.length % 2
      ? s[s.length >> 1]!
      : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const medians = all.map(med);
  const rows: [string, number][] = variants.map((
    [name],
    v,
  ) => [name, medians[v]!]);
  const [tFor, tLimit, , tMem, tMap] = medians as [
    number,
    number,
    number,
    number,
    number,
  ];
  if (flags.json) {
    const [mFor, , mPMap, , mMap] = medians as number[];
    const cairnCell = `${(mMap! / 1000).toFixed(2)} s`;
    const n = ITEMS.toLocaleString("en-US");
    const caseName =
      `map ${n} items × ${WORK_MS} ms, batch ${BATCH}, concurrency ${CONCURRENCY}`;
    console.log(JSON.stringify([
      {
        section: "map",
        case: caseName,
        cairn: cairnCell,
        peer: "plain awaited for loop",
        peerValue: `${(mFor! / 1000).toFixed(2)} s`,
        ratio: `${(mMap! / mFor!).toFixed(3)}×`,
      },
      {
        section: "map",
        case: caseName,
        cairn: cairnCell,
        peer: `p-map 7, concurrency ${CONCURRENCY}`,
        peerValue: `${(mPMap! / 1000).toFixed(2)} s`,
        ratio: `${(mMap! / mPMap!).toFixed(3)}×`,
      },
    ]));
  }
  const [tRerun] = await timed(async () => {
    check(
      await map(items, work, {
        store: join(dir, "fresh-0"),
        batchSize: BATCH,
        concurrency: CONCURRENCY,
      }),
    );
  });
  rows.push(["cairn map again (finished run, all read back)", tRerun]);
  const [tMemo] = await timed(async () => {
    await map([...items, -1], work, {
      store: join(dir, "fresh-0"),
      batchSize: BATCH,
      concurrency: CONCURRENCY,
    });
  });
  rows.push(["cairn map, same items + 1 new (new job, memo)", tMemo]);

  say(
    `map bench on ${runtime}: ${
      ITEMS.toLocaleString("en-US")
    } items, work = calibrated busy loop in an async fn, ${
      (probe / 5000).toFixed(3)
    } ms/call measured (target ${WORK_MS} ms), median of ${ROUNDS} interleaved rounds`,
  );
  const width = Math.max(...rows.map(([name]) => name.length));
  say(
    `${"variant".padEnd(width)}  ${"time".padStart(9)}  vs for  vs limiter`,
  );
  for (const [name, ms] of rows) {
    say(
      `${name.padEnd(width)}  ${(ms / 1000).toFixed(2).padStart(7)} s  ${
        (ms / tFor).toFixed(3).padStart(6)
      }  ${(ms / tLimit).toFixed(3).padStart(9)}`,
    );
  }
  say(
    `cairn overhead at batch ${BATCH}: ${
      ((tMap / tLimit - 1) * 100).toFixed(1)
    }% vs the limiter, ${
      ((tMap / tFor - 1) * 100).toFixed(1)
    }% vs the for loop (target <= 10%); per batch of ${BATCH} over the limiter: ${
      ((tMap - tLimit) / (ITEMS / BATCH)).toFixed(2)
    } ms on the fs store, ${
      ((tMem - tLimit) / (ITEMS / BATCH)).toFixed(2)
    } ms on the memory store (the engine without durable writes)`,
  );

  const perCall = probe / 5000;
  if (Math.abs(perCall / WORK_MS - 1) > 0.2) {
    say(
      `warning: a ${WORK_MS} ms call took ${
        perCall.toFixed(3)
      } ms here, so the machine is too loaded for these ratios to mean much; rerun when it is quieter`,
    );
  }
  if (!flags["skip-resume"]) {
    const store = join(dir, "resume");
    const big = Array.from({ length: RESUME_ITEMS }, (_, i) => i);
    const stopAt = Math.floor(RESUME_ITEMS * 0.99);
    const controller = new AbortController();
    const inc = (x: number) => {
      if (x === stopAt) controller.abort();
      return x + 1;
    };
    const [tSetup] = await timed(() =>
      map(big, inc, {
        store,
        batchSize: BATCH,
        concurrency: CONCURRENCY,
        name: "resume",
        signal: controller.signal,
      }).catch((e: unknown) => {
        if ((e as Error).name !== "InterruptedError") throw e;
      })
    );
    let firstWork: number | undefined;
    let calls = 0;
    const start = performance.now();
    const [tResume, out] = await timed(() =>
      map(big, (x: number) => {
        firstWork ??= performance.now();
        calls++;
        return x + 1;
      }, { store, batchSize: BATCH, concurrency: CONCURRENCY, name: "resume" })
    );
    if (out[RESUME_ITEMS - 1] !== RESUME_ITEMS) throw new Error("wrong result");
    say(
      `resume of a ${
        RESUME_ITEMS.toLocaleString("en-US")
      }-item job stopped at ${stopAt.toLocaleString("en-US")} (setup ${
        (tSetup / 1000).toFixed(1)
      } s): first new work after ${
        ((firstWork! - start) / 1000).toFixed(3)
      } s (target < 2 s); ${
        calls.toLocaleString("en-US")
      } items computed; whole call ${(tResume / 1000).toFixed(2)} s`,
    );
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
