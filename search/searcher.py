"""Running queries: ``Index.searcher()`` returns a :class:`Searcher`, as whoosh's index hands out a searcher.

The :class:`~search.index.Index` opens and holds the files; the searcher runs queries against
them: both sides propose candidates, every candidate is scored by both sides, the signals are
fused (:mod:`search.fusion`), feedback may re-rank once (:mod:`search.feedback`), and the best
chunks become passages with highlights and evidence. What a search can be told is one
:class:`~search.params.SearchParams`.

This module never imports :mod:`search.index`: it needs only what :class:`IndexView` names.
"""

from __future__ import annotations

import contextlib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from .analysis import keyword_query
from .candidates import Candidates
from .chunking import Span, passage_span
from .encoder import Encoder
from .errors import DocumentNotFoundError, QueryError, SearchError
from .feedback import DocumentFeedback
from .filters import Allowed, Filters, count_facets, known_fields
from .fusion import NORMS, fuse, get_fusion
from .highlight import highlight_spans, matched_words
from .keyword import KeywordIndex
from .manifest import Manifest
from .params import MAX_CANDIDATES, ModeName, SearchParams
from .parsing import ParsedQuery
from .types import Chunk, Document, Evidence, Result
from .vectors import VectorIndex

MAX_QUERY_CHARS = 10_000


class IndexView(Protocol):
    """What a searcher reads of an open index."""

    manifest: Manifest
    keyword: KeywordIndex
    documents: list[Document]

    @property
    def vectors(self) -> VectorIndex: ...

    @property
    def doc_vectors(self) -> VectorIndex: ...

    @property
    def encoder(self) -> Encoder: ...

    def chunk(self, chunk_id: int) -> Chunk: ...

    def doc_nums(self, chunk_ids: Iterable[int]) -> list[int]: ...

    def document(self, num: int) -> Document: ...

    def sentences(self, doc: int) -> list[Span]: ...

    def document_num(self, doc_id: str) -> int | None: ...

    def allowed(self, filters: Filters) -> Allowed | None: ...

    def chunk_ids(self, doc: int) -> list[int]: ...

    def candidates(
        self, parsed: ParsedQuery, qvec: np.ndarray | None, k: int, allowed: Allowed | None, hybrid: bool
    ) -> Candidates: ...


def clean_query(text: str) -> str:
    """The query with control characters removed and whitespace collapsed; checks its length."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    text = " ".join(text.split())
    if not text:
        raise QueryError("empty query; type some words or a question")
    return text


@dataclass(frozen=True)
class Scored:
    """Every candidate chunk of a query with its fused score and each side's score."""

    fused: dict[int, float]
    keyword: dict[int, float]
    semantic: dict[int, float]  # what ranks: sentence and document cosine mixed by doc_weight
    parsed: ParsedQuery
    cosine: dict[int, float] = field(default_factory=dict)  # the sentence's own cosine (the evidence)
    doc_cosine: dict[int, float] = field(default_factory=dict)  # its document's cosine
    feedback_docs: tuple[int, ...] = ()  # the documents (nums) whose vectors moved the query
    moved_doc_cosine: dict[int, float] = field(default_factory=dict)  # after feedback: what `semantic` mixes
    allowed: Allowed | None = None  # what the filter let through (None: no filter)
    params: SearchParams | None = None  # the options it ranked with, this query's weights filled in


@dataclass(frozen=True)
class Page:
    """One search's answer: its passages, and what shaped them beyond the query."""

    results: list[Result]
    feedback_docs: tuple[str, ...] = ()  # hybrid: the documents (ids) whose vectors moved the query
    facets: dict[str, dict[str, int]] | None = None  # with SearchParams.facets: per field, documents per value
    shards: tuple[int, int] | None = None  # a sharded index: shards that answered, shards in all


def _params(params: SearchParams | None, changes: dict[str, Any]) -> SearchParams:
    base = params if params is not None else SearchParams()
    return base.replace(**changes) if changes else base


