"""Query syntax run over the term matrices: phrases, AND/OR/NOT, fields, prefixes, wildcards, ranges, fuzzy terms.

whoosh's parser reads the user's text into a query tree (search/parsing.py); :class:`SyntaxRunner` runs that
tree over the sentence and document matrices plain-word queries are scored on (search/termmatrix.py,
search/bm25.py). So the index holds no second, positional copy of every sentence: writing one (a whoosh index)
held keyword indexing to a tenth of bm25s's speed (benchmarks/results/keyword_indexing.md).

What a query matches is whoosh's reading of it, and a test holds the two equal on the same sentences
(tests/test_syntax.py):

- a term matches the sentences that hold it in ``text_<lang>``, and a document's first sentence where its
  title holds it (``title:``), which is how whoosh saw titles (search/keyword.py wrote each title once);
- a prefix, wildcard, range or fuzzy term (Levenshtein distance, the first ``prefixlength`` letters kept)
  matches every word of the vocabulary it expands to;
- a phrase matches the sentences that hold all its words, checked by analysing them: its words stand at
  consecutive positions, stopwords not counted (as whoosh numbered them), or with ``~slop`` at most that
  many apart, in order;
- ``doc:ID`` and ``chunk:ID`` match a document's sentences and one sentence; ``*`` every sentence of a
  language, ``*:*`` every sentence; NOT, AND NOT, AND, OR, ANDMAYBE as whoosh combines them.

A match scores as a plain query's sentence does: ``document_share · document BM25 + sentence_share ·
sentence BM25`` of the words it matched (a title's words count in the document's), times the boosts on
its way up; AND and OR add their parts' scores; ``doc:``, ``chunk:``, ranges and ``*`` score their boost.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from whoosh import query as Q

from .analysis import analyze
from .bm25 import BM25, PassageBM25
from .errors import QueryError
from .parsing import positive_leaves
from .store import ChunkTable
from .types import Document

EXPANSIONS_KEPT = 256  # leaves whose expansion a vocabulary keeps (a fuzzy term's costs milliseconds)


@dataclass
class Match:
    """The sentence rows a query matches and their scores (0 where it does not match)."""

    mask: np.ndarray  # bool, one per sentence row
    score: np.ndarray  # float64, one per sentence row


def _edit_distance(words: np.ndarray, target: str, limit: int) -> np.ndarray:
    """The edit distance of each of ``words`` (a str array) to ``target``, a swap of two neighbouring letters
    one edit (Lucene's FuzzyQuery, whoosh's fuzzy terms), all at once: one row of the dynamic programme per
    letter of ``target``, over every word's letters side by side."""
    if not len(words):
        return np.zeros(0, dtype=np.int64)
    width = max(int(np.char.str_len(words).max()), 1)
    codes = np.frombuffer(words.astype(f"<U{width}").tobytes(), dtype=np.uint32).reshape(len(words), width)
    before = prev = np.tile(np.arange(width + 1, dtype=np.int64), (len(words), 1))
    for i, ch in enumerate(target, 1):
        cur = np.empty_like(prev)
        cur[:, 0] = i
        same = codes == ord(ch)
        for j in range(1, width + 1):
            cur[:, j] = np.minimum(np.minimum(prev[:, j] + 1, cur[:, j - 1] + 1), prev[:, j - 1] + ~same[:, j - 1])
            if i > 1 and j > 1:  # "ie" for "ei"
                swap = same[:, j - 2] & (codes[:, j - 1] == ord(target[i - 2]))
                cur[:, j] = np.where(swap, np.minimum(cur[:, j], before[:, j - 2] + 1), cur[:, j])
        before, prev = prev, cur
        if (np.minimum(prev.min(axis=1), before.min(axis=1)) > limit).all():  # every word already too far
            break
    return prev[np.arange(len(words)), np.char.str_len(words)]


