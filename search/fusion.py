"""Rank fusion: small named functions from per-side scores to one fused score.

Each function takes ``{chunk_id: score}`` per side (missing = not found by that side) and
returns ``{chunk_id: fused}``. :data:`FUSIONS` names them for the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

Scores = Mapping[int, float]


def ranks(scores: Scores) -> dict[int, int]:
    """1-based ranks by descending score (ties broken by id for determinism)."""
    ordered = sorted(scores, key=lambda i: (-scores[i], i))
    return {cid: r for r, cid in enumerate(ordered, 1)}


def rrf(keyword: Scores, semantic: Scores, k: int = 60, alpha: float = 0.5) -> dict[int, float]:
    """Reciprocal rank fusion, each side weighted (``alpha`` for semantic, ``1 - alpha`` keyword).

    With ``alpha = 0.5`` this is the classic ``sum 1 / (k + rank)`` up to a factor of 2.
    """
    fused: dict[int, float] = {}
    for weight, side in ((1.0 - alpha, keyword), (alpha, semantic)):
        for cid, r in ranks(side).items():
            fused[cid] = fused.get(cid, 0.0) + 2.0 * weight / (k + r)
    return fused


def minmax(scores: Scores) -> dict[int, float]:
    """Scores scaled to [0, 1]; a single score (or all equal) maps to 1."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    if hi - lo <= 1e-12:
        return {cid: 1.0 for cid in scores}
    return {cid: (s - lo) / (hi - lo) for cid, s in scores.items()}


def convex(keyword: Scores, semantic: Scores, k: int = 60, alpha: float = 0.5) -> dict[int, float]:
    """``alpha * minmax(semantic) + (1 - alpha) * minmax(keyword)``; a missing side counts 0.

    Unlike RRF the size of each side's lead survives, so a passage only one side found can still
    rank first when that side is confident about it.
    """
    kw, sem = minmax(keyword), minmax(semantic)
    return {cid: alpha * sem.get(cid, 0.0) + (1.0 - alpha) * kw.get(cid, 0.0) for cid in kw.keys() | sem.keys()}


Fusion = Callable[..., dict[int, float]]
FUSIONS: dict[str, Fusion] = {"convex": convex, "rrf": rrf}


def get_fusion(name: str) -> Fusion:
    from .errors import SearchError

    try:
        return FUSIONS[name]
    except KeyError:
        raise SearchError(f"unknown fusion {name!r}; choose one of: {', '.join(FUSIONS)}") from None
