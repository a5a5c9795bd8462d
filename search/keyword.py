"""The keyword index: BM25 over the term matrices, for plain words and query syntax alike.

Each chunk is a row of the sentence matrix, each document a row of the document matrix
(search/termmatrix.py). A query is analysed once per language of the index and the per-language
queries are OR-ed, so a German question finds German sentences by German stems and English ones by
English stems. Plain words are scored by :class:`~search.bm25.PassageBM25`; query syntax (phrases,
AND/OR/NOT, fields, wildcards, fuzzy terms) is parsed by whoosh (search/parsing.py) and run over the
same matrices by :class:`~search.syntax.SyntaxRunner`, scored the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .bm25 import PassageBM25, _top, row_documents
from .filters import Allowed
from .manifest import Scoring
from .params import SyntaxName
from .parsing import ParsedQuery, parse_query
from .store import ChunkTable
from .syntax import Match, SyntaxRunner
from .termmatrix import TermMatrix
from .types import Document, Hit


class KeywordIndex:
    """The keyword side of one index: its BM25 matrices, and query syntax run over them."""

    def __init__(
        self,
        langs: list[str],
        bm25: PassageBM25,
        chunks: ChunkTable,
        docs: Mapping[int, Document],
        titles: Path | None = None,
    ) -> None:
        self.langs = langs
        self.bm25 = bm25
        self.syntax = SyntaxRunner(bm25, chunks, docs, titles)
        # hybrid search asks twice for the same query (its candidates, then the semantic side's)
        self._memo = threading.local()

    @classmethod
    def open(
        cls,
        langs: list[str],
        matrices: tuple[Path, Path, Path],
        chunks: ChunkTable,
        docs: Mapping[int, Document],
        params: Scoring | None = None,
    ) -> KeywordIndex:
        """The keyword side over the sentence, document and title matrices in ``matrices`` (the last read at the
        first ``title:`` query), scored with ``params`` (the manifest's); ``chunks`` and ``docs`` hold the text
        a phrase is checked against."""
        sentences = TermMatrix.load(matrices[0])
        bm25 = PassageBM25.from_params(
            sentences, TermMatrix.load(matrices[1]), row_documents(chunks, sentences.row_ids), params or Scoring()
        )
        return cls(langs, bm25, chunks, docs, matrices[2])

    def close(self) -> None:
        """Nothing to release: the matrices are arrays in memory."""

    def parse(self, text: str, syntax: str = SyntaxName.auto) -> ParsedQuery:
        parsed = parse_query(text, self.langs, syntax)
        if parsed.query is None:
            return parsed
        return replace(parsed, terms=self.terms(parsed))

    def terms(self, parsed: ParsedQuery) -> dict[str, frozenset[str]]:
        """The words of this index a parsed query matches, per language (what is highlighted)."""
        if parsed.query is None:
            return {}
        if parsed.plain is None:  # query syntax: the words its terms, prefixes, wildcards and fuzzy terms expand to
            return self.syntax.terms(parsed.query)
        vocabulary = self.bm25.sent.col
        found: dict[str, set[str]] = {}
        for key in parsed.plain:
            lang, _, term = key.partition(":")
            if "~" in lang or "+" in lang:  # what its compound parts match is highlighted too (search/highlight.py)
                found.setdefault(lang.replace("~", ""), set()).add(term)
            elif key in vocabulary:  # a dictionary lookup each
                found.setdefault(lang, set()).add(term)
        return {name: frozenset(ts) for name, ts in found.items()}

    def _run(self, parsed: ParsedQuery) -> Match:
        """What a query in syntax matches and its scores, kept for the next call with the same query
        and the same statistics (:meth:`PassageBM25.use_stats` counts a new version)."""
        key = (repr(parsed.query), self.bm25.version)
        last = getattr(self._memo, "last", None)
        if last is not None and last[0] == key:
            return last[1]
        match = self.syntax.run_branches(parsed.branches) if parsed.branches else self.syntax.run(parsed.query)
        self._memo.last = (key, match)
        return match

    def _syntax_rows(self, parsed: ParsedQuery, allowed: Allowed | None) -> tuple[np.ndarray, np.ndarray]:
        match = self._run(parsed)
        rows = np.flatnonzero(match.mask)
        if allowed is not None:  # among the matched rows only, as the plain path filters its hits
            rows = rows[np.isin(self.bm25.sent.m.row_ids[rows], allowed.chunks, assume_unique=True)]
        return rows, match.score[rows]

    def search(self, parsed: ParsedQuery, k: int, allowed: Allowed | None = None) -> list[Hit]:
        """The ``k`` best chunks; with ``allowed``, only among its chunks (before the top k is taken)."""
        if parsed.query is None or k <= 0 or (allowed is not None and not allowed.docs):
            return []
        if parsed.plain is not None:
            return self.bm25.search(parsed.plain, k, None if allowed is None else allowed.chunks, parsed.words)
        return _top(self.bm25.sent.m.row_ids, *self._syntax_rows(parsed, allowed), k)

    def matching(self, parsed: ParsedQuery, allowed: Allowed | None = None) -> np.ndarray:
        """Every chunk the query matches (for facets), among ``allowed``'s where given."""
        if parsed.query is None or (allowed is not None and not allowed.docs):
            return np.zeros(0, dtype=np.int64)
        if parsed.plain is not None:
            ids = self.bm25.matching(parsed.plain, parsed.words)
            return ids if allowed is None else ids[np.isin(ids, allowed.chunks, assume_unique=True)]
        return self.bm25.sent.m.row_ids[self._syntax_rows(parsed, allowed)[0]]

    def scores_for(self, parsed: ParsedQuery, chunk_ids: Iterable[int]) -> dict[int, float]:
        """Keyword scores of the given chunks (left out where the query does not match them)."""
        ids = list(chunk_ids)
        if parsed.query is None or not ids:
            return {}
        if parsed.plain is not None:
            return self.bm25.scores_for(parsed.plain, ids, parsed.words)
        match, row_ids = self._run(parsed), self.bm25.sent.m.row_ids
        if not len(row_ids):
            return {}
        wanted = np.asarray(ids, dtype=np.int64)
        at = np.minimum(np.searchsorted(row_ids, wanted), len(row_ids) - 1)
        hit = (row_ids[at] == wanted) & match.mask[at]
        return dict(zip(wanted[hit].tolist(), match.score[at[hit]].tolist(), strict=True))

    @property
    def count(self) -> int:
        """Sentences in the keyword index (rows of its sentence matrix)."""
        return len(self.bm25.sent.m.row_ids)

    def explain(
        self, parsed: ParsedQuery, chunk_ids: Sequence[int], docs: Sequence[int]
    ) -> list[dict[str, Any]] | None:
        """:meth:`PassageBM25.explain` for a plain-word query; None for query syntax (scored as one number)."""
        if parsed.plain is None:
            return None
        return self.bm25.explain(parsed.plain, chunk_ids, docs, parsed.words)