class Searcher:
    """Runs queries against one open index; cheap to make, holds no files of its own."""

    def __init__(self, index: IndexView) -> None:
        self.index = index

    def search(
        self, query: str, params: SearchParams | None = None, *, query_vector: np.ndarray | None = None, **changes: Any
    ) -> list[Result]:
        """Rank passages for ``query``: ``params`` (default :class:`SearchParams`), with ``changes`` applied.

        ``query_vector`` is the query's embedding where the caller already has it (batched queries).
        """
        return self.page(query, params, query_vector=query_vector, **changes).results

    def page(
        self, query: str, params: SearchParams | None = None, *, query_vector: np.ndarray | None = None, **changes: Any
    ) -> Page:
        """:meth:`search`'s passages with what shaped them (the documents feedback moved the query to)."""
        keywords = keyword_query(query)
        p = _params(params, changes)
        window = self.index.manifest.chunking.window if p.window is None else p.window
        floor = p.floor(keywords)
        depth = p.k + p.offset  # a page is ranks offset+1 … offset+k of the query with k+offset, exactly
        candidates = min(max(p.candidates, depth), MAX_CANDIDATES)
        scored = self.score(query, p.replace(candidates=candidates), query_vector=query_vector)
        results: list[Result] = []
        chunks: list[Chunk] = []  # the page's, for explain
        ranked = 0
        shown: dict[int, list[tuple[int, int]]] = {}
        for cid in sorted(scored.fused, key=lambda c: (-scored.fused[c], c)):
            if ranked == depth or (floor is not None and scored.fused[cid] < floor):
                break  # best first: every later one scores lower still
            chunk = self.index.chunk(cid)
            span = passage_span(self.index.sentences(chunk.doc), chunk.position, window)
            if p.dedupe and any(s <= span.start and span.end <= e for s, e in shown.get(chunk.doc, ())):
                continue
            shown.setdefault(chunk.doc, []).append((span.start, span.end))
            ranked += 1
            if ranked > p.offset:
                results.append(self._result(ranked, chunk, span, scored, p.mode))
                chunks.append(chunk)
        if p.explain and results:
            explained = Explainer(self.index, scored, scored.params or p).page(chunks)  # the weights it ranked with
            results = [replace(r, explain=e) for r, e in zip(results, explained, strict=True)]
        used = tuple(self.index.document(n).id for n in scored.feedback_docs)
        return Page(results, used, self._facets(scored, p) if p.facets else None)

    def _facets(self, scored: Scored, p: SearchParams) -> dict[str, dict[str, int]]:
        """Documents per value of each facet field, over the whole match set: every chunk the keyword
        side matches (keyword and hybrid modes) and every candidate ranked, within the filter."""
        ix = self.index
        chunks = set(scored.fused)
        if p.mode is not ModeName.semantic:
            chunks.update(ix.keyword.matching(scored.parsed, scored.allowed).tolist())
        nums = set(ix.doc_nums(chunks))
        facets = count_facets((ix.document(n) for n in sorted(nums)), p.facets)
        if any(not counts for counts in facets.values()):  # no value, or no such field at all?
            known = known_fields(ix.documents)
            for name in (n for n, counts in facets.items() if not counts and n not in known):
                raise SearchError(f"unknown facet field {name!r}; this index has: {', '.join(sorted(known))}")
        return facets

    def similar(self, doc_id: str, k: int = 10, window: int | None = None) -> list[Result]:
        """The ``k`` documents nearest to ``doc_id``'s own vector, itself excluded, best first ("more
        like this"). Each result is the other document's sentence closest to any sentence of this one,
        with its neighbours; ``evidence.source`` locates that sentence of this one, ``similarity`` is
        the two sentences' cosine, and ``score`` the two documents' cosine. No model is loaded."""
        ix = self.index
        num = ix.document_num(doc_id)
        if num is None:
            raise DocumentNotFoundError(f"no document {doc_id!r} in the index")
        window = ix.manifest.chunking.window if window is None else window
        hits = [
            h for h in ix.doc_vectors.search(ix.doc_vectors.vectors([num])[0], k + 1, exact=True) if h.chunk_id != num
        ]
        mine = ix.chunk_ids(num)
        if not mine:
            return []
        own = ix.vectors.vectors(mine)
        results: list[Result] = []
        for hit in hits[:k]:
            theirs = ix.chunk_ids(hit.chunk_id)
            if not theirs:
                continue
            cos = own @ ix.vectors.vectors(theirs).T
            i, j = np.unravel_index(int(np.argmax(cos)), cos.shape)
            chunk, source = ix.chunk(theirs[int(j)]), ix.chunk(mine[int(i)])
            doc = ix.document(hit.chunk_id)
            span = passage_span(ix.sentences(hit.chunk_id), chunk.position, window)
            results.append(
                Result(
                    rank=len(results) + 1,
                    doc=doc.id,
                    title=doc.title,
                    passage=doc.text[span.start : span.end],
                    start=span.start,
                    end=span.end,
                    score=hit.score,
                    keyword_score=None,
                    semantic_score=hit.score,
                    evidence=Evidence(
                        sentence=(chunk.start - span.start, chunk.end - span.start),
                        similarity=float(cos[i, j]),
                        source=(source.start, source.end),
                    ),
                    chunk_id=chunk.id,
                    meta=doc.metadata(),
                    pages=page_range(doc, span),
                )
            )
        return results

    def search_many(self, queries: list[str], params: SearchParams | None = None, **changes: Any) -> list[list[Result]]:
        """Rank passages for several queries, embedding them in batches (semantic and hybrid modes)."""
        p = _params(params, changes)
        vectors = [None] * len(queries) if p.mode is ModeName.keyword else self.query_vectors(queries)
        return [self.search(q, p, query_vector=v) for q, v in zip(queries, vectors, strict=True)]

    def query_vectors(self, queries: list[str], batch: int = 64) -> list[np.ndarray | None]:
        """Embeddings of several queries, a batch at a time, of the cleaned text a search embeds
        (None for a query that search() would refuse; it reports that query's own error)."""
        vectors: list[np.ndarray | None] = [None] * len(queries)
        good: list[tuple[int, str]] = []
        for i, q in enumerate(queries):
            with contextlib.suppress(QueryError):
                good.append((i, clean_query(q)))
        for lo in range(0, len(good), batch):
            part = good[lo : lo + batch]
            for (i, _), vec in zip(part, self.index.encoder.encode_queries([q for _, q in part]), strict=True):
                vectors[i] = vec
        return vectors

    def score(
        self, query: str, params: SearchParams | None = None, *, query_vector: np.ndarray | None = None
    ) -> Scored:
        """The ranking without passages: what :meth:`search` shows and ``search eval`` measures."""
        ix = self.index
        text = clean_query(query)
        p = params if params is not None else SearchParams()
        parsed = self._parse(text, p)
        p = p.for_query(keyword_query(text), parsed.words > ix.manifest.scoring.long_words)
        return replace(self._rank(text, parsed, p, query_vector), params=p)

    def _rank(self, text: str, parsed: ParsedQuery, p: SearchParams, query_vector: np.ndarray | None) -> Scored:
        ix = self.index
        allowed = ix.allowed(p.filters)
        qvec = None
        if p.mode is not ModeName.keyword:
            qvec = ix.encoder.encode_queries([text])[0] if query_vector is None else query_vector
        found = ix.candidates(parsed, qvec, p.candidates, allowed, p.mode is ModeName.hybrid)
        if found.terms is not None:  # a sharded index: the words matched in its shards, for highlights
            parsed = replace(parsed, terms=found.terms)
        keyword, cosine = found.keyword, found.cosine
        if p.mode is ModeName.keyword:
            return Scored(keyword, keyword, {}, parsed, allowed=allowed)
        assert qvec is not None
        doc_of = dict(zip(cosine, ix.doc_nums(cosine), strict=True))
        docs = sorted(set(doc_of.values()))
        weight = p.effective_doc_weight
        doc_cosine = _per_chunk(found.doc_cosine, doc_of)
        semantic = _mix(cosine, doc_cosine, weight)
        if p.mode is ModeName.semantic:
            return Scored(semantic, {}, semantic, parsed, cosine, doc_cosine, allowed=allowed)
        weights = [1.0 - p.effective_alpha, p.effective_alpha]
        fused = fuse([keyword, semantic], weights, p.fusion.value, p.rrf_k)
        feedback = DocumentFeedback(p.feedback, p.feedback_weight)
        if feedback.active and weight and fused:
            # second ranking: the query moved towards its best documents scores every candidate's
            # document again; a sentence's own cosine stays (see search/feedback.py)
            best = feedback.top_documents(fused, doc_of)
            moved = feedback.moved(qvec, found.document_vectors(ix, list(best)))
            moved_cosine = _per_chunk(found.document_similarities(ix, moved, docs), doc_of)
            semantic = _mix(cosine, moved_cosine, weight)
            fused = fuse([keyword, semantic], weights, p.fusion.value, p.rrf_k)
            used = tuple(int(d) for d in best)
            return Scored(fused, keyword, semantic, parsed, cosine, doc_cosine, used, moved_cosine, allowed)
        return Scored(fused, keyword, semantic, parsed, cosine, doc_cosine, allowed=allowed)

    def _parse(self, text: str, p: SearchParams) -> ParsedQuery:
        """The keyword query; in semantic mode, syntax whoosh cannot parse only loses its highlights."""
        try:
            return self.index.keyword.parse(text, p.syntax.value)
        except QueryError:
            if p.mode is not ModeName.semantic:
                raise
            return self.index.keyword.parse(text, "off")

    def _result(self, rank: int, chunk: Chunk, span: Span, scored: Scored, mode: ModeName) -> Result:
        chunk_id = chunk.id
        doc = self.index.document(chunk.doc)
        passage = doc.text[span.start : span.end]
        spans = highlight_spans(passage, scored.parsed.terms, doc.lang)
        kw, sem = scored.keyword.get(chunk_id), scored.semantic.get(chunk_id)
        sentence = (chunk.start - span.start, chunk.end - span.start) if sem is not None else None
        if mode is ModeName.keyword:
            sem = None
        elif mode is ModeName.semantic:
            kw = None
        elif kw is None:
            kw = 0.0  # hybrid: the keyword side scored this chunk and found no query term
        return Result(
            rank=rank,
            doc=doc.id,
            title=doc.title,
            passage=passage,
            start=span.start,
            end=span.end,
            score=float(scored.fused[chunk_id]),
            keyword_score=kw,
            semantic_score=sem,
            highlights=tuple(spans),
            evidence=Evidence(matched_words(passage, spans), sentence, scored.cosine.get(chunk_id)),
            chunk_id=chunk_id,
            meta=doc.metadata(),
            pages=page_range(doc, span),
        )


