"""The keyword index: whoosh with BM25F, one text field per language.

Each chunk is one whoosh document with its chunk id, its document id and its sentence in the field
``text_<lang>`` (analysed by that language's analyzer). A query is analysed once per language of
the index and the per-language queries are OR-ed, so a German question finds German sentences by
German stems and English ones by English stems.

Questions are read as questions: unless the user clearly writes query syntax ("phrases",
AND/OR/NOT, field:term, fuzzy~, parentheses), the words are analysed and OR-ed, and characters
such as ``?`` or ``:`` carry no meaning.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from whoosh import index as whoosh_index
from whoosh import query as Q
from whoosh import scoring
from whoosh.fields import ID, TEXT, Schema
from whoosh.qparser import FuzzyTermPlugin, OrGroup, QueryParser

from .analysis import analyze, analyze_parts, language_analyzer, stopword_language, stopwords
from .bm25 import PassageBM25, TermMatrix, row_documents
from .errors import IndexFormatError, QueryError, rebuild_hint
from .filters import Allowed
from .manifest import Scoring
from .params import SyntaxName
from .store import ChunkTable
from .types import Hit

SEARCH_FIELDS = ("text", "title")
_WORD = re.compile(r"\w+(?:\.?\w+)*")
# Parentheses alone are not syntax: "(TNF-α)" in a question is an abbreviation, not a group.
# A star that ends a word is a prefix query ("Koalit*"); inside a word it is a gender form ("Lehrer*innen").
_SYNTAX = re.compile(r"\b(?:AND|OR|NOT|ANDNOT)\b|\b(?:text|title|doc):\S|\w~\d*(?:\s|$)|\w\*(?!\w)")
_PHRASE = re.compile(r'"[^"]+"')
# Past this many words quotation marks are prose, not a phrase query: a pasted paragraph that quotes
# someone is a long query to be scored word by word (76 of the 240 xquad-en paragraphs quote; as
# phrase queries whoosh scored them sentence by sentence: benchmarks/results/long_queries.md).
PROSE_WORDS = 20
MAX_EDITS = 2  # a fuzzy term's edit distance, as Lucene's FuzzyQuery allows
MAX_FUZZY = 10  # fuzzy terms in one query (ten at two edits: about a second on 240 documents)


@dataclass(frozen=True)
class KeywordRecord:
    """What the keyword side stores for one chunk."""

    chunk_id: int
    doc_id: str
    lang: str
    title: str
    text: str


@dataclass(frozen=True)
class ParsedQuery:
    """A query ready to run, with the analysed terms it can highlight, per language."""

    query: Q.Query | None
    terms: dict[str, frozenset[str]]
    syntax: bool
    plain: tuple[str, ...] | None = None  # "lang:term" keys of a plain-word query, for BM25


def schema_for(langs: Iterable[str]) -> Schema:
    fields: dict[str, Any] = {"chunk": ID(stored=True, unique=True), "doc": ID(stored=True)}
    for lang in langs:
        analyzer = language_analyzer(lang)
        fields[f"text_{lang}"] = TEXT(analyzer=analyzer, phrase=True)
        fields[f"title_{lang}"] = TEXT(analyzer=analyzer, phrase=True)
    return Schema(**fields)


@cache
def _parser(lang: str) -> QueryParser:
    """A parser over the user-facing field names, analysing with ``lang``'s analyzer."""
    analyzer = language_analyzer(lang)
    schema = Schema(text=TEXT(analyzer=analyzer), title=TEXT(analyzer=analyzer), doc=ID(), chunk=ID())
    parser = QueryParser("text", schema, group=OrGroup)
    parser.add_plugin(FuzzyTermPlugin())
    return parser


def looks_like_syntax(text: str) -> bool:
    """True where the user clearly wrote query syntax rather than a plain question: an operator, a
    field, a fuzzy or prefix term anywhere, or a quoted phrase in a query of at most ``PROSE_WORDS`` words."""
    if _SYNTAX.search(text):
        return True
    return bool(_PHRASE.search(text)) and len(_WORD.findall(text)) <= PROSE_WORDS


