"""The keyword index: whoosh with BM25F, one text field per language.

Each chunk is one whoosh document with its chunk id, its document id and its sentence in the field
``text_<lang>`` (analysed by that language's analyzer). A query is analysed once per language of
the index and the per-language queries are OR-ed, so a German question finds German sentences by
German stems and English ones by English stems.

The user's text becomes a query in search/parsing.py.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from whoosh import index as whoosh_index
from whoosh import query as Q
from whoosh import scoring
from whoosh.fields import ID, TEXT, Schema

from .analysis import language_analyzer
from .bm25 import PassageBM25, row_documents
from .errors import IndexFormatError, rebuild_hint
from .filters import Allowed
from .manifest import Scoring
from .params import SyntaxName
from .parsing import ParsedQuery, parse_query, positive_leaves
from .store import ChunkTable
from .termmatrix import TermMatrix
from .types import Hit


@dataclass(frozen=True)
class KeywordRecord:
    """What the keyword side stores for one chunk."""

    chunk_id: int
    doc_id: str
    lang: str
    title: str
    text: str


def schema_for(langs: Iterable[str]) -> Schema:
    fields: dict[str, Any] = {"chunk": ID(stored=True, unique=True), "doc": ID(stored=True)}
    for lang in langs:
        analyzer = language_analyzer(lang)
        fields[f"text_{lang}"] = TEXT(analyzer=analyzer, phrase=True)
        fields[f"title_{lang}"] = TEXT(analyzer=analyzer, phrase=True)
    return Schema(**fields)


def _doc_filter(allowed: Allowed | None) -> dict[str, Any]:
    """whoosh's ``filter=`` (the allowed documents) or ``mask=`` (the others), whichever is the shorter query."""
    if allowed is None:
        return {}
    if len(allowed.docs) <= len(allowed.excluded):
        return {"filter": Q.Or([Q.Term("doc", d) for d in sorted(allowed.docs)])}
    return {"mask": Q.Or([Q.Term("doc", d) for d in sorted(allowed.excluded)])} if allowed.excluded else {}


def _damaged(folder: Path, exc: Exception, what: str = "") -> IndexFormatError:
    if isinstance(exc, MemoryError):  # not damage: the machine's limit
        raise exc
    index = folder.parent.parent
    what = f"{what} in {index}" if what else f"the keyword index {folder}"
    return IndexFormatError(f"cannot open {what} ({type(exc).__name__}: {exc}); {rebuild_hint(index)}")


def _with_fields(ix: Any, langs: Iterable[str]) -> Any:
    """``ix`` with the fields of every language in ``langs``, a language new to it added and committed on
    its own first: whoosh's writer processes read the schema from disk, and one that met a field only
    the parent knew failed and left the parent waiting for ever."""
    have = set(ix.schema.names())
    missing = [(name, field) for name, field in schema_for(langs).items() if name not in have]
    if not missing:
        return ix
    writer = ix.writer()
    try:
        for name, field in missing:
            writer.add_field(name, field)
    except BaseException:
        writer.cancel()
        raise
    writer.commit(merge=False)
    return ix.refresh()


