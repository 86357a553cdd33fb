/**
 * Writing a file so that readers see either the old file or the whole new
 * one, never a part. The store's fs discipline (`store/files.ts`) does the
 * work: temp file beside the target, fsync, rename, fsync of the directory.
 *
 * @module
 */
export {
  writeFileAtomically,
  type WriteFileAtomicallyOptions,
} from "../store/files.ts";
