"""The vector index: faiss inner product over L2-normalised float32 vectors, with int64 chunk ids.

Only this module imports faiss. Ids are the same chunk ids the keyword index stores, so both sides
name a passage the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexFormatError, env_setting, rebuild_hint
from .types import Hit

# Below this many vectors search is exact: it streams every vector (about 19 ms at 100,000 on one
# core, bound by memory bandwidth: benchmarks/results/vector_search.md), and it never misses. HNSW
# answers in ~4 ms but its recall@10 against exact search was 0.99 on scifact and only 0.87-0.93 on a
# mixed German/English 100,000-sentence corpus (benchmarks/results/speed.md), so the graph is built
# only where exact search gets too slow.
HNSW_MIN = 250_000  # SEARCH_HNSW_MIN sets another (hnsw_min)
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_FILE = "vectors.hnsw"  # beside vectors.faiss in a generation
HNSW_EF_SEARCH = 512  # recall@10 on scifact ×2: 256 → 0.990, 512 → 0.996; on the mixed corpus 0.894 → 0.909


def hnsw_min(default: int = HNSW_MIN) -> int:
    """From how many vectors on a build adds the HNSW graph: ``SEARCH_HNSW_MIN``, else ``default``."""
    return env_setting("SEARCH_HNSW_MIN", default, int, lambda v: v >= 1, "a whole number of sentences from 1 on")


FEW_ALLOWED = 5_000  # a filter that lets this many vectors through (or a twentieth) is scored directly


class VectorIndex:
    """Inner-product search with stable ids.

    The exact ``IndexIDMap2(IndexFlatIP)`` is the source of truth: updates remove and add there,
    and exact cosines for fusion are reconstructed from it. From ``HNSW_MIN`` vectors on, an
    HNSW graph over the same vectors is built per generation and answers top-k searches
    (recall@10 against exact search is measured in benchmarks/results/speed.md).
    """

    def __init__(self, dim: int, index: Any = None, ann: Any = None) -> None:
        import faiss

        self.dim = dim
        self._faiss: Any = faiss  # faiss's SWIG classes are typed loosely; their methods are checked by the tests
        self.index: Any = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.ann: Any = ann

    def build_ann(self) -> None:
        """Build the HNSW graph over every stored vector (replacing an older one)."""
        faiss = self._faiss
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        hnsw = faiss.IndexHNSWFlat(self.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        ann = faiss.IndexIDMap(hnsw)
        flat = faiss.downcast_index(self.index.index)
        vectors = faiss.rev_swig_ptr(flat.get_xb(), self.count * self.dim).reshape(self.count, self.dim)
        ann.add_with_ids(np.ascontiguousarray(vectors), self.ids())
        self.ann = ann

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        self._faiss.normalize_L2(vectors)
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))

    def remove(self, ids: np.ndarray) -> int:
        """Drop the vectors of ``ids``; returns how many were there."""
        if len(ids) == 0:
            return 0
        self.ann = None  # a graph cannot forget; it is rebuilt for the next generation
        return int(self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))

    def ids(self) -> np.ndarray:
        """Every id held, in storage order."""
        return self._faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def search(self, query: np.ndarray, k: int, exact: bool = False, allowed: np.ndarray | None = None) -> list[Hit]:
        """The ``k`` nearest vectors; with ``allowed`` (sorted ids), only among those, exactly."""
        if self.count == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        if allowed is not None:
            return self._search_among(q, k, allowed)
        index = self.ann if self.ann is not None and not exact else self.index
        # one query: a single thread is faster than an OpenMP team fighting ONNX Runtime's
        # still-spinning threads for two cores (7.5 ms → 0.7 ms at 10,000 vectors)
        self._faiss.omp_set_num_threads(1)
        scores, ids = index.search(q, min(k, self.count))
        return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=False) if i >= 0]

    def _search_among(self, q: np.ndarray, k: int, allowed: np.ndarray) -> list[Hit]:
        if len(allowed) == 0:
            return []
        if len(allowed) <= max(FEW_ALLOWED, self.count // 20):  # few: their own vectors, one product
            sims = self.vectors(allowed.tolist()) @ q[0]
            top = np.argpartition(-sims, k - 1)[:k] if len(sims) > k else np.arange(len(sims))
            order = top[np.lexsort((allowed[top], -sims[top]))]
            return [Hit(int(allowed[i]), float(sims[i])) for i in order]
        self._faiss.omp_set_num_threads(1)  # many: the exact index, told to skip the others
        params = self._faiss.SearchParameters(sel=self._faiss.IDSelectorBatch(allowed))
        scores, ids = self.index.search(q, min(k, len(allowed)), params=params)
        return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=False) if i >= 0]

    def vectors(self, ids: list[int]) -> np.ndarray:
        """The stored (normalised) vectors of ``ids``, one row each."""
        if not ids:
            return np.zeros((0, self.dim), dtype=np.float32)
        keys = np.ascontiguousarray(ids, dtype=np.int64)
        return self.index.reconstruct_batch(keys)

    def similarities(self, query: np.ndarray, ids: list[int]) -> dict[int, float]:
        """Exact cosine of ``query`` to each of ``ids`` (to score candidates the other side found)."""
        if not ids:
            return {}
        # in float64: a float32 product's last bits depend on how many rows BLAS is given at once, and a
        # sharded index asks each shard for its own rows (search/sharded.py); this way each cosine is the same
        sims = self.vectors(ids).astype(np.float64) @ np.asarray(query, dtype=np.float64).reshape(-1)
        return {int(i): float(s) for i, s in zip(ids, sims, strict=False)}

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def ann_ids(self) -> np.ndarray | None:
        """The ids the HNSW graph holds (None without a graph)."""
        if self.ann is None:
            return None
        return self._faiss.vector_to_array(self.ann.id_map).astype(np.int64)

    def sample_norms(self, n: int) -> np.ndarray:
        """L2 norms of about ``n`` stored vectors, spread over the index (they should all be 1)."""
        ids = self.ids()
        sample = ids[:: max(1, len(ids) // n)].tolist()
        return np.asarray(np.linalg.norm(self.vectors(sample), axis=1))

    def save(self, path: Path) -> None:
        """Write the exact index (the graph, where there is one, goes with :meth:`save_ann`)."""
        self._faiss.write_index(self.index, str(path))

    def save_ann(self, path: Path) -> None:
        """Write the HNSW graph beside the exact index at ``path``."""
        if self.ann is not None:
            self._faiss.write_index(self.ann, str(path.with_name(HNSW_FILE)))

    @classmethod
    def load(cls, path: Path, dim: int) -> VectorIndex:
        import faiss

        try:
            index: Any = faiss.read_index(str(path))
            graph = path.with_name(HNSW_FILE)
            ann: Any = faiss.read_index(str(graph)) if graph.exists() else None
        except RuntimeError:
            raise IndexFormatError(f"cannot read the vector index {path}; {rebuild_hint(path.parent.parent)}") from None
        if index.d != dim:
            raise IndexFormatError(f"vector index {path} has {index.d} dimensions, the manifest says {dim}")
        if ann is not None:
            hnsw: Any = faiss.downcast_index(ann.index)
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
        return cls(dim, index, ann)
