/**
 * Walking an input directory: every regular file, by relative path (with
 * "/" separators), sorted by code unit so the order never depends on the
 * file system.
 *
 * @module
 */
import { readdir, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";

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
