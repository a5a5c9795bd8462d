"""BM25 over the term matrix: hand-computed scores, updates equal a fresh build."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from search.bm25 import BM25, K1, B, PassageBM25, _top
from search.termmatrix import TermMatrix, is_part

DOCS = {10: ["cat", "sat", "cat"], 11: ["dog", "sat"], 12: ["bird"], 13: ["cat", "dog", "bird", "fish"]}


def _matrix(docs: dict[int, list[str]]) -> TermMatrix:
    return TermMatrix.empty().update(np.zeros(0, dtype=np.int64), list(docs), list(docs.values()))


def _by_hand(docs: dict[int, list[str]], query: list[str]) -> dict[int, float]:
    n = len(docs)
    length = {cid: sum(not is_part(t) for t in terms) for cid, terms in docs.items()}  # parts: no length
    avgdl = sum(length.values()) / n
    out: dict[int, float] = {}
    for cid, terms in docs.items():
        score = 0.0
        for q in query:  # a repeated query word counts each time (query term frequency)
            tf = terms.count(q)
            if not tf:
                continue
            df = sum(q in t for t in docs.values())
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length[cid] / avgdl))
        if score:
            out[cid] = score
    return out


def test_scores_match_the_formula() -> None:
    bm = BM25(_matrix(DOCS))
    expected = _by_hand(DOCS, ["cat", "dog", "cat"])
    hits = bm.search(["cat", "dog", "cat"], k=10)
    assert {h.chunk_id: pytest.approx(h.score, rel=1e-5) for h in hits} == expected
    assert [h.chunk_id for h in hits] == sorted(expected, key=lambda c: (-expected[c], c))
    once = _by_hand(DOCS, ["cat", "dog"])
    assert [h.chunk_id for h in bm.search(["cat", "dog"], k=1)] == [max(once, key=once.get)] == [13]
    assert hits[0].chunk_id == 10  # "cat" asked twice: the chunk holding it twice comes first
    assert bm.scores_for(["cat"], [11, 13]) == {13: pytest.approx(_by_hand(DOCS, ["cat"])[13], rel=1e-5)}
    assert bm.search(["unknown"], k=5) == []


def test_update_equals_a_fresh_build(tmp_path: Path) -> None:
    m = _matrix(DOCS).update(np.array([11, 12]), [14, 15], [["fish", "fish"], ["cat", "emu"]])
    after = {10: DOCS[10], 13: DOCS[13], 14: ["fish", "fish"], 15: ["cat", "emu"]}
    m.save(tmp_path / "bm25.npz")
    loaded = BM25(TermMatrix.load(tmp_path / "bm25.npz"))
    fresh = BM25(_matrix(after))
    for q in (["cat"], ["fish", "dog"], ["emu", "bird", "cat"]):
        got = {h.chunk_id: h.score for h in loaded.search(q, 10)}
        assert got == pytest.approx({h.chunk_id: h.score for h in fresh.search(q, 10)})
        assert got == pytest.approx(_by_hand(after, q), rel=1e-5)
    assert loaded.m.row_ids.tolist() == [10, 13, 14, 15]


def test_documents_summed_from_sentences_and_passage_scores() -> None:
    sentences = _matrix(DOCS)
    groups = np.array([0, 0, 1, 1])  # chunks 10, 11 in document 0; 12, 13 in document 1
    docs = sentences.by_group(groups)
    whole = {0: DOCS[10] + DOCS[11], 1: DOCS[12] + DOCS[13]}
    assert docs.row_ids.tolist() == [0, 1]
    expected_docs = _by_hand(whole, ["cat", "fish"])
    assert {h.chunk_id: h.score for h in BM25(docs).search(["cat", "fish"], 5)} == pytest.approx(expected_docs)

    passage = PassageBM25(BM25(sentences), BM25(docs), groups)
    got = {h.chunk_id: h.score for h in passage.search(["cat", "fish"], 10)}
    own = _by_hand(DOCS, ["cat", "fish"])
    # only sentences holding a query word score; each gets its document's score plus half its own
    assert got == pytest.approx({10: expected_docs[0] + 0.5 * own[10], 13: expected_docs[1] + 0.5 * own[13]})
    assert passage.scores_for(["cat"], [10, 11]).keys() == {10}


def test_titles_count_in_their_document() -> None:
    sentences = _matrix(DOCS)
    groups = np.array([0, 0, 1, 1])
    docs = sentences.by_group(groups, [(1, ["cat", "emu"]), (0, [])])
    whole = {0: DOCS[10] + DOCS[11], 1: DOCS[12] + DOCS[13] + ["cat", "emu"]}
    assert docs.row_ids.tolist() == [0, 1]
    assert docs.doclen.tolist() == [5, 7]
    for q in (["cat"], ["emu", "dog"], ["cat", "fish", "sat"]):
        got = {h.chunk_id: h.score for h in BM25(docs).search(q, 5)}
        assert got == pytest.approx(_by_hand(whole, q), rel=1e-5)
    # the sentence matrix is untouched: a title word alone finds its document's first sentence (row 12),
    # scored by the document alone
    found = PassageBM25(BM25(sentences), BM25(docs), groups).search(["emu"], 5)
    assert [(h.chunk_id, h.score) for h in found] == [(12, pytest.approx(_by_hand(whole, ["emu"])[1], rel=1e-5))]


def test_each_column_lists_its_rows_in_ascending_order_after_updates() -> None:
    """BM25.term_scores finds a row in a column by binary search: update and by_group keep rows sorted."""
    import random

    rng = random.Random(7)
    vocab = [f"t{i}" for i in range(30)]
    m = TermMatrix.empty()
    next_id = 0
    for _ in range(6):
        new = [[rng.choice(vocab) for _ in range(rng.randint(1, 8))] for _ in range(40)]
        ids = list(range(next_id, next_id + len(new)))
        next_id += len(new)
        drop = np.array(rng.sample(m.row_ids.tolist(), min(10, len(m.row_ids))), dtype=np.int64)
        m = m.update(drop, ids, new)
        docs = m.by_group(m.row_ids // 5)
        for matrix in (m, docs):
            for c in range(len(matrix.terms)):
                col = matrix.rows[matrix.indptr[c] : matrix.indptr[c + 1]]
                assert np.all(np.diff(col) > 0)
        bm = BM25(m)
        for r, row_id in enumerate(m.row_ids[:20].tolist()):
            rows, scores = bm.scores(vocab)
            expected = float(scores[np.flatnonzero(rows == r)[0]]) if r in rows else 0.0
            assert sum(bm.term_scores(vocab, [row_id])[0].values()) == pytest.approx(expected, rel=1e-5)
        ids = m.row_ids[:20].tolist()
        assert bm.term_scores(vocab, [*ids, 10**9]) == [*(bm.term_scores(vocab, [i])[0] for i in ids), {}]


def test_a_long_query_ranks_by_documents_with_its_own_part_weight() -> None:
    """Past ``long_words`` words a sentence's own BM25 counts ``long_sentence_share``, and a compound-part
    column (``de+:``) ``long_part_weight`` instead of the matrix's ``part_weight`` (here 0.5 and 0.25)."""
    docs = {10: ["de:katz", "de+:katz"], 11: ["de:hund"], 12: ["de:katz"], 13: ["de:hund", "de+:katz", "de:vogel"]}
    sentences = _matrix(docs)
    groups = np.array([0, 0, 1, 1])
    whole = sentences.by_group(groups)
    passage = PassageBM25(BM25(sentences), BM25(whole), groups, 1.0, 0.5, (3, 0.01, 0.25))
    query = ["de:katz", "de+:katz", "de:hund"]

    def by_hand(words: int) -> dict[int, float]:
        share, part = (0.01, 0.25) if words > 3 else (0.5, 0.5)
        plain = [t for t in query if "+" not in t]

        def scored(rows: dict[int, list[str]]) -> dict[int, float]:
            whole_words, parts = _by_hand(rows, plain), _by_hand(rows, ["de+:katz"])
            return {r: whole_words.get(r, 0.0) + part * parts.get(r, 0.0) for r in rows}

        doc, own = scored({0: docs[10] + docs[11], 1: docs[12] + docs[13]}), scored(docs)
        return {c: doc[int(groups[i])] + share * own[c] for i, c in enumerate(docs)}

    for words in (3, 4):  # three words: the short rule; four: the long one
        got = {h.chunk_id: h.score for h in passage.search(query, 10, words=words)}
        assert got == pytest.approx(by_hand(words), rel=1e-5)
    assert by_hand(3) != pytest.approx(by_hand(4), rel=1e-3)  # the two rules give other scores


