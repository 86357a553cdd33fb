/**
 * The bounded max-heaps of upper bounds the kNN searches keep per query row
 * (the k-th smallest bound is a row's pruning threshold). Internal to
 * `lib/knn/`.
 *
 * @module
 */

/** Pushes onto a max-heap stored at `heap[base..base+size)`. */
export function heapPush(
  heap: Float64Array,
  base: number,
  size: number,
  value: number,
): void {
  let i = size;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    const pv = heap[base + parent]!;
    if (pv >= value) break;
    heap[base + i] = pv;
    i = parent;
  }
  heap[base + i] = value;
}

/** Replaces the top of a full max-heap and restores order. */
export function heapReplaceTop(
  heap: Float64Array,
  base: number,
  size: number,
  value: number,
): void {
  let i = 0;
  for (;;) {
    const left = 2 * i + 1;
    if (left >= size) break;
    const right = left + 1;
    let child = left;
    if (right < size && heap[base + right]! > heap[base + left]!) {
      child = right;
    }
    const cv = heap[base + child]!;
    if (cv <= value) break;
    heap[base + i] = cv;
    i = child;
  }
  heap[base + i] = value;
}

/**
 * Offers a candidate's upper bound to row `row`'s heap of its k smallest
 * bounds, and keeps the row's threshold (the k-th smallest bound, or the
 * initial value until k bounds are in) current.
 */
export function offerUpperBound(
  heaps: Float64Array,
  heapSizes: Int32Array | Uint32Array,
  thresholds: Float64Array,
  row: number,
  k: number,
  upper: number,
): void {
  const base = row * k;
  const size = heapSizes[row]!;
  if (size < k) {
    heapPush(heaps, base, size, upper);
    heapSizes[row] = size + 1;
    if (size + 1 === k) thresholds[row] = heaps[base]!;
  } else if (upper < thresholds[row]!) {
    heapReplaceTop(heaps, base, k, upper);
    thresholds[row] = heaps[base]!;
  }
}
