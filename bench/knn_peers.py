"""Time exact kNN peers on the .npy files that bench/knn.ts wrote.

Usage: python3 bench/knn_peers.py [--threads N] [--reps R] [--peers faiss,sklearn]
                                  [--whole PEER] REF.npy QUERIES.npy K OUT_DIR [FAR.npy]

In-process mode (default) runs each peer R times on N threads and prints one
JSON object per peer on stdout:
{"peer": ..., "label": ..., "status": "ok", "build_s": ..., "search_s": [...],
"search_cpu_s": [...]} (wall and process CPU seconds of each search),
or {"peer": ..., "status": "missing: <reason>"}. It writes the last run's
neighbour indices as OUT_DIR/<peer>_index.npy (int64, queries x K). With
FAR.npy it also reports the fraction of its rows that find themselves first
(k = 1, self included).

Whole-process mode (--whole PEER) does what `cairn knn` does in one process:
load both files, search once, save OUT_DIR/<peer>_index.npy and
OUT_DIR/<peer>_distance.npy, and exit; the caller times the process.

Thread counts are set through threadpoolctl and faiss.omp_set_num_threads;
the caller also sets OMP_NUM_THREADS / OPENBLAS_NUM_THREADS.
"""

import argparse
import json
import time

import numpy as np


def emit(obj):
    print(json.dumps(obj), flush=True)


def limit_threads(n):
    try:
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=n)
    except ImportError:
        return None


def faiss_search(ref, queries, k, threads):
    import faiss

    faiss.omp_set_num_threads(threads)
    t0 = time.perf_counter()
    index = faiss.IndexFlatL2(ref.shape[1])
    index.add(ref)
    t1 = time.perf_counter()
    c1 = time.process_time()
    dist, ids = index.search(queries, k)
    t2 = time.perf_counter()
    return ids, dist, t1 - t0, (t2 - t1, time.process_time() - c1)


def sklearn_search(ref, queries, k, threads):
    from sklearn.neighbors import NearestNeighbors

    t0 = time.perf_counter()
    nn = NearestNeighbors(n_neighbors=k, algorithm="brute", n_jobs=threads)
    nn.fit(ref)
    t1 = time.perf_counter()
    c1 = time.process_time()
    dist, ids = nn.kneighbors(queries)
    t2 = time.perf_counter()
    return ids, dist, t1 - t0, (t2 - t1, time.process_time() - c1)


PEERS = {"faiss": faiss_search, "sklearn": sklearn_search}


def label(peer):
    if peer == "faiss":
        import faiss

        return f"FAISS {faiss.__version__} IndexFlatL2"
    import sklearn

    return f"scikit-learn {sklearn.__version__} brute"


def missing(peer):
    try:
        __import__("faiss" if peer == "faiss" else "sklearn")
        return None
    except ImportError as e:
        return f"missing: {e} (run scripts/install_peers.sh)"


def load(path):
    return np.ascontiguousarray(np.load(path), dtype=np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--peers", default="faiss,sklearn")
    ap.add_argument("--whole")
    ap.add_argument("ref")
    ap.add_argument("queries")
    ap.add_argument("k", type=int)
    ap.add_argument("out_dir")
    ap.add_argument("far", nargs="?")
    args = ap.parse_args()
    limits = limit_threads(args.threads)
    if args.whole is not None:
        ids, dist, _, _ = PEERS[args.whole](
            load(args.ref), load(args.queries), args.k, args.threads
        )
        np.save(f"{args.out_dir}/{args.whole}_index.npy", ids.astype(np.int32))
        np.save(f"{args.out_dir}/{args.whole}_distance.npy", dist.astype(np.float32))
        return
    ref = load(args.ref)
    queries = load(args.queries)
    far = load(args.far) if args.far else None
    for peer in args.peers.split(","):
        why = missing(peer)
        if why is not None:
            emit({"peer": peer, "status": why})
            continue
        search = PEERS[peer]
        times = []
        cpu = []
        build = None
        ids = None
        for _ in range(args.reps):
            ids, _, b, (s, c) = search(ref, queries, args.k, args.threads)
            build = b
            times.append(s)
            cpu.append(c)
        np.save(f"{args.out_dir}/{peer}_index.npy", ids.astype(np.int64))
        result = {
            "peer": peer,
            "label": label(peer),
            "status": "ok",
            "build_s": build,
            "search_s": times,
            "search_cpu_s": cpu,
        }
        if far is not None:
            self_ids, _, _, _ = search(far, far, 1, args.threads)
            result["self_first"] = float(
                np.mean(self_ids[:, 0] == np.arange(far.shape[0]))
            )
        emit(result)
    if limits is not None:
        limits.unregister()


if __name__ == "__main__":
    main()
