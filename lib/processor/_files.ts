/**
 * Walking an input directory: every regular file, by relative path (with
 * "/" separators), sorted by code unit so the order never depends on the
 * file system.
 *
 * @module
 */
import { readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { fingerprint } from "../../store/cbor.ts";

/** A file under the input. */
export interface InputFile {
  /** Path relative to the input, with "/" separators. */
  rel: string;
  /** Absolute path. */
  path: string;
}

/**
 * Every regular file under `root` (or `root` itself if it is a file) whose
 * name passes `keep`, sorted by relative path. Symbolic links are not followed.
 *
 * @param root A directory or file.
 * @param keep Filter on the relative path. Default: all files.
 * @returns The files.
 */
export async function listFiles(
  root: string,
  keep: (rel: string) => boolean = () => true,
): Promise<InputFile[]> {
  const info = await stat(root).catch(() => undefined);
  if (info === undefined) {
    throw new TypeError(
      `Cannot read input "${root}": it does not exist; pass an existing file or directory`,
    );
  }
  if (info.isFile()) {
    const name = root.split(sep).at(-1)!;
    return keep(name) ? [{ rel: name, path: root }] : [];
  }
  const files: InputFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const rel = relative(root, path).split(sep).join("/");
        if (keep(rel)) files.push({ rel, path });
      }
    }
  };
  await walk(root);
  return files.sort((a, b) => a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0);
}

/**
 * A fingerprint of what `root` holds: every regular file's relative path,
 * size and modification time (content is not read). A missing input has one
 * too, so a later run sees it appear.
 *
 * @param root A directory or file.
 * @returns A hex fingerprint.
 */
export async function inputFingerprint(root: string): Promise<string> {
  const info = await stat(root).catch(() => undefined);
  if (info === undefined) return await fingerprint({ missing: root });
  if (!info.isDirectory()) {
    return await fingerprint([["", info.size, info.mtimeMs]]);
  }
  const listing: [string, number, number][] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.isFile()) {
        const s = await stat(path).catch(() => undefined);
        if (s === undefined) continue;
        listing.push([
          relative(root, path).split(sep).join("/"),
          s.size,
          s.mtimeMs,
        ]);
      }
    }
  };
  await walk(root);
  listing.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
  return await fingerprint(listing);
}
