"""Issue 13 item 7 (hybrid p50 ≤ 30 ms at 100,000 sentences): what exact vector search costs, and what
would make it cheaper.

100,000 random unit vectors of 384 dimensions (multilingual-e5-small's) and 200 random unit queries,
one query at a time, top 100 (the engine's default candidates per side). Ways:

- ``faiss flat, 1 thread``: what the engine runs below HNSW_MIN (``IndexFlatIP``, OpenMP at one thread
  so it does not fight ONNX Runtime's spinning threads; search/vectors.py);
- ``faiss flat, 2 threads``: the same with both cores;
- ``numpy``: the stored matrix times the query (OpenBLAS's gemv), then ``argpartition``;
- ``faiss SQ8`` / ``faiss fp16``: a scalar-quantised copy (1 or 2 bytes a dimension) searched for 1,000
  candidates, which the float32 vectors then score exactly (so the cosines stay the engine's);
  recall@100 is against the exact top 100.

Random vectors are the worst case for a quantised copy (no structure); each way's time is the median
of its per-query latencies, the ways interleaved, median over 3 rounds. The memory each query streams
is stated beside it: exact search at this size is bound by memory bandwidth, not arithmetic.

    python benchmarks/vector_search.py     # ~2 minutes
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import heading, log, stamp, write_results

N, DIM, QUERIES, K, RESCORE = 100_000, 384, 200, 100, 1_000


def _unit(rows: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ways(x: np.ndarray) -> dict[str, tuple[Callable[[np.ndarray], np.ndarray], float]]:
    """Each way's search (a query → its top-K row numbers) and the megabytes one query streams."""
    import faiss

    flat = faiss.IndexFlatIP(DIM)
    flat.add(x)
    quantised: dict[str, Any] = {}
    for name, kind in (("SQ8", faiss.ScalarQuantizer.QT_8bit), ("fp16", faiss.ScalarQuantizer.QT_fp16)):
        sq = faiss.IndexScalarQuantizer(DIM, kind, faiss.METRIC_INNER_PRODUCT)
        sq.train(x)
        sq.add(x)
        quantised[name] = sq

    def faiss_flat(threads: int) -> Callable[[np.ndarray], np.ndarray]:
        def run(q: np.ndarray) -> np.ndarray:
            faiss.omp_set_num_threads(threads)
            return flat.search(q[None], K)[1][0]

        return run

    def numpy_gemv(q: np.ndarray) -> np.ndarray:
        s = x @ q
        top = np.argpartition(-s, K - 1)[:K]
        return top[np.argsort(-s[top])]

    def rescored(sq: Any) -> Callable[[np.ndarray], np.ndarray]:
        def run(q: np.ndarray) -> np.ndarray:
            faiss.omp_set_num_threads(1)
            cand = sq.search(q[None], RESCORE)[1][0]
            s = x[cand] @ q
            return cand[np.argsort(-s)[:K]]

        return run

    mb = N * DIM * 4 / 2**20
    return {
        "faiss flat, 1 thread": (faiss_flat(1), mb),
        "faiss flat, 2 threads": (faiss_flat(2), mb),
        "numpy": (numpy_gemv, mb),
        "faiss SQ8 + exact rescoring": (rescored(quantised["SQ8"]), mb / 4),
        "faiss fp16 + exact rescoring": (rescored(quantised["fp16"]), mb / 2),
    }


def main() -> None:
    figures: dict[str, Any] = stamp("python benchmarks/vector_search.py") | {"n": N, "dim": DIM, "k": K}
    x, queries = _unit(N, 0), _unit(QUERIES, 1)
    log("building the indexes")
    searches = ways(x)
    truth = [searches["numpy"][0](q) for q in queries]
    rounds: dict[str, list[float]] = {w: [] for w in searches}
    for r in range(3):
        log(f"round {r + 1} of 3")
        for w, (run, _) in searches.items():
            times = []
            for q in queries:
                t = time.perf_counter()
                run(q)
                times.append((time.perf_counter() - t) * 1000)
            rounds[w].append(statistics.median(times))
    figures["ways"] = {}
    for w, (run, mb) in searches.items():
        found = [set(run(q).tolist()) & set(t.tolist()) for q, t in zip(queries, truth, strict=True)]
        recall = statistics.mean(len(s) / K for s in found)
        ms = statistics.median(rounds[w])
        figures["ways"][w] = {"p50_ms": ms, "rounds_ms": rounds[w], "mb": mb, "gb_per_s": mb / 1024 / (ms / 1000)}
        figures["ways"][w]["recall@100"] = recall
    write_results("vector_search", figures, report(figures))


def report(f: dict[str, Any]) -> list[str]:
    lines = heading(
        "Exact vector search at 100,000 sentences", f, "Method: see the script's docstring (random unit vectors)."
    )
    lines += [
        f"{f['n']:,} vectors of {f['dim']} dimensions, top {f['k']}, one query at a time.",
        "",
        "| way | p50 ms (median of 3 rounds) | MB streamed a query | GB/s | recall@100 against exact |",
        "|---|---|---|---|---|",
    ]
    for w, v in f["ways"].items():
        lines.append(f"| {w} | {v['p50_ms']:.1f} | {v['mb']:.0f} | {v['gb_per_s']:.1f} | {v['recall@100']:.3f} |")
    return lines


if __name__ == "__main__":
    main()
