"""Rank fusion in two steps, as ranx lays it out: normalise each signal, then combine N of them.

A *signal* is one side's scores over a query's candidates. Normalisation (:data:`NORMS`) maps a
signal's raw scores to comparable numbers: ``minmax`` scales to [0, 1], ``rrf`` replaces each score
by ``1 / (k + rank)``. Fusion (:data:`FUSIONS`) names a normalisation and sums the normalised
signals with weights; a candidate a signal did not score counts 0 there.

:func:`fuse_arrays` is the numpy core, over candidates aligned by position; the engine's
:func:`fuse` (``{chunk_id: score}`` per signal) and the fusion grid of benchmarks/relevance.py
both call it, so the benchmark measures exactly what the engine ranks by.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .errors import SearchError
from .params import FusionName

Scores = Mapping[int, float]
Norm = Callable[[np.ndarray, int], np.ndarray]


def minmax_array(x: np.ndarray, k: int = 0) -> np.ndarray:
    """Scores scaled to [0, 1]; a single score (or all equal) maps to 1."""
    if len(x) == 0:
        return np.asarray(x, dtype=np.float64)
    lo, hi = float(x.min()), float(x.max())
    if hi - lo <= 1e-12:
        return np.ones(len(x), dtype=np.float64)
    return (np.asarray(x, dtype=np.float64) - lo) / (hi - lo)


def rank_array(x: np.ndarray) -> np.ndarray:
    """1-based ranks by descending score, ties broken by position (callers order candidates by id)."""
    order = np.lexsort((np.arange(len(x)), -np.asarray(x)))
    r = np.empty(len(x), dtype=np.float64)
    r[order] = np.arange(1, len(x) + 1)
    return r


def reciprocal_rank_array(x: np.ndarray, k: int = 60) -> np.ndarray:
    """``1 / (k + rank)``: reciprocal rank fusion's normalisation."""
    return 1.0 / (k + rank_array(x))


NORMS: dict[str, Norm] = {"minmax": minmax_array, "rrf": reciprocal_rank_array}
# fusion → (normalisation, scale of the weighted sum): RRF's 2·w keeps the classic
# sum 1 / (k + rank) when both weights are 0.5
FUSIONS: dict[str, tuple[str, float]] = {FusionName.convex.value: ("minmax", 1.0), FusionName.rrf.value: ("rrf", 2.0)}


def get_fusion(name: str) -> tuple[str, float]:
    try:
        return FUSIONS[str(name)]
    except KeyError:
        raise SearchError(f"unknown fusion {name!r}; choose one of: {', '.join(FUSIONS)}") from None


def fuse_arrays(
    signals: Sequence[np.ndarray],
    present: Sequence[np.ndarray | None],
    weights: Sequence[float],
    method: str = "convex",
    rrf_k: int = 60,
) -> np.ndarray:
    """Fused scores of candidates aligned by position.

    ``signals[i][j]`` is signal i's raw score of candidate j, ``present[i]`` marks the candidates
    signal i scored (None: all of them); each signal is normalised over its present candidates
    only, and absent ones count 0 in the weighted sum.
    """
    norm_name, scale = get_fusion(method)
    norm = NORMS[norm_name]
    n = len(signals[0]) if signals else 0
    fused = np.zeros(n, dtype=np.float64)
    for x, mask, w in zip(signals, present, weights, strict=True):
        if mask is None:
            fused += scale * w * norm(np.asarray(x), rrf_k)
        elif mask.any():
            fused[mask] += scale * w * norm(np.asarray(x)[mask], rrf_k)
    return fused


def fuse(
    signals: Sequence[Scores], weights: Sequence[float], method: str = "convex", rrf_k: int = 60
) -> dict[int, float]:
    """Fuse N signals given as ``{chunk_id: score}`` (a missing id: not scored by that signal)."""
    ids = sorted(set().union(*(s.keys() for s in signals)))
    if not ids:
        return {}
    arrays, masks = [], []
    for s in signals:
        arrays.append(np.fromiter((s.get(i, 0.0) for i in ids), dtype=np.float64, count=len(ids)))
        masks.append(np.fromiter((i in s for i in ids), dtype=bool, count=len(ids)))
    fused = fuse_arrays(arrays, masks, weights, method, rrf_k)
    return dict(zip(ids, fused.tolist(), strict=True))


# -- the two-sided forms the ranker uses (keyword and semantic, alpha the semantic weight) --------


def ranks(scores: Scores) -> dict[int, int]:
    """1-based ranks by descending score (ties broken by id for determinism)."""
    ordered = sorted(scores, key=lambda i: (-scores[i], i))
    return {cid: r for r, cid in enumerate(ordered, 1)}


def minmax(scores: Scores) -> dict[int, float]:
    """Scores scaled to [0, 1]; a single score (or all equal) maps to 1."""
    ids = list(scores)
    values = minmax_array(np.fromiter(scores.values(), dtype=np.float64, count=len(ids)))
    return dict(zip(ids, values.tolist(), strict=True))


def convex(keyword: Scores, semantic: Scores, k: int = 60, alpha: float = 0.5) -> dict[int, float]:
    """``alpha * minmax(semantic) + (1 - alpha) * minmax(keyword)``; a missing side counts 0.

    Unlike RRF the size of each side's lead survives, so a passage only one side found can still
    rank first when that side is confident about it.
    """
    return fuse([keyword, semantic], [1.0 - alpha, alpha], "convex", k)


def rrf(keyword: Scores, semantic: Scores, k: int = 60, alpha: float = 0.5) -> dict[int, float]:
    """Reciprocal rank fusion, each side weighted (``alpha`` for semantic, ``1 - alpha`` keyword).

    With ``alpha = 0.5`` this is the classic ``sum 1 / (k + rank)``.
    """
    return fuse([keyword, semantic], [1.0 - alpha, alpha], "rrf", k)
