import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";

const made: string[] = [];
after(async () => {
  for (const dir of made) {
    await rm(dir, { recursive: true, force: true }).catch(() => {});
  }
});

/** A fresh temp directory, removed after the test file finishes. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "cairn-test-"));
  made.push(dir);
  return dir;
}