def _wildcard(pattern: str) -> re.Pattern[str]:
    """whoosh's wildcard: ``*`` any letters, ``?`` one, everything else as written."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


class Vocabulary:
    """A matrix's ``lang:term`` keys, sorted, for what expands: prefixes, wildcards, ranges, fuzzy terms."""

    def __init__(self, bm25: BM25) -> None:
        self.bm25 = bm25
        self._expanded: dict[tuple[str, str], list[str]] = {}  # a query expands when parsed, then when run

    @cached_property
    def sorted(self) -> np.ndarray:
        return np.sort(self.bm25.m.terms.astype(str))

    def between(self, lo: str, hi: str, last: bool = False) -> np.ndarray:
        """The keys from ``lo`` (included) to ``hi`` (included where ``last``)."""
        keys = self.sorted
        return keys[np.searchsorted(keys, lo, "left") : np.searchsorted(keys, hi, "right" if last else "left")]

    def expand(self, leaf: Q.Query, lang: str) -> list[str]:
        """The keys ``leaf`` (a term, prefix, wildcard, range or fuzzy term of ``lang``) matches."""
        key = (repr(leaf), lang)
        if key not in self._expanded:
            if len(self._expanded) >= EXPANSIONS_KEPT:
                self._expanded.clear()
            self._expanded[key] = self._expand(leaf, lang)
        return self._expanded[key]

    def _expand(self, leaf: Q.Query, lang: str) -> list[str]:
        head = f"{lang}:"
        if isinstance(leaf, Q.FuzzyTerm):  # before Term, whose subclass it is
            start = head + leaf.text[: leaf.prefixlength]
            keys = self.between(start, start + "\U0010ffff")
            if not len(keys):
                return []
            words = np.char.replace(keys, head, "", count=1)
            near = np.abs(np.char.str_len(words) - len(leaf.text)) <= leaf.maxdist
            close = _edit_distance(words[near], leaf.text, leaf.maxdist) <= leaf.maxdist
            return keys[near][close].tolist()
        if isinstance(leaf, Q.Term):
            return [head + leaf.text] if head + leaf.text in self.bm25.col else []
        if isinstance(leaf, Q.Prefix):
            return self.between(head + leaf.text, head + leaf.text + "\U0010ffff").tolist()
        if isinstance(leaf, Q.Wildcard):
            literal = re.split(r"[*?]", leaf.text, maxsplit=1)[0]
            pattern = _wildcard(head + leaf.text)
            keys = self.between(head + literal, head + literal + "\U0010ffff").tolist()
            return [k for k in keys if pattern.fullmatch(k)]
        if isinstance(leaf, Q.TermRange):
            lo = head + (leaf.start or "")
            hi = head + leaf.end if leaf.end is not None else head[:-1] + ";"  # ";" follows ":"
            keys = self.between(lo, hi, last=True).tolist()
            return [k for k in keys if not (leaf.startexcl and k == lo) and not (leaf.endexcl and k == hi)]
        raise QueryError(f"cannot run query syntax ({type(leaf).__name__} is not supported); set syntax off")


