"""Query syntax run over the term matrices: phrases, AND/OR/NOT, fields, prefixes, wildcards, ranges, fuzzy terms.

whoosh's parser reads the user's text into a query tree (search/parsing.py); :class:`SyntaxRunner` runs that
tree over the sentence and document matrices plain-word queries are scored on (search/termmatrix.py,
search/bm25.py). So the index holds no second, positional copy of every sentence: writing one (a whoosh index)
held keyword indexing to a tenth of bm25s's speed (benchmarks/results/keyword_indexing.md).

What a query matches is whoosh's reading of it, and a test holds the two equal on the same sentences
(tests/test_syntax.py):

- a term matches the sentences that hold it in ``text_<lang>``, and a document's first sentence where its
  title holds it (``title:``), which is how whoosh saw titles (format 7 wrote each title once);
- a prefix, wildcard, range or fuzzy term matches every word of the vocabulary it expands to (the titles'
  own words for ``title:``); a fuzzy term keeps its first ``prefixlength`` letters and counts a swap of two
  neighbouring letters as one edit, as Lucene's FuzzyQuery does (whoosh's counted two);
- a phrase matches the sentences that hold all its words, checked by analysing them: its words stand at
  consecutive positions, stopwords not counted (as whoosh numbered them), or with ``~slop`` at most that
  many apart, in order;
- ``doc:ID`` and ``chunk:ID`` match a document's sentences and one sentence (a prefix, wildcard, range or
  fuzzy id expands over the ids); ``*`` every sentence of a language, ``*:*`` every sentence; NOT, AND NOT,
  AND, OR, ANDMAYBE as whoosh combines them, except that AND NOT excludes every sentence holding the word
  (whoosh's let some through).

A match scores as a plain query's sentence does: ``document_share · document BM25 + sentence_share ·
sentence BM25`` of the words it matched (a title's words count in the document's), times the boosts on
its way up; AND and OR add their parts' scores; ``doc:``, ``chunk:``, ranges and ``*`` score their boost.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Container, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from whoosh import query as Q

from .analysis import analyze
from .bm25 import BM25, PassageBM25
from .errors import QueryError
from .parsing import positive_leaves
from .store import ChunkTable
from .termmatrix import TermMatrix, title_matrix
from .types import Document

EXPANSIONS_KEPT = 256  # leaves whose expansion a vocabulary keeps (a fuzzy term's costs milliseconds)


@dataclass
class Match:
    """The sentence rows a query matches and their scores (0 where it does not match)."""

    mask: np.ndarray  # bool, one per sentence row
    score: np.ndarray  # float64, one per sentence row


def _edit_distance(words: np.ndarray, target: str, limit: int) -> np.ndarray:
    """The edit distance of each of ``words`` (a str array) to ``target``, a swap of two neighbouring letters
    one edit (optimal string alignment, as Lucene's FuzzyQuery), all at once: one row of the dynamic programme
    per letter of ``target``, over every word's letters side by side. Exact up to ``limit``; a word further
    away may be given any number above it (the rows stop once every word is past it)."""
    if not len(words):
        return np.zeros(0, dtype=np.int64)
    width = max(int(np.char.str_len(words).max()), 1)
    codes = np.frombuffer(words.astype(f"<U{width}").tobytes(), dtype="<u4").reshape(len(words), width)
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


class Vocabulary:
    """Keys (``lang:term``, or document and chunk ids), sorted, for what expands: prefixes, wildcards, ranges,
    fuzzy terms."""

    def __init__(self, keys: np.ndarray, known: Container[str]) -> None:
        self.keys = keys
        self.known = known
        self._expanded: dict[tuple[str, str], list[str]] = {}  # a query expands when parsed, then when run

    @cached_property
    def sorted(self) -> np.ndarray:
        return np.sort(self.keys.astype(str))

    def between(self, lo: str, hi: str, last: bool = False) -> np.ndarray:
        """The keys from ``lo`` (included) to ``hi`` (included where ``last``)."""
        keys = self.sorted
        return keys[np.searchsorted(keys, lo, "left") : np.searchsorted(keys, hi, "right" if last else "left")]

    def expand(self, leaf: Q.Query, head: str) -> list[str]:
        """The keys ``leaf`` (a term, prefix, wildcard, range or fuzzy term) matches among those that start
        with ``head`` (``"de:"``; ``""`` for ids), which its text does not hold."""
        key = (repr(leaf), head)
        found = self._expanded.get(key)
        if found is None:
            found = self._expand(leaf, head)
            if len(self._expanded) >= EXPANSIONS_KEPT:
                self._expanded.clear()
            self._expanded[key] = found
        return found

    def _expand(self, leaf: Q.Query, head: str) -> list[str]:
        if isinstance(leaf, Q.FuzzyTerm):  # before Term, whose subclass it is
            start = head + leaf.text[: leaf.prefixlength]
            keys = self.between(start, start + "\U0010ffff")
            if not len(keys):
                return []
            words = np.char.replace(keys, head, "", count=1) if head else keys
            near = np.abs(np.char.str_len(words) - len(leaf.text)) <= leaf.maxdist
            close = _edit_distance(words[near], leaf.text, leaf.maxdist) <= leaf.maxdist
            return keys[near][close].tolist()
        if isinstance(leaf, Q.Term):
            return [head + leaf.text] if head + leaf.text in self.known else []
        if isinstance(leaf, Q.Prefix):
            return self.between(head + leaf.text, head + leaf.text + "\U0010ffff").tolist()
        if isinstance(leaf, Q.Wildcard):  # a glob, as whoosh reads it (fnmatch: *, ?, [seq], [!seq])
            literal = re.split(r"[*?\[]", leaf.text, maxsplit=1)[0]
            pattern = re.compile(fnmatch.translate(leaf.text))
            keys = self.between(head + literal, head + literal + "\U0010ffff").tolist()
            return [k for k in keys if pattern.match(k[len(head) :])]
        if isinstance(leaf, Q.TermRange):
            lo = head + (leaf.start or "")
            hi = head + (leaf.end if leaf.end is not None else "\U0010ffff")
            keys = self.between(lo, hi, last=True).tolist()
            return [k for k in keys if not (leaf.startexcl and k == lo) and not (leaf.endexcl and k == hi)]
        raise QueryError(
            f"cannot run query syntax ({type(leaf).__name__} is not supported); set syntax off to search plain words"
        )


class SyntaxRunner:
    """Runs a parsed query tree (search/parsing.py) over one index's matrices, chunk table and documents."""

    def __init__(
        self, bm25: PassageBM25, chunks: ChunkTable, docs: Mapping[int, Document], titles: Path | None = None
    ) -> None:
        """``titles``: the index's title matrix (search/termmatrix.py ``title_matrix``), read at the first
        ``title:`` query; an index without one (format 7) has its titles analysed then."""
        self.bm25 = bm25
        self.chunks = chunks
        self.docs = docs
        self.rows = len(bm25.sent.m.row_ids)
        self.text_vocabulary = Vocabulary(bm25.sent.m.terms, bm25.sent.col)
        self._title_path = titles

    @cached_property
    def _title_matrix(self) -> TermMatrix:
        if self._title_path is not None and self._title_path.exists():
            return TermMatrix.load(self._title_path)
        titled = sorted((num, doc) for num, doc in self.docs.items() if doc.title)
        return title_matrix([(num, [f"{doc.lang}:{t}" for t in analyze(doc.title, doc.lang)]) for num, doc in titled])

    @cached_property
    def _title_columns(self) -> dict[str, int]:
        return {str(t): i for i, t in enumerate(self._title_matrix.terms.tolist())}

    @cached_property
    def title_vocabulary(self) -> Vocabulary:
        return Vocabulary(self._title_matrix.terms, self._title_columns)

    def _doc_rows_of(self, nums: np.ndarray) -> np.ndarray:
        """The rows of the document matrix of the documents ``nums`` (those it holds)."""
        doc_rows = self.bm25.docs.m.row_ids
        if not len(doc_rows):
            return np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(doc_rows, nums), len(doc_rows) - 1)
        return at[doc_rows[at] == nums]

    def _titled(self, key: str) -> np.ndarray:
        """The document rows (of the document matrix) whose title holds ``key``."""
        c = self._title_columns.get(key)
        if c is None:
            return np.zeros(0, dtype=np.int64)
        m = self._title_matrix
        return self._doc_rows_of(m.row_ids[m.rows[m.indptr[c] : m.indptr[c + 1]]])

    @cached_property
    def _ids(self) -> dict[str, Vocabulary]:
        """``doc:`` and ``chunk:`` values, as whoosh's ID fields held them (text)."""
        chunks = self.bm25.sent.m.row_ids.astype(str)
        return {
            "doc": Vocabulary(np.array(list(self._doc_nums), dtype=str), self._doc_nums),
            "chunk": Vocabulary(chunks, frozenset(chunks.tolist())),
        }

    @cached_property
    def _chunk_rows(self) -> np.ndarray:
        """For each sentence row, its row in the chunk table (where its offsets are)."""
        order = np.argsort(self.chunks.ids, kind="stable")
        return order[np.searchsorted(self.chunks.ids[order], self.bm25.sent.m.row_ids)]

    @cached_property
    def _langs(self) -> dict[str, np.ndarray]:
        """Each language's sentence rows, as a mask."""
        langs = {num: doc.lang for num, doc in self.docs.items()}
        of_row = np.array([langs.get(int(d), "") for d in self.bm25.row_docs.tolist()], dtype=object)
        return {lang: np.asarray(of_row == lang) for lang in set(langs.values())}

    def _lang_rows(self, lang: str) -> np.ndarray:
        return self._langs.get(lang, np.zeros(self.rows, dtype=bool))

    @cached_property
    def _doc_nums(self) -> dict[str, int]:
        return {doc.id: num for num, doc in self.docs.items()}

    def _none(self) -> Match:
        return Match(np.zeros(self.rows, dtype=bool), np.zeros(self.rows))

    def run_branches(self, branches: tuple[tuple[str, Q.Query], ...]) -> Match:
        """A query read once per language (search/parsing.py): each reading matches only its language's
        sentences, and the readings are OR-ed."""
        mask, score = np.zeros(self.rows, dtype=bool), np.zeros(self.rows)
        for lang, q in branches:
            m = self.run(q)
            held = m.mask & self._lang_rows(lang)
            mask |= held
            score += np.where(held, m.score, 0.0)
        return Match(mask, score)

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
            return self._none()
        return self._boosted(self._leaf(q), q)

    def _compound(self, q: Q.Query) -> Match:
        parts = [self.run(sub) for sub in q.subqueries]
        if not parts:
            return self._none()
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
        if isinstance(q, Q.Every) and field in (None, "doc", "chunk"):
            return Match(np.ones(self.rows, dtype=bool), np.ones(self.rows))
        if field in ("doc", "chunk"):
            return self._id_leaf(q, field)
        kind, lang = _field(field)
        if isinstance(q, Q.Every):  # the sentences of the language that hold a word, or its titled documents'
            if kind == "title":
                m = self._title_matrix
                nums = [n for n in m.row_ids[m.doclen > 0].tolist() if self.docs[n].lang == lang]
                mask = self._first_rows(self._doc_rows_of(np.array(nums, dtype=np.int64)))
            else:
                mask = self._lang_rows(lang) & (self.bm25.sent.m.doclen > 0)
            return Match(mask, mask.astype(np.float64))
        if isinstance(q, Q.Phrase):
            return self._phrase(q, kind, lang)
        if kind == "title":
            match = self._title_match(self.title_vocabulary.expand(q, f"{lang}:"))
        else:
            match = self._text_match(self.text_vocabulary.expand(q, f"{lang}:"))
        if isinstance(q, Q.TermRange) and q.constantscore:
            return Match(match.mask, match.mask.astype(np.float64))
        return match

    def _id_leaf(self, q: Q.Query, field: str) -> Match:
        """The sentences of the documents (``doc:``) or the sentences (``chunk:``) whose ids ``q`` matches."""
        if isinstance(q, Q.Phrase):
            raise QueryError(f"cannot run query syntax (a phrase in {field}:); set syntax off to search plain words")
        ids = self._ids[field].expand(q, "")
        if field == "doc":
            mask = np.isin(self.bm25.row_docs, [self._doc_nums[i] for i in ids])
        else:
            mask = np.isin(self.bm25.sent.m.row_ids, np.array(ids, dtype=np.int64))
        return Match(mask, mask.astype(np.float64))

    def _text_match(self, keys: list[str]) -> Match:
        """Rows holding any of ``keys`` in their sentence, scored as a plain query's rows are."""
        sent, docs = _column_scores(self.bm25.sent, keys), _column_scores(self.bm25.docs, keys)
        mask = sent > 0
        score = self.bm25.doc_weight * docs[self.bm25._doc_pos] + self.bm25.sentence_weight * sent
        return Match(mask, np.where(mask, score, 0.0))

    def _first_rows(self, doc_rows: np.ndarray) -> np.ndarray:
        """A mask of the first sentence row of each document row in ``doc_rows``."""
        mask = np.zeros(self.rows, dtype=bool)
        first = self.bm25._first_row[doc_rows]
        mask[first[first >= 0]] = True
        return mask

    def _title_match(self, keys: list[str]) -> Match:
        """The first row of each document whose title holds any of ``keys``, scored by its document's BM25 of
        the words its title holds."""
        docs = np.zeros(len(self.bm25.docs.m.row_ids))
        held = np.zeros(len(docs), dtype=bool)
        for key in keys:
            rows = self._titled(key)
            if len(rows):
                held[rows] = True
                found, scores = _entries(self.bm25.docs, [key])
                title = np.isin(found, rows)
                docs[found[title]] += scores[title]
        mask = self._first_rows(np.flatnonzero(held))
        score = self.bm25.doc_weight * docs[self.bm25._doc_pos]
        return Match(mask, np.where(mask, score, 0.0))

    def _phrase(self, q: Q.Phrase, kind: str, lang: str) -> Match:
        keys = [f"{lang}:{w}" for w in q.words]
        known = self.text_vocabulary.known if kind == "text" else self.title_vocabulary.known
        if any(k not in known for k in keys):
            return self._none()
        parts = [self._title_match([k]) if kind == "title" else self._text_match([k]) for k in keys]
        candidates = np.logical_and.reduce([p.mask for p in parts])
        if kind == "text":  # a word the phrase repeats stands as often in each sentence that holds it ("cell cell")
            for key, times in Counter(keys).items():
                if times > 1:
                    candidates &= self._holding(key, times)
        mask = np.zeros(self.rows, dtype=bool)
        for row in np.flatnonzero(candidates).tolist():
            text = self._title(row) if kind == "title" else self._sentence(row)
            mask[row] = _in_order(analyze(text, lang), list(q.words), q.slop)
        return Match(mask, np.where(mask, sum(p.score for p in parts), 0.0))

    def _holding(self, key: str, times: int) -> np.ndarray:
        """A mask of the sentences holding ``key`` ``times`` times or more."""
        m, col = self.bm25.sent.m, self.bm25.sent.col[key]
        lo, hi = m.indptr[col], m.indptr[col + 1]
        mask = np.zeros(self.rows, dtype=bool)
        mask[m.rows[lo:hi][m.tf[lo:hi] >= times]] = True
        return mask

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
                keys = [f"{lang}:{w}" for w in leaf.words if f"{lang}:{w}" in vocabulary.known]
            else:
                keys = vocabulary.expand(leaf, f"{lang}:")
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
    rows, contrib = _entries(bm25, keys)
    return np.bincount(rows, weights=contrib, minlength=len(bm25.m.row_ids))


def _entries(bm25: BM25, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The rows holding each of ``keys`` (each column once) and its BM25 in each, column after column."""
    m = bm25.m
    cols = np.array(sorted({c for c in (bm25.col.get(k) for k in keys) if c is not None}), dtype=np.int64)
    lo, hi = m.indptr[cols], m.indptr[cols + 1]
    lengths = hi - lo
    entries = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(int(lengths.sum()))
    col = np.repeat(cols, lengths)
    rows, tf = m.rows[entries], m.tf[entries]
    return rows, bm25.idf[col] * tf * (bm25.k1 + 1) / (tf + bm25.norm[rows])
