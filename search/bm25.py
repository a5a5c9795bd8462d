"""BM25 over a term-frequency matrix: how the keyword side scores.

The index keeps each chunk's term frequencies (stoplist, Snowball stem, folding: search/analysis.py)
column by column, and a query sums the BM25 weights of its terms' columns with numpy, like bm25s
does (whoosh's pure-Python matchers needed ~14 ms for a long question over 10,000 sentences). Query
syntax (phrases, AND/OR/NOT, fields, fuzzy) is run over the same matrices by search/syntax.py.

BM25 with Lucene's idf, ``log(1 + (N - df + 0.5) / (df + 0.5))``, which gives words that occur
in most chunks almost no weight (whoosh's ``log(N / (df + 1)) + 1`` keeps at least 1), k1 = 1.2,
b = 0.75. Terms are keyed ``lang:term`` so each language's analysis stays apart. The parts of German
compounds are columns of their own, ``de+:term`` (search/compounds.py); they do not count in a row's
length. A query key may ask for a column at less than full weight: ``de+:schiff`` (the word inside
compounds) at ``part_weight``, ``de~:versicher`` (a part of a query compound) at ``query_part_weight``,
``de~+:versicher`` at both.

A key the query holds n times counts n times (query term frequency), as Lucene's repeated clauses,
Anserini's bag-of-words queries and bm25s count it. Short questions rarely repeat a word; a long query
(a paragraph pasted in) does, and its repeated words are what it is about: without the count,
whole-document BM25 lost 0.06 nDCG@10 on the long queries of benchmarks/results/long_queries.md.

The matrices (search/termmatrix.py) are stored per generation and updated with the index; weights
are computed at query time from the stored frequencies, so they always reflect the current collection.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import IndexFormatError
from .manifest import IDF_FORMS, Scoring
from .store import ChunkTable
from .termmatrix import TermMatrix
from .types import Hit

K1 = Scoring.k1
B = Scoring.b


@dataclass(frozen=True)
class Stats:
    """What BM25 weights depend on beyond a row's own frequencies: the number of rows, their total
    length, and each term's document frequency (``terms`` sorted for a sharded index's global
    statistics, any order for one matrix's own)."""

    rows: int
    length: float
    terms: np.ndarray
    df: np.ndarray

    def df_of(self, terms: np.ndarray) -> np.ndarray:
        """The document frequency of each of ``terms`` (0 for a term these statistics lack)."""
        if len(terms) == len(self.terms) and (terms is self.terms or np.array_equal(terms, self.terms)):
            return self.df
        if not len(self.terms):
            return np.zeros(len(terms), dtype=np.int64)
        at = np.minimum(np.searchsorted(self.terms, terms), len(self.terms) - 1)  # other terms: sorted (combine)
        return np.where(self.terms[at] == terms, self.df[at], 0)

    @classmethod
    def combine(cls, parts: Sequence[Stats]) -> Stats:
        """The statistics of the union of disjoint row sets (the shards of one index)."""
        terms = np.concatenate([p.terms for p in parts]) if parts else np.zeros(0, dtype="<U1")
        df = np.concatenate([p.df for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        uniq, inverse = np.unique(terms, return_inverse=True)
        total = np.bincount(inverse.ravel(), weights=df, minlength=len(uniq)).astype(np.int64)
        return cls(sum(p.rows for p in parts), float(sum(p.length for p in parts)), uniq, total)


class BM25:
    """Scores plain-word queries over a :class:`TermMatrix`."""

    def __init__(
        self,
        matrix: TermMatrix,
        k1: float = K1,
        b: float = B,
        part_weight: float = Scoring.part_weight,
        query_part_weight: float = Scoring.query_part_weight,
    ) -> None:
        self.m = matrix
        self.k1 = k1
        self.b = b
        self.part_weight = part_weight
        self.query_part_weight = query_part_weight
        self._weigh(self.stats())
        self.col = {str(t): i for i, t in enumerate(matrix.terms.tolist())}

    def stats(self) -> Stats:
        """This matrix's own collection statistics."""
        m = self.m
        return Stats(len(m.row_ids), float(m.doclen.sum(dtype=np.float64)), m.terms, np.diff(m.indptr))

    def use_stats(self, stats: Stats) -> None:
        """Score with collection-wide statistics (a shard of a sharded index scores as the whole would)."""
        self._weigh(stats)

    def _weigh(self, stats: Stats) -> None:
        n, m = stats.rows, self.m
        df = stats.df_of(m.terms).astype(np.float64)
        self.idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        avgdl = stats.length / n if n else 1.0  # lengths are whole numbers: the float64 sum is exact
        self.norm = (self.k1 * (1.0 - self.b + self.b * m.doclen / max(avgdl, 1e-9))).astype(np.float32)

    def column(self, key: str, part_weight: float | None = None) -> tuple[int | None, float]:
        """The column a query key reads and the weight it reads it at (see the module's docstring);
        ``part_weight`` replaces the matrix's own for one query (a long one, :class:`PassageBM25`)."""
        lang, colon, term = key.partition(":")
        if not colon:
            return self.col.get(key), 1.0
        weight = 1.0
        if "~" in lang:
            lang, weight = lang.replace("~", ""), self.query_part_weight
        if lang.endswith("+"):
            weight *= self.part_weight if part_weight is None else part_weight
        return self.col.get(f"{lang}:{term}"), weight

    def _weighted(self, terms: Iterable[str], part_weight: float | None = None) -> dict[int, tuple[float, str]]:
        """Columns to read, each once, in the order of the query's keys: the highest weight a key asks
        for it (times the number of times the query holds that key), and that key."""
        out: dict[int, tuple[float, str]] = {}
        for t, n in Counter(terms).items():
            c, w = self.column(t, part_weight)
            if c is not None and w * n > out.get(c, (0.0, ""))[0]:
                out[c] = (w * n, t)
        return out

    def scores(self, terms: Iterable[str], part_weight: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows that hold any of ``terms`` and their BM25 scores."""
        m = self.m
        cols = self._weighted(terms, part_weight)
        if not cols:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        acc = np.zeros(len(m.row_ids), dtype=np.float32)
        for c, (w, _) in cols.items():
            lo, hi = m.indptr[c], m.indptr[c + 1]
            rows = m.rows[lo:hi]  # each row once per column, so fancy-index addition is exact
            tf = m.tf[lo:hi]
            acc[rows] += (w * self.idf[c]) * tf * (self.k1 + 1) / (tf + self.norm[rows])
        hit = np.flatnonzero(acc)
        return hit, acc[hit]

    def search(self, terms: Iterable[str], k: int) -> list[Hit]:
        return _top(self.m.row_ids, *self.scores(terms), k)

    def term_scores(
        self, terms: Iterable[str], row_ids: Sequence[int], part_weight: float | None = None
    ) -> list[dict[str, float]]:
        """For each row id, each term's part of that row's score (terms it does not hold are left out):
        they sum to what :meth:`scores` gives that row. One binary search per term for all the rows."""
        m = self.m
        out: list[dict[str, float]] = [{} for _ in row_ids]
        if len(m.row_ids) == 0 or not out:
            return out
        wanted = np.asarray(row_ids, dtype=np.int64)
        pos = np.minimum(np.searchsorted(m.row_ids, wanted), len(m.row_ids) - 1)
        held = m.row_ids[pos] == wanted
        for c, (w, term) in self._weighted(terms, part_weight).items():  # each column once, named by its key
            lo, hi = int(m.indptr[c]), int(m.indptr[c + 1])
            col = m.rows[lo:hi]  # a column's rows ascend (update and by_group keep them so)
            at = np.minimum(np.searchsorted(col, pos), max(hi - lo - 1, 0))
            found = held & (col[at] == pos) if hi > lo else np.zeros(len(pos), dtype=bool)
            for i in np.flatnonzero(found).tolist():
                tf = m.tf[lo + at[i]]
                out[i][term] = float((w * self.idf[c]) * tf * (self.k1 + 1) / (tf + self.norm[pos[i]]))
        return out

    def scores_for(self, terms: Iterable[str], chunk_ids: Iterable[int]) -> dict[int, float]:
        rows, scores = self.scores(terms)
        if len(rows) == 0:
            return {}
        found = dict(zip(self.m.row_ids[rows].tolist(), scores.tolist(), strict=True))
        return {c: found[c] for c in chunk_ids if c in found}


def row_documents(chunks: ChunkTable, row_ids: np.ndarray) -> np.ndarray:
    """The document number of each row, from the chunk table."""
    order = np.argsort(chunks.ids)
    return chunks.docs[order[np.searchsorted(chunks.ids[order], row_ids)]]


DOC_WEIGHT = Scoring.document_share
SENTENCE_WEIGHT = Scoring.sentence_share


class PassageBM25:
    """A sentence's keyword score: its document's BM25 plus half its own.

    Ranking sentences by their own BM25 alone lost to whole-document BM25 by 0.05 to 0.10 nDCG@10
    on mlqa-de-dev, scifact and cranfield: one sentence rarely holds every query word its document
    holds. Adding the document's score ranks the best documents first and, inside each, its best
    sentences. The document's terms include its title (+0.012 nDCG@10 keyword on mlqa-de-dev,
    +0.006 on scifact). (benchmarks/results/relevance.md)

    A sentence that holds a query word scores, so evidence stays visible; a document whose title alone
    holds them is found through its first sentence (its sentence score 0): before, the paragraphs of an
    article titled "Steve Austin" that do not repeat the name were not found by it.

    A query of more than ``long_words`` words is a paragraph pasted in: no sentence holds it, so
    documents rank it (the sentence share drops to ``long_sentence_share``, which only
    orders a document's own sentences) and a word inside a compound counts ``long_part_weight`` (by
    default not at all: a long German paragraph's common words sit inside many compounds, and with them
    mlqa-de-dev's long tuning queries fell 0.016 under whole-document bm25s; benchmarks/results/long_rule.md).
    """

    def __init__(
        self,
        sentences: BM25,
        documents: BM25,
        row_docs: np.ndarray,
        doc_weight: float = DOC_WEIGHT,
        sentence_weight: float = SENTENCE_WEIGHT,
        long: tuple[int, float, float] = (Scoring.long_words, Scoring.long_sentence_share, Scoring.long_part_weight),
    ) -> None:
        self.sent = sentences
        self.docs = documents
        self.row_docs = row_docs
        self.doc_weight = doc_weight
        self.sentence_weight = sentence_weight
        self.long_words, self.long_sentence_weight, self.long_part_weight = long
        self._doc_pos = np.searchsorted(documents.m.row_ids, row_docs)  # each sentence row's document row
        self._first_row = _first_rows(row_docs, documents.m.row_ids)
        # hybrid search asks twice for the same query (its candidates, then the semantic side's);
        # one memo per thread, so concurrent queries (a server) do not overwrite each other's
        self._memo = threading.local()
        self.version = 0  # counts the statistics it has scored with (a memo of scores names the one it used)

    @classmethod
    def from_params(
        cls, sentences: TermMatrix, documents: TermMatrix, row_docs: np.ndarray, params: Scoring
    ) -> PassageBM25:
        """The scorer the manifest's :class:`~search.manifest.Scoring` describes."""
        if params.idf not in IDF_FORMS:
            raise IndexFormatError(f"unknown idf form {params.idf!r} in the manifest; known: {', '.join(IDF_FORMS)}")
        weights = (params.part_weight, params.query_part_weight)
        return cls(
            BM25(sentences, params.k1, params.b, *weights),
            BM25(documents, params.k1, params.b, *weights),
            row_docs,
            params.document_share,
            params.sentence_share,
            (params.long_words, params.long_sentence_share, params.long_part_weight),
        )

    def use_stats(self, sentences: Stats, documents: Stats) -> None:
        """Score with collection-wide statistics at both levels (a shard of a sharded index)."""
        self.sent.use_stats(sentences)
        self.docs.use_stats(documents)
        self._memo = threading.local()
        self.version += 1

    def weights(self, words: int) -> tuple[float, float, float | None]:
        """Document share, sentence share and part weight (None: the matrices' own) for a query of ``words`` words."""
        if words > self.long_words:
            return self.doc_weight, self.long_sentence_weight, self.long_part_weight
        return self.doc_weight, self.sentence_weight, None

    def scores(self, terms: Iterable[str], words: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Rows that score for a query of ``words`` words whose keys are ``terms``, and their scores."""
        key = (tuple(terms), self.weights(words))
        last = getattr(self._memo, "last", None)
        if last is not None and last[0] == key:
            return last[1], last[2]
        rows, scores = self._scores(list(key[0]), *key[1])
        self._memo.last = (key, rows, scores)
        return rows, scores

    def _scores(
        self, terms: list[str], doc_weight: float, sentence_weight: float, part: float | None
    ) -> tuple[np.ndarray, np.ndarray]:
        rows, sent = self.sent.scores(terms, part)
        drows, dscores = self.docs.scores(terms, part)
        doc_score = np.zeros(len(self.docs.m.row_ids), dtype=np.float32)
        doc_score[drows] = dscores
        pos = self._doc_pos[rows]
        held = np.zeros(len(doc_score), dtype=bool)
        held[pos] = True
        titled = drows[~held[drows]]  # documents matched by their title alone
        first = self._first_row[titled]
        titled, first = titled[first >= 0], first[first >= 0]
        if len(first):
            rows = np.concatenate([rows, first])
            sent = np.concatenate([sent, np.zeros(len(first), dtype=np.float32)])
            pos = np.concatenate([pos, titled])
        return rows, doc_weight * doc_score[pos] + sentence_weight * sent

    def search(self, terms: Iterable[str], k: int, allowed: np.ndarray | None = None, words: int = 0) -> list[Hit]:
        """The ``k`` best chunks, among ``allowed`` (sorted chunk ids) where given."""
        rows, scores = self.scores(terms, words)
        if allowed is not None:
            keep = np.isin(self.sent.m.row_ids[rows], allowed, assume_unique=True)
            rows, scores = rows[keep], scores[keep]
        return _top(self.sent.m.row_ids, rows, scores, k)

    def matching(self, terms: Iterable[str], words: int = 0) -> np.ndarray:
        """Every chunk that scores: each that holds a query term, and the first of a document whose title
        alone holds one."""
        rows, _ = self.scores(terms, words)
        return self.sent.m.row_ids[rows]

    def explain(
        self, terms: Iterable[str], chunk_ids: Sequence[int], docs: Sequence[int], words: int = 0
    ) -> list[dict[str, Any]]:
        """How each chunk (of the document beside it) got its score: its document's BM25, its own, and
        each term's part of ``document_share · document + sentence_share · sentence``."""
        terms = list(terms)
        doc_weight, sentence_weight, part = self.weights(words)
        out = []
        for sent, whole in zip(
            self.sent.term_scores(terms, chunk_ids, part), self.docs.term_scores(terms, docs, part), strict=True
        ):
            parts = {
                t: doc_weight * whole.get(t, 0.0) + sentence_weight * sent.get(t, 0.0)
                for t in terms
                if t in sent or t in whole
            }
            out.append(
                {
                    "document_bm25": float(sum(whole.values())),
                    "sentence_bm25": float(sum(sent.values())),
                    "document_share": doc_weight,
                    "sentence_share": sentence_weight,
                    "terms": parts,
                }
            )
        return out

    def scores_for(self, terms: Iterable[str], chunk_ids: Iterable[int], words: int = 0) -> dict[int, float]:
        rows, scores = self.scores(terms, words)
        found = dict(zip(self.sent.m.row_ids[rows].tolist(), scores.tolist(), strict=True))
        return {c: found[c] for c in chunk_ids if c in found}


def _first_rows(row_docs: np.ndarray, doc_row_ids: np.ndarray) -> np.ndarray:
    """For each document row, the first of its sentence rows (rows ascend by chunk id), or -1."""
    first = np.full(len(doc_row_ids), -1, dtype=np.int64)
    docs, at = np.unique(row_docs, return_index=True)
    pos = np.minimum(np.searchsorted(doc_row_ids, docs), max(len(doc_row_ids) - 1, 0))
    known = doc_row_ids[pos] == docs if len(doc_row_ids) else np.zeros(len(docs), dtype=bool)
    first[pos[known]] = at[known]
    return first


def _top(row_ids: np.ndarray, rows: np.ndarray, scores: np.ndarray, k: int) -> list[Hit]:
    """The ``k`` best rows, best first; of rows that tie, the lowest chunk ids (as a sharded index's merge
    breaks ties: query syntax such as ``*`` or ``doc:`` scores many rows alike)."""
    if len(rows) == 0 or k <= 0:
        return []
    top = np.arange(len(rows))
    if len(rows) > k:
        kth = np.partition(scores, len(rows) - k)[len(rows) - k]  # the k-th best score
        above, tied = np.flatnonzero(scores > kth), np.flatnonzero(scores == kth)
        need = k - len(above)
        if len(tied) > need:
            tied = tied[np.argpartition(row_ids[rows[tied]], need - 1)[:need]]
        top = np.concatenate([above, tied])
    ids = row_ids[rows[top]]
    order = np.lexsort((ids, -scores[top]))
    return [Hit(int(ids[i]), float(scores[top][i])) for i in order]
