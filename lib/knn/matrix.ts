/**
 * The dense float matrix the kNN family computes on. It lives in `lib/io/`
 * with the file formats that read and write it; this module keeps the kNN
 * files' imports short.
 *
 * @module
 */
export {
  hashMatrix,
  type Matrix,
  type MatrixData,
  matrixFrom,
  validateFinite,
  type ValidateFiniteOptions,
} from "../io/matrix.ts";
