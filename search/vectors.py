"""The vector index: faiss inner product over L2-normalised float32 vectors, with int64 chunk ids.

Only this module imports faiss. Ids are the same chunk ids the keyword index stores, so both sides
name a passage the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import IndexFormatError
from .types import Hit


class VectorIndex:
    """Exact inner-product search with stable ids (``IndexIDMap2`` over ``IndexFlatIP``)."""

    def __init__(self, dim: int, index: object | None = None) -> None:
        import faiss

        self.dim = dim
        self._faiss = faiss
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        self._faiss.normalize_L2(vectors)
        self.index.add_with_ids(vectors, np.ascontiguousarray(ids, dtype=np.int64))  # type: ignore[attr-defined]

    def remove(self, ids: np.ndarray) -> int:
        """Drop the vectors of ``ids``; returns how many were there."""
        if len(ids) == 0:
            return 0
        return int(self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))  # type: ignore[attr-defined]

    def ids(self) -> np.ndarray:
        """Every id held, in storage order."""
        return self._faiss.vector_to_array(self.index.id_map).astype(np.int64)  # type: ignore[attr-defined]

    def search(self, query: np.ndarray, k: int) -> list[Hit]:
        if self.count == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        scores, ids = self.index.search(q, min(k, self.count))  # type: ignore[attr-defined]
        return [Hit(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=False) if i >= 0]

    def similarities(self, query: np.ndarray, ids: list[int]) -> dict[int, float]:
        """Exact cosine of ``query`` to each of ``ids`` (to score candidates the other side found)."""
        if not ids:
            return {}
        vecs = np.vstack([self.index.reconstruct(int(i)) for i in ids])  # type: ignore[attr-defined]
        sims = vecs @ np.asarray(query, dtype=np.float32).reshape(-1)
        return {int(i): float(s) for i, s in zip(ids, sims, strict=False)}

    @property
    def count(self) -> int:
        return int(self.index.ntotal)  # type: ignore[attr-defined]

    def save(self, path: Path) -> None:
        self._faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, dim: int) -> VectorIndex:
        import faiss

        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            raise IndexFormatError(
                f"cannot read the vector index {path}; rebuild with `search index CORPUS --rebuild`"
            ) from None
        if index.d != dim:
            raise IndexFormatError(f"vector index {path} has {index.d} dimensions, the manifest says {dim}")
        return cls(dim, index)
