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