def test_the_top_k_of_tied_scores_are_the_lowest_ids() -> None:
    """Query syntax scores many rows alike (``*``, ``doc:``, ``NOT x``): the k kept must be those a sharded
    index's merge keeps, the lowest ids, not whichever the partition picked."""
    rng = np.random.default_rng(20261203)
    for _ in range(2000):
        row_ids = np.sort(rng.choice(1000, size=60, replace=False))
        rows = rng.choice(60, size=int(rng.integers(1, 40)), replace=False)
        scores = rng.integers(0, 4, size=len(rows)).astype(np.float32)
        k = int(rng.integers(1, 45))
        want = sorted(zip(row_ids[rows].tolist(), scores.tolist(), strict=True), key=lambda x: (-x[1], x[0]))[:k]
        assert [(h.chunk_id, h.score) for h in _top(row_ids, rows, scores, k)] == want


def test_updates_hold_exactly_each_rows_term_counts() -> None:
    """After random updates (empty rows, compound parts, every row dropped once), the matrix holds each
    row's terms with their counts, a length of its whole words, and no word that no row holds."""
    import random
    from collections import Counter

    rng = random.Random(11)
    vocab = [f"en:t{i}" for i in range(25)] + [f"de+:p{i}" for i in range(5)]
    m, held, next_id = TermMatrix.empty(), {}, 0
    for step in range(8):
        new = [[rng.choice(vocab) for _ in range(rng.randint(0, 9))] for _ in range(rng.randint(0, 30))]
        ids = list(range(next_id, next_id + len(new)))
        next_id += len(new)
        gone = list(held) if step == 4 else rng.sample(list(held), min(12, len(held)))
        m = m.update(np.array(gone, dtype=np.int64), ids, new)
        for i in gone:
            del held[i]
        held.update(zip(ids, (Counter(terms) for terms in new), strict=True))
        assert m.row_ids.tolist() == sorted(held)
        got: dict[int, Counter[str]] = {i: Counter() for i in held}
        for c, term in enumerate(m.terms.tolist()):
            lo, hi = m.indptr[c], m.indptr[c + 1]
            for r, tf in zip(m.rows[lo:hi].tolist(), m.tf[lo:hi].tolist(), strict=True):
                got[int(m.row_ids[r])][term] += int(tf)
        assert got == held
        assert m.doclen.tolist() == [sum(n for t, n in held[i].items() if not is_part(t)) for i in m.row_ids.tolist()]
        assert set(m.terms.tolist()) == set().union(*held.values())