class Explainer:
    """Each result's ``explain`` object: numbers from which its score is recomputed exactly.

    keyword: ``raw = document_share · document_bm25 + sentence_share · sentence_bm25`` (the sum of
    ``terms``; plain words only, query syntax is one number: search/syntax.py); semantic: ``raw =
    (sentence_cosine + doc_weight · document_cosine) / (1 + doc_weight)``, the document cosine taken
    with the query feedback moved; hybrid: ``score = scale · (weights[0] · keyword.normalised +
    weights[1] · semantic.normalised)``, each side normalised over its candidates (min-max, or
    ``1 / (rrf_k + rank)``). ``rank`` is the place on that side alone.
    """

    def __init__(self, index: IndexView, scored: Scored, p: SearchParams) -> None:
        self.index, self.scored, self.p = index, scored, p
        self.hybrid = p.mode is ModeName.hybrid
        norm_name, self.scale = get_fusion(p.fusion.value)
        self.norm = NORMS[norm_name]
        self.keyword = self._side(scored.keyword) if p.mode is not ModeName.semantic else None
        self.semantic = self._side(scored.semantic) if p.mode is not ModeName.keyword else None
        self.doc_cosine = scored.moved_doc_cosine or scored.doc_cosine

    def _side(self, signal: dict[int, float]) -> _Side:
        """Normalised scores (as fusion computes them: over this side's candidates, in id order)."""
        ids = np.fromiter(signal, dtype=np.int64, count=len(signal))
        order = np.argsort(ids)
        raw = np.fromiter(signal.values(), dtype=np.float64, count=len(signal))[order]
        return _Side(ids[order], raw, self.norm(raw, self.p.rrf_k))

    def page(self, chunks: list[Chunk]) -> list[dict[str, Any]]:
        """The explain object of each of a page's chunks (the BM25 parts looked up for all at once)."""
        scored = [c for c in chunks if c.id in self.scored.keyword] if self.keyword is not None else []
        found = self.index.keyword.explain(self.scored.parsed, [c.id for c in scored], [c.doc for c in scored])
        parts = dict(zip([c.id for c in scored], found or [], strict=False))
        return [self._one(c, parts.get(c.id)) for c in chunks]

    def _one(self, chunk: Chunk, parts: dict[str, Any] | None) -> dict[str, Any]:
        p, s, cid = self.p, self.scored, chunk.id
        out: dict[str, Any] = {"keyword": None, "semantic": None, "fusion": None, "feedback": None}
        if self.keyword is not None:
            raw = s.keyword.get(cid)
            normalised, rank = self.keyword.at(cid)
            side: dict[str, Any] = {"raw": raw if raw is not None else 0.0, "normalised": normalised or 0.0}
            side["rank"] = rank
            side.update(parts or dict.fromkeys(("document_bm25", "sentence_bm25", "document_share", "sentence_share")))
            side.setdefault("terms", {})
            side["scoring"] = "bm25" if s.parsed.plain is not None else "bm25 syntax"
            out["keyword"] = side
        if self.semantic is not None:
            normalised, rank = self.semantic.at(cid)
            out["semantic"] = {
                "raw": s.semantic[cid],
                "normalised": normalised,
                "rank": rank,
                "sentence_cosine": s.cosine[cid],
                "document_cosine": self.doc_cosine[cid],
                "doc_weight": p.effective_doc_weight,
            }
        if self.hybrid:
            weights = [1.0 - p.effective_alpha, p.effective_alpha]
            out["fusion"] = {"method": p.fusion.value, "alpha": p.effective_alpha, "rrf_k": p.rrf_k}
            out["fusion"].update(weights=weights, scale=self.scale)
            if s.feedback_docs:
                docs = [self.index.document(n).id for n in s.feedback_docs]
                out["feedback"] = {"docs": docs, "weight": p.feedback_weight}
        return out