def _rename_fields(q: Q.Query, lang: str) -> Q.Query:
    for leaf in q.leaves():  # a leaf query yields itself
        name = getattr(leaf, "fieldname", None)
        if name in SEARCH_FIELDS:
            leaf.fieldname = f"{name}_{lang}"
    return q


def _doc_filter(allowed: Allowed | None) -> dict[str, Any]:
    """whoosh's ``filter=`` (the allowed documents) or ``mask=`` (the others), whichever is the shorter query."""
    if allowed is None:
        return {}
    if len(allowed.docs) <= len(allowed.excluded):
        return {"filter": Q.Or([Q.Term("doc", d) for d in sorted(allowed.docs)])}
    return {"mask": Q.Or([Q.Term("doc", d) for d in sorted(allowed.excluded)])} if allowed.excluded else {}


def _exclusions(q: Q.Query) -> Q.Query:
    """``a b NOT c`` as Lucene reads it: (a or b) and not c. With OR as the default group whoosh reads
    it as a or b or (not c), which matches every passage without c. A NOT excludes from the group it
    stands in as whoosh groups it: ``a NOT b OR c`` is a or (c and not b); ``(a OR c) AND NOT b`` says
    the other reading (the README says so)."""
    if q.is_leaf():
        return q
    q = q.apply(_exclusions)
    if isinstance(q, Q.Or):
        excluded = [c.query for c in q.subqueries if isinstance(c, Q.Not)]
        wanted = [c for c in q.subqueries if not isinstance(c, Q.Not)]
        if excluded and wanted:  # (fish NOT dogs)^3 keeps its boost on what it matches
            kept = _any(wanted) if q.boost == 1 else Q.Or(wanted, boost=q.boost)
            return Q.AndNot(kept, _any(excluded))
    return q


def _check_fuzzy(q: Q.Query, text: str) -> None:
    """Refuses what would tie a server up for minutes: a fuzzy term walks the whole term dictionary,
    slower the more edits it allows (``w~9`` took 2.3 s on 240 documents, 100 of them over two minutes)."""
    fuzzy = [leaf for leaf in q.leaves() if isinstance(leaf, Q.FuzzyTerm)]
    # whoosh reads one digit: "w~10" would be w~1 and a word "0"
    over = [m.group() for m in re.finditer(r'[^\s"()]+~(\d+)', text) if int(m.group(1)) > MAX_EDITS]
    if over or any(leaf.maxdist > MAX_EDITS for leaf in fuzzy):
        word = over[0] if over else ""
        raise QueryError(f"a fuzzy term allows at most {MAX_EDITS} edits, as in Lucene, not {word!r}")
    if len(fuzzy) > MAX_FUZZY:
        raise QueryError(f"a query holds at most {MAX_FUZZY} fuzzy terms (word~), this one {len(fuzzy)}")


def _any(queries: list[Q.Query]) -> Q.Query:
    return queries[0] if len(queries) == 1 else Q.Or(queries)


def _positive_leaves(q: Q.Query) -> Iterator[Q.Query]:
    """Leaves that count as matches (everything not under a NOT)."""
    if isinstance(q, Q.Not):
        return
    if isinstance(q, Q.AndNot):
        yield from _positive_leaves(q.a)
        return
    if q.is_leaf():
        yield q
        return
    for child in q.children():
        yield from _positive_leaves(child)


