import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { openFsStore } from "../store/fs.ts";
import { killAfterLines, startScript } from "./child_process.ts";
import { tempDir } from "./temp.ts";
import { testRandom } from "./test_seed.ts";

test("ManifestLog survives SIGKILL of an appending process at random moments", async () => {
  const root = join(await tempDir(), "store");
  await openFsStore(root);
  let committed = 0;
  const { between } = testRandom("ManifestLog kill points");
  for (let round = 0; round < 5; round++) {
    const child = startScript(
      new URL("./fixtures/log_appender.ts", import.meta.url),
      [root],
    );
    const out = await killAfterLines(child, between(5, 64));
    const reported = out.trim().split("\n").map(Number).filter((n) => n > 0);
    committed = Math.max(committed, ...reported);

    const store = await openFsStore(root);
    const log = await store.openLog("appender", "r");
    let expected = 1;
    for await (
      const entry of log.replay<{ n: number; pad: string }>({
        verifyChain: true,
      })
    ) {
      assert.equal(entry.seq, expected, "sequence numbers are contiguous");
      assert.equal(entry.body.n, expected, "every record is intact");
      expected++;
    }
    assert.ok(
      expected - 1 >= committed,
      `all ${committed} acknowledged records survive (found ${expected - 1})`,
    );
    await log.close();
  }
});