class SyntaxRunner:
    """Runs a parsed query tree (search/parsing.py) over one index's matrices, chunk table and documents."""

    def __init__(self, bm25: PassageBM25, chunks: ChunkTable, docs: Mapping[int, Document]) -> None:
        self.bm25 = bm25
        self.chunks = chunks
        self.docs = docs
        self.rows = len(bm25.sent.m.row_ids)
        self.text_vocabulary = Vocabulary(bm25.sent)
        self.title_vocabulary = Vocabulary(bm25.docs)

    @cached_property
    def _chunk_rows(self) -> np.ndarray:
        """For each sentence row, its row in the chunk table (where its offsets are)."""
        order = np.argsort(self.chunks.ids, kind="stable")
        return order[np.searchsorted(self.chunks.ids[order], self.bm25.sent.m.row_ids)]

    @cached_property
    def _row_langs(self) -> np.ndarray:
        langs = {num: doc.lang for num, doc in self.docs.items()}
        return np.array([langs.get(int(d), "") for d in self.bm25.row_docs.tolist()], dtype=object)

    @cached_property
    def _titled(self) -> np.ndarray:
        """For each sentence row, whether its document's title holds a word."""
        titled = {num for num, doc in self.docs.items() if analyze(doc.title, doc.lang)}
        return np.isin(self.bm25.row_docs, np.fromiter(titled, dtype=np.int64, count=len(titled)))

    @cached_property
    def _doc_nums(self) -> dict[str, int]:
        return {doc.id: num for num, doc in self.docs.items()}

    def run(self, q: Q.Query) -> Match:
        """The rows ``q`` matches and their scores."""
        if isinstance(q, Q.Not):
            inner = self.run(q.query)
            return Match(~inner.mask, np.zeros(self.rows))
        if isinstance(q, (Q.AndNot, Q.AndMaybe, Q.Require)):
            a, b = self.run(q.a), self.run(q.b)
            if isinstance(q, Q.AndNot):
                mask = a.mask & ~b.mask
                return self._boosted(Match(mask, np.where(mask, a.score, 0.0)), q)
            mask = a.mask & b.mask if isinstance(q, Q.Require) else a.mask
            add = b.score if isinstance(q, Q.AndMaybe) else 0.0
            return self._boosted(Match(mask, np.where(mask, a.score + add, 0.0)), q)
        if isinstance(q, (Q.And, Q.Or, Q.DisjunctionMax)):
            return self._compound(q)
        if q is Q.NullQuery:
            return Match(np.zeros(self.rows, dtype=bool), np.zeros(self.rows))
        return self._boosted(self._leaf(q), q)

    def _compound(self, q: Q.Query) -> Match:
        parts = [self.run(sub) for sub in q.subqueries]
        if not parts:
            return Match(np.zeros(self.rows, dtype=bool), np.zeros(self.rows))
        masks = np.array([p.mask for p in parts])
        scores = np.array([p.score for p in parts])
        if isinstance(q, Q.And):
            mask = np.logical_and.reduce(masks)
        elif getattr(q, "minmatch", 0):
            mask = np.greater_equal(masks.sum(axis=0), q.minmatch)
        else:
            mask = np.logical_or.reduce(masks)
        score = scores.max(axis=0) if isinstance(q, Q.DisjunctionMax) else scores.sum(axis=0)
        return self._boosted(Match(mask, np.where(mask, score, 0.0)), q)

    @staticmethod
    def _boosted(m: Match, q: Q.Query) -> Match:
        boost = float(getattr(q, "boost", 1.0))
        return m if boost == 1.0 else Match(m.mask, m.score * boost)

    def _leaf(self, q: Q.Query) -> Match:
        field = getattr(q, "fieldname", None)
        if isinstance(q, Q.Every):
            if field is None:
                return Match(np.ones(self.rows, dtype=bool), np.ones(self.rows))
            kind, lang = _field(field)  # the sentences of the language that hold a word, or its titled documents'
            held = self._row_langs == lang
            mask = held & (self.bm25.sent.m.doclen > 0) if kind == "text" else self._first_of(held & self._titled)
            return Match(mask, mask.astype(np.float64))
        if field in ("doc", "chunk"):
            return self._id_leaf(field, str(q.text))
        kind, lang = _field(field)
        if isinstance(q, Q.Phrase):
            return self._phrase(q, kind, lang)
        keys = (self.text_vocabulary if kind == "text" else self.title_vocabulary).expand(q, lang)
        match = self._title_match(keys) if kind == "title" else self._text_match(keys)
        if isinstance(q, Q.TermRange) and q.constantscore:
            return Match(match.mask, match.mask.astype(np.float64))
        return match

    def _id_leaf(self, field: str, value: str) -> Match:
        mask = np.zeros(self.rows, dtype=bool)
        if field == "doc" and value in self._doc_nums:
            mask = np.asarray(self.bm25.row_docs == self._doc_nums[value])
        elif field == "chunk" and value.lstrip("-").isdigit():
            mask = np.asarray(self.bm25.sent.m.row_ids == int(value))
        return Match(mask, mask.astype(np.float64))

    def _text_match(self, keys: list[str]) -> Match:
        """Rows holding any of ``keys`` in their sentence, scored as a plain query's rows are."""
        sent, docs = _column_scores(self.bm25.sent, keys), _column_scores(self.bm25.docs, keys)
        mask = sent > 0
        score = self.bm25.doc_weight * docs[self.bm25._doc_pos] + self.bm25.sentence_weight * sent
        return Match(mask, np.where(mask, score, 0.0))

    def _title_tf(self, key: str) -> np.ndarray:
        """How often each document's title holds ``key``: its document row's count less its sentences'."""
        tf = np.zeros(len(self.bm25.docs.m.row_ids))
        col = self.bm25.docs.col.get(key)
        if col is None:
            return tf
        m = self.bm25.docs.m
        tf[m.rows[m.indptr[col] : m.indptr[col + 1]]] = m.tf[m.indptr[col] : m.indptr[col + 1]]
        scol = self.bm25.sent.col.get(key)
        if scol is not None:
            s = self.bm25.sent.m
            rows = s.rows[s.indptr[scol] : s.indptr[scol + 1]]
            np.subtract.at(tf, self.bm25._doc_pos[rows], s.tf[s.indptr[scol] : s.indptr[scol + 1]])
        return tf

    def _first_of(self, doc_held: np.ndarray) -> np.ndarray:
        """The first sentence row of each document ``doc_held`` marks (an array over rows or documents)."""
        if len(doc_held) == self.rows:
            docs = np.zeros(len(self.bm25.docs.m.row_ids), dtype=bool)
            docs[self.bm25._doc_pos[doc_held]] = True
            doc_held = docs
        mask = np.zeros(self.rows, dtype=bool)
        first = self.bm25._first_row[doc_held]
        mask[first[first >= 0]] = True
        return mask

    def _title_match(self, keys: list[str]) -> Match:
        """The first row of each document whose title holds any of ``keys``, scored by its document's BM25."""
        held = np.zeros(len(self.bm25.docs.m.row_ids), dtype=bool)
        for key in keys:
            held |= self._title_tf(key) > 0.5
        mask = self._first_of(held)
        docs = _column_scores(self.bm25.docs, keys)
        score = self.bm25.doc_weight * docs[self.bm25._doc_pos]
        return Match(mask, np.where(mask, score, 0.0))

    def _phrase(self, q: Q.Phrase, kind: str, lang: str) -> Match:
        keys = [f"{lang}:{w}" for w in q.words]
        vocabulary = self.text_vocabulary if kind == "text" else self.title_vocabulary
        if any(k not in vocabulary.bm25.col for k in keys):
            return Match(np.zeros(self.rows, dtype=bool), np.zeros(self.rows))
        parts = [self._title_match([k]) if kind == "title" else self._text_match([k]) for k in keys]
        candidates = np.logical_and.reduce([p.mask for p in parts])
        mask = np.zeros(self.rows, dtype=bool)
        for row in np.flatnonzero(candidates).tolist():
            text = self._title(row) if kind == "title" else self._sentence(row)
            mask[row] = _in_order(analyze(text, lang), list(q.words), q.slop)
        return Match(mask, np.where(mask, sum(p.score for p in parts), 0.0))

    def _sentence(self, row: int) -> str:
        _, doc, start, end, _ = self.chunks.rows[self._chunk_rows[row]].tolist()
        return self.docs[doc].text[start:end]

    def _title(self, row: int) -> str:
        return self.docs[int(self.bm25.row_docs[row])].title

    def terms(self, q: Q.Query) -> dict[str, frozenset[str]]:
        """The words of this index ``q`` matches, per language (what is highlighted): what its positive leaves
        expand to."""
        out: dict[str, set[str]] = {}
        for leaf in positive_leaves(q):
            field = getattr(leaf, "fieldname", None)
            if field is None or field in ("doc", "chunk") or isinstance(leaf, Q.Every):
                continue
            kind, lang = _field(field)
            vocabulary = self.text_vocabulary if kind == "text" else self.title_vocabulary
            if isinstance(leaf, Q.Phrase):
                keys = [f"{lang}:{w}" for w in leaf.words if f"{lang}:{w}" in vocabulary.bm25.col]
            else:
                keys = vocabulary.expand(leaf, lang)
            if kind == "title":  # the document matrix's words that some title holds
                keys = [k for k in keys if (self._title_tf(k) > 0.5).any()]
            out.setdefault(lang, set()).update(k.partition(":")[2] for k in keys)
        return {lang: frozenset(ts) for lang, ts in out.items() if ts}


