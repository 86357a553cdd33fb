/**
 * A LazyFS-style power-cut model for cairn, driven by the sync hook of
 * `store/files.ts`. What is durable is what the last fsync/fdatasync of each
 * file and of each directory showed: a file's bytes as of its last sync, a
 * directory's entries (names to inodes) as of its last sync. Writes, renames,
 * links and unlinks made after that are lost at the cut. The tree under the
 * watched root as it was when the model started counts as durable.
 *
 * The cut falls at a chosen sync: the hook throws from that sync on, so the
 * process's durable history ends just before it. {@linkcode PowerCutModel.materialize}
 * then writes the durable image into a fresh directory, where the job is
 * reopened, resumed and verified.
 *
 * Snapshots are read just after a sync returns, so a write racing that read
 * can make the image slightly more durable than a real disk would be (never
 * less): the model can miss a bug in such a window, but reports no false
 * losses.
 *
 * @module
 */
import * as fs from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { setSyncObserver, type SyncObserver } from "../store/files.ts";

/** Thrown by every sync from the cut on. */
export class PowerCutError extends Error {
  /**
   * @param sync The sync number the cut fell at.
   */
  constructor(readonly sync: number) {
    super(`Power cut at sync ${sync}`);
    this.name = "PowerCutError";
  }
}

interface Entry {
  ino: number;
  kind: "file" | "dir" | "other";
}

/** Durable state of a tree under one root, and the hook that keeps it. */
export class PowerCutModel {
  readonly root: string;
  /** Syncs seen under the root so far. */
  syncs = 0;
  /** Whether the cut has fallen. */
  cut = false;
  readonly #cutAt: number;
  #rootIno = 0;
  readonly #dirs = new Map<number, Map<string, Entry>>();
  readonly #files = new Map<number, Uint8Array>();
  #previous: SyncObserver | undefined;

  /**
   * @param root The watched tree; it must exist.
   * @param cutAt The sync at which power is cut; 0 or less: never.
   */
  constructor(root: string, cutAt = 0) {
    this.root = root;
    this.#cutAt = cutAt;
  }

  /** Take the current tree as durable and install the hook. */
  async start(): Promise<void> {
    this.#rootIno = (await fs.lstat(this.root)).ino;
    await this.#snapshotTree(this.root);
    this.#previous = setSyncObserver((path, handle) =>
      this.#observe(path, handle)
    );
  }

  /** Remove the hook. */
  stop(): void {
    setSyncObserver(this.#previous);
  }

  async #snapshotTree(dir: string): Promise<void> {
    const entries = await this.#snapshotDir(dir);
    for (const [name, entry] of entries) {
      const path = join(dir, name);
      if (entry.kind === "dir") await this.#snapshotTree(path);
      else if (entry.kind === "file") {
        this.#files.set(entry.ino, new Uint8Array(await fs.readFile(path)));
      }
    }
  }

  async #snapshotDir(dir: string): Promise<Map<string, Entry>> {
    const entries = new Map<string, Entry>();
    const stat = await fs.lstat(dir);
    for (const name of await fs.readdir(dir)) {
      const s = await fs.lstat(join(dir, name)).catch(() => undefined);
      if (s === undefined) continue;
      entries.set(name, {
        ino: s.ino,
        kind: s.isDirectory() ? "dir" : s.isFile() ? "file" : "other",
      });
    }
    this.#dirs.set(stat.ino, entries);
    return entries;
  }

  #inside(path: string): boolean {
    const rel = relative(this.root, path);
    return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== "..");
  }

  async #observe(path: string, handle: fs.FileHandle): Promise<void> {
    if (!this.#inside(path)) return;
    if (this.cut) throw new PowerCutError(this.syncs);
    this.syncs++;
    if (this.syncs === this.#cutAt) {
      this.cut = true;
      throw new PowerCutError(this.syncs);
    }
    const stat = await handle.stat();
    if (stat.isDirectory()) {
      await this.#snapshotDir(path);
      return;
    }
    // Read through the path when it still names the synced inode, else
    // through the descriptor (a write-only handle cannot be read back).
    const named = await fs.lstat(path).catch(() => undefined);
    const source = named?.ino === stat.ino
      ? path
      : `/proc/self/fd/${(handle as unknown as { fd: number }).fd}`;
    this.#files.set(stat.ino, new Uint8Array(await fs.readFile(source)));
  }

  /**
   * Write the durable image of the tree into `dest` (created; must not
   * exist): what a reboot after the cut would find. Lock files are left
   * out, since every holder died with the power.
   *
   * @param dest The new directory.
   * @returns Counts of directories and files written.
   */
  async materialize(dest: string): Promise<{ dirs: number; files: number }> {
    const counts = { dirs: 0, files: 0 };
    const write = async (ino: number, to: string, rel: string) => {
      await fs.mkdir(to);
      counts.dirs++;
      for (const [name, entry] of this.#dirs.get(ino) ?? []) {
        const path = join(to, name);
        const relPath = rel === "" ? name : `${rel}/${name}`;
        if (entry.kind === "dir") await write(entry.ino, path, relPath);
        else if (entry.kind === "file") {
          if (/(^|\/)locks\/[^/]*$/.test(relPath)) continue;
          // A name whose inode's data was never synced survives empty.
          await fs.writeFile(
            path,
            this.#files.get(entry.ino) ?? new Uint8Array(),
          );
          counts.files++;
        }
      }
    };
    await write(this.#rootIno, dest, "");
    return counts;
  }
}

