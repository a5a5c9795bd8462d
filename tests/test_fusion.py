from __future__ import annotations

import pytest

from search.errors import SearchError
from search.fusion import convex, get_fusion, minmax, ranks, rrf


def test_ranks_break_ties_by_id() -> None:
    assert ranks({3: 1.0, 1: 1.0, 2: 5.0}) == {2: 1, 1: 2, 3: 3}


def test_rrf_hand_computed() -> None:
    kw = {1: 9.0, 2: 5.0, 3: 1.0}
    sem = {3: 0.9, 1: 0.8}
    fused = rrf(kw, sem, k=60, alpha=0.5)
    assert fused[1] == pytest.approx(1 / (60 + 1) + 1 / (60 + 2))
    assert fused[2] == pytest.approx(1 / (60 + 2))
    assert fused[3] == pytest.approx(1 / (60 + 3) + 1 / (60 + 1))


def test_rrf_alpha_weights_the_sides() -> None:
    fused = rrf({1: 1.0}, {2: 1.0}, k=10, alpha=0.75)
    assert fused[1] == pytest.approx(2 * 0.25 / 11)
    assert fused[2] == pytest.approx(2 * 0.75 / 11)


def test_minmax() -> None:
    assert minmax({1: 2.0, 2: 4.0, 3: 3.0}) == {1: 0.0, 2: 1.0, 3: 0.5}
    assert minmax({7: 3.0}) == {7: 1.0}
    assert minmax({}) == {}


def test_convex_hand_computed() -> None:
    kw = {1: 10.0, 2: 5.0, 3: 0.0}
    sem = {1: 0.5, 2: 0.9, 3: 0.7}
    fused = convex(kw, sem, alpha=0.6)
    assert fused[1] == pytest.approx(0.6 * 0.0 + 0.4 * 1.0)
    assert fused[2] == pytest.approx(0.6 * 1.0 + 0.4 * 0.5)
    assert fused[3] == pytest.approx(0.6 * 0.5 + 0.4 * 0.0)


def test_one_sided_passage_can_rank_first() -> None:
    # chunk 9 was found only by the semantic side, and it is far ahead there
    kw = {1: 3.0, 2: 2.9}
    sem = {9: 0.95, 1: 0.40, 2: 0.41}
    fused = convex(kw, sem, alpha=0.7)
    assert max(fused, key=fused.__getitem__) == 9


def test_unknown_fusion_lists_choices() -> None:
    with pytest.raises(SearchError, match=r"convex, rrf"):
        get_fusion("borda")


@pytest.mark.parametrize("fusion", ["convex", "rrf"])
def test_explain_sides_match_fusion(fusion: str) -> None:
    """--explain's rank and normalised score of each candidate (numpy, search/searcher.py) are those
    fusion computes: ranks by descending score with ties by id, norms over the side in id order."""
    import numpy as np

    from search.fusion import NORMS
    from search.searcher import _Side

    rng = np.random.default_rng(3)
    ids = rng.choice(10_000, size=400, replace=False)
    signal = {int(i): float(s) for i, s in zip(ids, rng.integers(0, 40, size=400) / 7.0, strict=True)}  # many ties
    order = sorted(signal)
    raw = np.array([signal[i] for i in order])
    norm = NORMS[get_fusion(fusion)[0]]
    side = _Side(np.array(order), raw, norm(raw, 60))
    want_norm = dict(zip(order, norm(raw, 60).tolist(), strict=True))
    want_rank = ranks(signal)
    assert all(side.at(c) == (want_norm[c], want_rank[c]) for c in signal)
    assert side.at(10_001) == (None, None)
