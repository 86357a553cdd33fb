"""Time exact kNN peers on the .npy files that bench/knn.ts wrote.

Usage: python3 bench/knn_peers.py REF.npy QUERIES.npy K OUT_DIR [SELF.npy]

Runs FAISS IndexFlatL2 and scikit-learn's brute-force NearestNeighbors on one
thread each, writes their neighbour indices as OUT_DIR/<peer>_index.npy
(int64, queries x K), and prints one JSON object per peer on stdout:
{"peer": ..., "status": "ok", "build_s": ..., "search_s": ...} or
{"peer": ..., "status": "skipped: not installed"}.

With SELF.npy it also runs a self-search (k = 1, self included) on that file
and reports the fraction of rows that find themselves first.

Set OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before starting this script so
BLAS stays on one thread; threadpoolctl is used as well when installed.
"""

import json
import sys
import time

import numpy as np


def emit(obj):
    print(json.dumps(obj), flush=True)


def one_thread():
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=1)
    except ImportError:
        return None


def run_faiss(ref, queries, k, out_dir, far):
    try:
        import faiss
    except ImportError:
        emit({"peer": "faiss", "status": "skipped: not installed"})
        return
    faiss.omp_set_num_threads(1)
    t0 = time.perf_counter()
    index = faiss.IndexFlatL2(ref.shape[1])
    index.add(ref)
    t1 = time.perf_counter()
    _, ids = index.search(queries, k)
    t2 = time.perf_counter()
    np.save(f"{out_dir}/faiss_index.npy", ids.astype(np.int64))
    result = {
        "peer": "faiss",
        "label": f"FAISS {faiss.__version__} IndexFlatL2",
        "status": "ok",
        "build_s": t1 - t0,
        "search_s": t2 - t1,
    }
    if far is not None:
        flat = faiss.IndexFlatL2(far.shape[1])
        flat.add(far)
        _, self_ids = flat.search(far, 1)
        result["self_first"] = float(
            np.mean(self_ids[:, 0] == np.arange(far.shape[0]))
        )
    emit(result)


def run_sklearn(ref, queries, k, out_dir, far):
    try:
        import sklearn
        from sklearn.neighbors import NearestNeighbors
    except ImportError:
        emit({"peer": "sklearn", "status": "skipped: not installed"})
        return
    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=1)
    nn.fit(ref)
    t1 = time.perf_counter()
    ids = nn.kneighbors(queries, return_distance=False)
    t2 = time.perf_counter()
    np.save(f"{out_dir}/sklearn_index.npy", ids.astype(np.int64))
    result = {
        "peer": "sklearn",
        "label": f"scikit-learn {sklearn.__version__} brute",
        "status": "ok",
        "build_s": t1 - t0,
        "search_s": t2 - t1,
    }
    if far is not None:
        self_ids = (
            NearestNeighbors(n_neighbors=1, algorithm="brute", n_jobs=1)
            .fit(far)
            .kneighbors(far, return_distance=False)
        )
        result["self_first"] = float(
            np.mean(self_ids[:, 0] == np.arange(far.shape[0]))
        )
    emit(result)


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    ref = np.ascontiguousarray(np.load(sys.argv[1]), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(sys.argv[2]), dtype=np.float32)
    k = int(sys.argv[3])
    out_dir = sys.argv[4]
    far = None
    if len(sys.argv) == 6:
        far = np.ascontiguousarray(np.load(sys.argv[5]), dtype=np.float32)
    limits = one_thread()
    run_faiss(ref, queries, k, out_dir, far)
    run_sklearn(ref, queries, k, out_dir, far)
    if limits is not None:
        limits.unregister()


if __name__ == "__main__":
    main()