class KeywordIndex:
    """A whoosh index in a folder; searcher opened once and reused.

    Whoosh's searcher reads its files through shared file objects (seek, then read), so threads
    take turns on it; the BM25 fast path for plain words is numpy and runs without the lock.
    """

    def __init__(
        self, ix: Any, langs: list[str], bm25: PassageBM25 | None = None, params: Scoring | None = None
    ) -> None:
        self.ix = ix
        self.langs = langs
        params = params or Scoring()
        self.searcher = ix.searcher(weighting=scoring.BM25F(B=params.b, K1=params.k1))
        self.bm25 = bm25
        self._lock = threading.Lock()

    @classmethod
    def build(
        cls,
        folder: Path,
        langs: list[str],
        records: Iterable[KeywordRecord],
        progress: Callable[[int], None] | None = None,
        procs: int = 1,
    ) -> int:
        """Write every record into a new whoosh index in ``folder``; returns the count."""
        folder.mkdir(parents=True, exist_ok=True)
        ix = whoosh_index.create_in(str(folder), schema_for(langs))
        return cls._write(ix, langs, (), records, progress, procs=procs)

    @classmethod
    def update(
        cls,
        folder: Path,
        langs: list[str],
        delete_docs: Iterable[str],
        records: Iterable[KeywordRecord],
        progress: Callable[[int], None] | None = None,
        optimize: bool = False,
        procs: int = 1,
    ) -> int:
        """Delete every chunk of ``delete_docs``, add ``records``, commit; returns the count added.

        ``folder`` is the new generation's copy, so nothing a reader uses is touched. With
        ``optimize`` all segments are merged into one and deleted chunks are dropped for good.
        """
        try:  # the previous generation's segments, copied: a damaged one must not pass into the next
            ix = whoosh_index.open_dir(str(folder))
            ix.reader().close()
        except Exception as exc:
            raise _damaged(folder, exc, "the last generation's keyword index") from None
        return cls._write(ix, langs, delete_docs, records, progress, optimize, procs)

    @staticmethod
    def _write(
        ix: Any,
        langs: list[str],
        delete_docs: Iterable[str],
        records: Iterable[KeywordRecord],
        progress: Callable[[int], None] | None,
        optimize: bool = False,
        procs: int = 1,
    ) -> int:
        ix = _with_fields(ix, langs)
        # several processes, each writing its own segment: 1.7x the documents per second on 2 cores
        writer = ix.writer(limitmb=256, procs=procs, multisegment=True) if procs > 1 else ix.writer(limitmb=256)
        n = 0
        try:
            for doc_id in delete_docs:
                writer.delete_by_term("doc", doc_id)
            for rec in records:
                doc: dict[str, str] = {"chunk": str(rec.chunk_id), "doc": rec.doc_id, f"text_{rec.lang}": rec.text}
                if rec.title:
                    doc[f"title_{rec.lang}"] = rec.title
                writer.add_document(**doc)
                n += 1
                if progress and n % 1000 == 0:
                    progress(1000)
        except BaseException:
            writer.cancel()
            raise
        writer.commit(optimize=optimize)
        if progress and n % 1000:
            progress(n % 1000)
        return n

    @classmethod
    def open(
        cls,
        folder: Path,
        langs: list[str],
        bm25: tuple[Path, Path, ChunkTable] | None = None,
        params: Scoring | None = None,
    ) -> KeywordIndex:
        """Open the whoosh index, and with ``bm25`` (sentence matrix, document matrix, the chunk
        table) the BM25 fast path for plain-word queries, scored with ``params`` (the manifest's)."""
        params = params or Scoring()
        try:
            ix = whoosh_index.open_dir(str(folder))
        except Exception as exc:
            raise _damaged(folder, exc) from None
        fast = None
        if bm25 is not None:
            sentences = TermMatrix.load(bm25[0])
            fast = PassageBM25.from_params(
                sentences, TermMatrix.load(bm25[1]), row_documents(bm25[2], sentences.row_ids), params
            )
        try:
            return cls(ix, langs, fast, params)
        except Exception as exc:  # whoosh reads the segments as its searcher opens: EOFError and kin
            raise _damaged(folder, exc) from None

    def close(self) -> None:
        with self._lock:
            self.searcher.close()

    def parse(self, text: str, syntax: str = SyntaxName.auto) -> ParsedQuery:
        parsed = parse_query(text, self.langs, syntax)
        if parsed.query is None:
            return parsed
        return replace(parsed, terms=self.terms(parsed))

    def terms(self, parsed: ParsedQuery) -> dict[str, frozenset[str]]:
        """The words of this index a parsed query matches, per language (what is highlighted)."""
        if parsed.query is None:
            return {}
        vocabulary = self.bm25.sent.col if self.bm25 is not None and parsed.plain is not None else None
        # a plain query's words: those the BM25 vocabulary holds, a dictionary lookup each (whoosh's term
        # files took 0.4 ms a query at 100k sentences); query syntax: the terms whoosh expands it to
        terms = self._match_terms(parsed.query) if vocabulary is None else {}
        found: dict[str, set[str]] = {}
        for key in parsed.plain or ():
            lang, _, term = key.partition(":")
            if "~" in lang or "+" in lang:  # what its compound parts match is highlighted too (search/highlight.py)
                found.setdefault(lang.replace("~", ""), set()).add(term)
            elif vocabulary is not None and key in vocabulary:
                found.setdefault(lang, set()).add(term)
        for name, ts in found.items():
            terms[name] = terms.get(name, frozenset()) | ts
        return terms

    def _match_terms(self, q: Q.Query) -> dict[str, frozenset[str]]:
        """Analysed terms per language that count as evidence (wildcards and fuzzy expanded)."""
        reader = self.searcher.reader()
        out: dict[str, set[str]] = {}
        for leaf in positive_leaves(q):
            try:
                with self._lock:
                    pairs = leaf.existing_terms(reader, expand=True)
            except Exception:
                pairs = set(leaf.iter_all_terms())
            for field, term in pairs:
                if "_" not in field:
                    continue
                lang = field.rsplit("_", 1)[1]
                out.setdefault(lang, set()).add(term.decode() if isinstance(term, bytes) else str(term))
        return {lang: frozenset(ts) for lang, ts in out.items()}

    def search(self, parsed: ParsedQuery, k: int, allowed: Allowed | None = None) -> list[Hit]:
        """The ``k`` best chunks; with ``allowed``, only among its chunks (before the top k is taken)."""
        if parsed.query is None or k <= 0 or (allowed is not None and not allowed.docs):
            return []
        if parsed.plain is not None and self.bm25 is not None:
            return self.bm25.search(parsed.plain, k, None if allowed is None else allowed.chunks, parsed.words)
        with self._lock:
            results = self.searcher.search(parsed.query, limit=k, **_doc_filter(allowed))
            return [Hit(int(hit["chunk"]), float(hit.score)) for hit in results]

    def matching(self, parsed: ParsedQuery, allowed: Allowed | None = None) -> np.ndarray:
        """Every chunk the query matches (for facets), among ``allowed``'s where given."""
        if parsed.query is None or (allowed is not None and not allowed.docs):
            return np.zeros(0, dtype=np.int64)
        if parsed.plain is not None and self.bm25 is not None:
            ids = self.bm25.matching(parsed.plain, parsed.words)
            return ids if allowed is None else ids[np.isin(ids, allowed.chunks, assume_unique=True)]
        with self._lock:
            results = self.searcher.search(parsed.query, limit=None, **_doc_filter(allowed))
            return np.array([int(hit["chunk"]) for hit in results], dtype=np.int64)

    def scores_for(self, parsed: ParsedQuery, chunk_ids: Iterable[int]) -> dict[int, float]:
        """BM25F scores of the given chunks (0 where the query does not match them)."""
        ids = list(chunk_ids)
        if parsed.query is None or not ids:
            return {}
        if parsed.plain is not None and self.bm25 is not None:
            return self.bm25.scores_for(parsed.plain, ids, parsed.words)
        with self._lock:
            docnums = set()
            for cid in ids:
                num = self.searcher.document_number(chunk=str(cid))
                if num is not None:
                    docnums.add(num)
            if not docnums:
                return {}
            results = self.searcher.search(parsed.query, limit=len(docnums), filter=docnums)
            return {int(hit["chunk"]): float(hit.score) for hit in results}

    def explain(
        self, parsed: ParsedQuery, chunk_ids: Sequence[int], docs: Sequence[int]
    ) -> list[dict[str, Any]] | None:
        """:meth:`PassageBM25.explain` for a plain-word query; None for query syntax (whoosh's BM25F
        scores those as one number)."""
        if parsed.plain is None or self.bm25 is None:
            return None
        return self.bm25.explain(parsed.plain, chunk_ids, docs, parsed.words)

    def stored(self) -> list[tuple[int, str]]:
        """(chunk id, document id) of every live chunk, for consistency checks."""
        with self._lock:
            return [(int(f["chunk"]), f["doc"]) for f in self.searcher.all_stored_fields()]

    @property
    def count(self) -> int:
        with self._lock:
            return int(self.searcher.doc_count())