/** What a job under test reports: its output, and the steps it finished. */
export interface PowerCutRun {
  /** The output bytes (results, files). */
  output: Uint8Array;
}

/**
 * A job under test: runs (or resumes) in `dir`, calling `done(key, cached)`
 * for each step it reports finished, and returns its output.
 */
export type PowerCutJob = (
  dir: string,
  done: (key: string, cached: boolean) => void,
) => Promise<Uint8Array>;

/** Outcome of one {@linkcode powerCutTrial}. */
export interface PowerCutOutcome {
  /** The sync the cut fell at, or 0 when the job ended first. */
  cutAt: number;
  /** The resumed job's output equals the uninterrupted one. */
  sameOutput: boolean;
  /** Steps reported finished before the cut that the resume computed again. */
  lost: string[];
  /** What `verifyStore(readData)` of the rebooted store reported as problems. */
  problems: string[];
  /** The resume's error, when it failed. */
  error?: string;
  /** Cut after the job returned: its output files survived as they were. */
  outputDurable?: boolean;
}

/**
 * Count the syncs an uninterrupted run makes in a fresh `dir`.
 *
 * @param dir A new empty directory.
 * @param job The job.
 * @param prepare Runs before the model starts: what it writes counts as durable.
 * @returns The syncs, the output, and the model (to materialize the image
 * of the completed run).
 */
export async function countSyncs(
  dir: string,
  job: PowerCutJob,
  prepare?: (dir: string) => Promise<void>,
): Promise<{ syncs: number; output: Uint8Array; model: PowerCutModel }> {
  await fs.mkdir(dir, { recursive: true });
  await prepare?.(dir);
  const model = new PowerCutModel(dir);
  await model.start();
  try {
    const output = await job(dir, () => {});
    return { syncs: model.syncs, output, model };
  } finally {
    model.stop();
  }
}

/**
 * Run `job` in `dir` with power cut at sync `cutAt`, reboot (the crashed
 * tree moves to `dir2`, and the durable image takes its place in `dir`, so
 * paths a job recorded stay valid), resume there, verify the store reading
 * every chunk, and compare the output with `expected`. With `cutAt` past the
 * job's last sync, the cut falls after it returned: the resume must then
 * compute nothing.
 *
 * @param dirs The crash directory and where the crashed tree is kept (both new).
 * @param cutAt The sync the cut falls at.
 * @param job The job.
 * @param expected The uninterrupted output.
 * @param verify Verifies the store under a directory; returns its problems.
 * @param files Reads the job's output files under a directory, if it writes any.
 * @param prepare Runs before the model starts: what it writes counts as durable.
 * @returns What survived.
 */
export async function powerCutTrial(
  dirs: [string, string],
  cutAt: number,
  job: PowerCutJob,
  expected: Uint8Array,
  verify: (dir: string) => Promise<string[]>,
  files?: (dir: string) => Promise<Uint8Array>,
  prepare?: (dir: string) => Promise<void>,
): Promise<PowerCutOutcome> {
  const [dir, dir2] = dirs;
  await fs.mkdir(dir, { recursive: true });
  await prepare?.(dir);
  const model = new PowerCutModel(dir, cutAt);
  await model.start();
  const acknowledged = new Set<string>();
  try {
    await job(dir, (key) => {
      if (!model.cut) acknowledged.add(key);
    });
  } catch (error) {
    if (!model.cut) throw error;
  } finally {
    model.stop();
  }
  await fs.rename(dir, dir2);
  await model.materialize(dir);
  const outcome: PowerCutOutcome = {
    cutAt: model.cut ? cutAt : 0,
    sameOutput: false,
    lost: [],
    problems: [],
  };
  if (!model.cut && files !== undefined) {
    const found = await files(dir).catch(() => new Uint8Array());
    outcome.outputDurable = Buffer.compare(found, expected) === 0;
  }
  try {
    const output = await job(dir, (key, cached) => {
      if (!cached && acknowledged.has(key)) outcome.lost.push(key);
    });
    outcome.sameOutput = Buffer.compare(output, expected) === 0;
  } catch (error) {
    outcome.error = String((error as Error)?.stack ?? error);
  }
  outcome.problems = await verify(dir);
  return outcome;
}