def parse_query(text: str, langs: Iterable[str], syntax: str = SyntaxName.auto) -> ParsedQuery:
    """Turn the user's text into a whoosh query over the index's languages (``syntax``: a :class:`SyntaxName`)."""
    langs = list(langs)
    text = unicodedata.normalize("NFC", text)  # "Ko\u0308nigin" is "Königin": _WORD ends a word at a combining mark
    use_syntax = syntax == SyntaxName.on or (syntax == SyntaxName.auto and looks_like_syntax(text))
    parts: list[Q.Query] = []
    plain: list[str] = []
    if use_syntax:
        for lang in langs:
            try:
                q = _exclusions(_parser(lang).parse(text, normalize=False)).normalize()
            except Exception as exc:  # whoosh raises many kinds; all mean "bad syntax"
                raise QueryError(f"cannot parse query syntax ({exc}); use --syntax off to search plain words") from None
            _check_fuzzy(q, text)
            if q is not Q.NullQuery:
                parts.append(_rename_fields(q, lang))
    else:
        # A word that is a stopword in any language in play is dropped before analysis, so an
        # English "and" never matches the German stem of "ändern" in a German index.
        found = _WORD.findall(text)
        # The query's own language adds its stoplist too, where two or more of its words say which it is
        # and never so as to leave no word: "dog" is a Danish stopword and "sea" a Spanish one, and in
        # an English index they are the words being searched for.
        own = frozenset().union(*(stopwords(lg) for lg in langs or ["en"]))
        query_lang = stopword_language(found, prefer=langs, least=2)
        foreign = stopwords(query_lang) - own if query_lang and query_lang not in langs else frozenset()
        kept = [w for w in found if w.lower() not in own]
        words = " ".join([w for w in kept if w.lower() not in foreign] or kept)
        for lang in langs:
            analysed = analyze(words, lang)  # a word the query repeats counts as often (search/bm25.py)
            if analysed:
                parts.append(Q.Or([Q.Term(f"text_{lang}", t) for t in dict.fromkeys(analysed)]))
                plain += _plain_keys(words, lang, analysed)
    if not parts:
        return ParsedQuery(None, {}, use_syntax)
    final = parts[0] if len(parts) == 1 else Q.Or(parts)
    return ParsedQuery(final, {}, use_syntax, None if use_syntax else tuple(plain))


def _damaged(folder: Path, exc: Exception, what: str = "") -> IndexFormatError:
    if isinstance(exc, MemoryError):  # not damage: the machine's limit
        raise exc
    index = folder.parent.parent
    what = f"{what} in {index}" if what else f"the keyword index {folder}"
    return IndexFormatError(f"cannot open {what} ({type(exc).__name__}: {exc}); {rebuild_hint(index)}")


def _plain_keys(words: str, lang: str, terms: list[str]) -> list[str]:
    """The BM25 keys of a plain query's words: each word; in German also the word inside compounds
    (``de+:``), and the parts of a query compound at lower weight (``de~:``, ``de~+:``; search/bm25.py)."""
    keys = [f"{lang}:{t}" for t in terms]
    if lang != "de":
        return keys
    keys += [f"{lang}+:{t}" for t in terms]
    whole = set(terms)
    for p in dict.fromkeys(analyze_parts(words, lang)):
        if p not in whole:
            keys += [f"{lang}~:{p}", f"{lang}~+:{p}"]
    return keys


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
        # several processes, each writing its own segment: 1.7x the documents per second on 2 cores
        writer = ix.writer(limitmb=256, procs=procs, multisegment=True) if procs > 1 else ix.writer(limitmb=256)
        n = 0
        try:
            have = set(writer.schema.names())
            for lang in langs:  # a language new to this index gets its fields
                analyzer = language_analyzer(lang)
                for name in (f"text_{lang}", f"title_{lang}"):
                    if name not in have:
                        writer.add_field(name, TEXT(analyzer=analyzer, phrase=True))
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
        return ParsedQuery(parsed.query, self.terms(parsed), parsed.syntax, parsed.plain)

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
        for leaf in _positive_leaves(q):
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
            return self.bm25.search(parsed.plain, k, None if allowed is None else allowed.chunks)
        with self._lock:
            results = self.searcher.search(parsed.query, limit=k, **_doc_filter(allowed))
            return [Hit(int(hit["chunk"]), float(hit.score)) for hit in results]

    def matching(self, parsed: ParsedQuery, allowed: Allowed | None = None) -> np.ndarray:
        """Every chunk the query matches (for facets), among ``allowed``'s where given."""
        if parsed.query is None or (allowed is not None and not allowed.docs):
            return np.zeros(0, dtype=np.int64)
        if parsed.plain is not None and self.bm25 is not None:
            ids = self.bm25.matching(parsed.plain)
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
            return self.bm25.scores_for(parsed.plain, ids)
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
        return self.bm25.explain(parsed.plain, chunk_ids, docs)

    def stored(self) -> list[tuple[int, str]]:
        """(chunk id, document id) of every live chunk, for consistency checks."""
        with self._lock:
            return [(int(f["chunk"]), f["doc"]) for f in self.searcher.all_stored_fields()]

    @property
    def count(self) -> int:
        with self._lock:
            return int(self.searcher.doc_count())