@dataclass(frozen=True)
class _Side:
    """One side's candidates in id order: their raw and normalised scores."""

    ids: np.ndarray
    raw: np.ndarray
    normalised: np.ndarray

    def at(self, chunk_id: int) -> tuple[float | None, int | None]:
        """A candidate's normalised score and its rank on this side alone (1-based, by descending
        score, ties by id); None, None for a chunk this side did not score."""
        pos = int(np.searchsorted(self.ids, chunk_id))
        if pos == len(self.ids) or self.ids[pos] != chunk_id:
            return None, None
        r = self.raw[pos]
        better = np.count_nonzero(self.raw > r) + np.count_nonzero((self.raw == r) & (self.ids < chunk_id))
        return float(self.normalised[pos]), int(better) + 1


def page_range(doc: Document, span: Span) -> tuple[int, int] | None:
    """The first and last page (1-based) a passage of ``doc`` covers; None without pages."""
    first = doc.page_of(span.start)
    if first is None:
        return None
    return first, doc.page_of(max(span.start, span.end - 1)) or first


def _per_chunk(by_doc: dict[int, float], doc_of: dict[int, int]) -> dict[int, float]:
    return {c: by_doc[d] for c, d in doc_of.items()}


def _mix(cosine: dict[int, float], doc_cosine: dict[int, float], doc_weight: float) -> dict[int, float]:
    """A sentence's semantic score: its cosine and its document's, weighted 1 : ``doc_weight``."""
    return {c: (s + doc_weight * doc_cosine[c]) / (1.0 + doc_weight) for c, s in cosine.items()}