def _field(name: str | None) -> tuple[str, str]:
    """``text_de`` → ("text", "de")."""
    kind, _, lang = (name or "").rpartition("_")
    if kind not in ("text", "title") or not lang:
        raise QueryError(f"cannot run query syntax (unknown field {name!r}); set syntax off to search plain words")
    return kind, lang


def _in_order(terms: list[str], words: list[str], slop: int) -> bool:
    """Do ``words`` stand in ``terms`` in order, each at most ``slop`` positions after the one before
    (whoosh's SpanNear2 with ``ordered=True, mindist=1``)?"""
    at: dict[str, list[int]] = {}
    for i, t in enumerate(terms):
        at.setdefault(t, []).append(i)
    spans = {(p, p) for p in at.get(words[0], [])}
    for w in words[1:]:
        spans = {(s, p) for s, e in spans for p in at.get(w, []) if 1 <= p - e <= slop}
        if not spans:
            return False
    return bool(spans)


def _column_scores(bm25: BM25, keys: list[str]) -> np.ndarray:
    """Each row's BM25 over the columns of ``keys`` (each once), computed for all of them at once."""
    m = bm25.m
    cols = np.array(sorted({c for c in (bm25.col.get(k) for k in keys) if c is not None}), dtype=np.int64)
    acc = np.zeros(len(m.row_ids))
    if not len(cols):
        return acc
    lo, hi = m.indptr[cols], m.indptr[cols + 1]
    lengths = hi - lo
    entries = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    col = np.repeat(cols, lengths)
    rows, tf = m.rows[entries], m.tf[entries]
    contrib = bm25.idf[col] * tf * (bm25.k1 + 1) / (tf + bm25.norm[rows])
    return np.bincount(rows, weights=contrib, minlength=len(m.row_ids))
