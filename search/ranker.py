"""The hybrid ranker: run a query on both sides, fuse, and build passages with evidence."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .chunking import passage_span
from .errors import QueryError, SearchError
from .fusion import get_fusion
from .highlight import highlight_spans, matched_words
from .keyword import ParsedQuery, Syntax
from .types import MODES, Evidence, Result

if TYPE_CHECKING:
    from .index import Index

MAX_QUERY_CHARS = 10_000
DEFAULT_K = 10
DEFAULT_CANDIDATES = 100
DEFAULT_FUSION = "convex"
DEFAULT_ALPHA = 0.8  # chosen on the tuning splits: benchmarks/results/relevance.md
DEFAULT_RRF_K = 60
# a sentence's semantic score = (its cosine + w · its document's cosine) / (1 + w): the document
# vector (title and opening text) knows what the whole document is about, one sentence may not
DEFAULT_DOC_WEIGHT = 3.0  # hybrid mode: chosen with alpha and feedback on the tuning splits
DEFAULT_SEMANTIC_DOC_WEIGHT = 1.0  # semantic mode alone: chosen on the same splits
# pseudo-relevance feedback in hybrid mode: the query vector is moved towards the document vectors
# of the first ranking's best documents, q' = q + weight · mean(those vectors), and every
# candidate's document cosine is taken again with q' ("documents like the best one"); chosen with
# alpha on the tuning splits
DEFAULT_FEEDBACK = 1
DEFAULT_FEEDBACK_WEIGHT = 0.5


def clean_query(text: str) -> str:
    """The query with control characters removed and whitespace collapsed; checks its length."""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"query is {len(text)} characters long; the limit is {MAX_QUERY_CHARS}")
    text = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    text = " ".join(text.split())
    if not text:
        raise QueryError("empty query; type some words or a question")
    return text


def search(
    index: Index,
    query: str,
    *,
    mode: str = "hybrid",
    k: int = DEFAULT_K,
    fusion: str = DEFAULT_FUSION,
    alpha: float = DEFAULT_ALPHA,
    rrf_k: int = DEFAULT_RRF_K,
    candidates: int = DEFAULT_CANDIDATES,
    window: int | None = None,
    syntax: Syntax = "auto",
    dedupe: bool = True,
    query_vector: np.ndarray | None = None,
    doc_weight: float | None = None,
    feedback: int = DEFAULT_FEEDBACK,
    feedback_weight: float = DEFAULT_FEEDBACK_WEIGHT,
) -> list[Result]:
    """Rank passages of ``index`` for ``query``.

    ``mode`` picks the sides; ``fusion`` (``convex`` or ``rrf``) and ``alpha`` (the semantic
    side's weight) combine them in hybrid mode. Each side contributes ``candidates`` chunks, and
    every candidate is scored by both sides, so a passage only one side retrieved is still
    compared fairly. ``window`` is the number of neighbouring sentences on each side of the
    matched one (default: the index's setting). With ``dedupe`` a passage that lies wholly inside a
    better-ranked passage of the same document is passed over, so no result only repeats another.
    ``query_vector`` is the query's embedding when the caller already has it (batched queries).
    ``doc_weight`` is the weight of a sentence's document vector in its semantic score (default:
    :data:`DEFAULT_DOC_WEIGHT` in hybrid mode, :data:`DEFAULT_SEMANTIC_DOC_WEIGHT` in semantic mode).
    ``feedback`` documents of the first hybrid ranking sharpen the query vector for a second one
    (``feedback_weight`` is their weight against the query; 0 documents: one ranking only).
    """
    if k < 1:
        raise SearchError("k must be at least 1")
    window = index.manifest["chunking"]["window"] if window is None else max(0, window)
    scored = score_chunks(
        index,
        query,
        mode=mode,
        fusion=fusion,
        alpha=alpha,
        rrf_k=rrf_k,
        candidates=max(candidates, k),
        syntax=syntax,
        query_vector=query_vector,
        doc_weight=doc_weight,
        feedback=feedback,
        feedback_weight=feedback_weight,
    )
    fused, keyword, semantic, parsed = scored.fused, scored.keyword, scored.semantic, scored.parsed
    results: list[Result] = []
    shown: dict[int, list[tuple[int, int]]] = {}
    for cid in sorted(fused, key=lambda c: (-fused[c], c)):
        if len(results) == k:
            break
        result = _result(
            index,
            len(results) + 1,
            cid,
            fused[cid],
            keyword.get(cid),
            semantic.get(cid),
            scored.cosine.get(cid),
            parsed,
            window,
            mode,
        )
        doc = index.chunk(cid).doc
        if dedupe and any(s <= result.start and result.end <= e for s, e in shown.get(doc, ())):
            continue
        shown.setdefault(doc, []).append((result.start, result.end))
        results.append(result)
    return results


@dataclass(frozen=True)
class Scored:
    """Every candidate chunk of a query with its fused score and each side's score."""

    fused: dict[int, float]
    keyword: dict[int, float]
    semantic: dict[int, float]  # what ranks: sentence and document cosine mixed by doc_weight
    parsed: ParsedQuery
    cosine: dict[int, float] = field(default_factory=dict)  # the sentence's own cosine (the evidence)
    doc_cosine: dict[int, float] = field(default_factory=dict)  # its document's cosine


def score_chunks(
    index: Index,
    query: str,
    *,
    mode: str = "hybrid",
    fusion: str = DEFAULT_FUSION,
    alpha: float = DEFAULT_ALPHA,
    rrf_k: int = DEFAULT_RRF_K,
    candidates: int = DEFAULT_CANDIDATES,
    syntax: Syntax = "auto",
    query_vector: np.ndarray | None = None,
    doc_weight: float | None = None,
    feedback: int = DEFAULT_FEEDBACK,
    feedback_weight: float = DEFAULT_FEEDBACK_WEIGHT,
) -> Scored:
    """The ranking without passages: what :func:`search` shows and ``search eval`` measures."""
    if mode not in MODES:
        raise SearchError(f"unknown mode {mode!r}; choose one of: {', '.join(MODES)}")
    if not 0.0 <= alpha <= 1.0:
        raise SearchError(f"alpha must be between 0 and 1, not {alpha}")
    fuse = get_fusion(fusion)
    text = clean_query(query)
    parsed: ParsedQuery = index.keyword.parse(text, syntax)
    if doc_weight is None:
        doc_weight = DEFAULT_SEMANTIC_DOC_WEIGHT if mode == "semantic" else DEFAULT_DOC_WEIGHT
    if doc_weight < 0:
        raise SearchError(f"doc_weight must be 0 or more, not {doc_weight}")
    if feedback < 0 or feedback_weight < 0:
        raise SearchError(f"feedback and feedback_weight must be 0 or more, not {feedback} and {feedback_weight}")
    keyword: dict[int, float] = {}
    semantic: dict[int, float] = {}
    cosine: dict[int, float] = {}
    doc_cosine: dict[int, float] = {}
    if mode in ("keyword", "hybrid"):
        keyword = {h.chunk_id: h.score for h in index.keyword.search(parsed, candidates)}
    if mode in ("semantic", "hybrid"):
        qvec = index.encoder.encode_queries([text])[0] if query_vector is None else query_vector
        cosine = {h.chunk_id: h.score for h in index.vectors.search(qvec, candidates)}
        if mode == "hybrid":
            cosine.update(index.vectors.similarities(qvec, [c for c in keyword if c not in cosine]))
            keyword.update(index.keyword.scores_for(parsed, [c for c in cosine if c not in keyword]))
        doc_of = {c: index.chunk(c).doc for c in cosine}
        docs = sorted(set(doc_of.values()))
        by_doc = index.doc_vectors.similarities(qvec, docs)
        doc_cosine = {c: by_doc[d] for c, d in doc_of.items()}
        semantic = _mix(cosine, doc_cosine, doc_weight)
    if mode == "keyword":
        fused = keyword
    elif mode == "semantic":
        fused = semantic
    else:
        fused = fuse(keyword, semantic, k=rrf_k, alpha=alpha)
        if feedback and feedback_weight and doc_weight and fused:
            # second ranking (pseudo-relevance feedback): the query moved towards its best documents
            # scores every candidate's document again; a sentence's own cosine stays, so which
            # sentence of a document matches is still the query's choice
            best = _top_documents(fused, doc_of, feedback)
            moved = qvec + feedback_weight * index.doc_vectors.vectors(best).mean(axis=0)
            moved /= max(float(np.linalg.norm(moved)), 1e-12)
            by_doc = index.doc_vectors.similarities(moved, docs)
            semantic = _mix(cosine, {c: by_doc[d] for c, d in doc_of.items()}, doc_weight)
            fused = fuse(keyword, semantic, k=rrf_k, alpha=alpha)
    return Scored(fused, keyword, semantic, parsed, cosine, doc_cosine)


def _mix(cosine: dict[int, float], doc_cosine: dict[int, float], doc_weight: float) -> dict[int, float]:
    """A sentence's semantic score: its cosine and its document's, weighted 1 : ``doc_weight``."""
    return {c: (s + doc_weight * doc_cosine[c]) / (1.0 + doc_weight) for c, s in cosine.items()}


def _top_documents(fused: dict[int, float], doc_of: dict[int, int], n: int) -> list[int]:
    """The ``n`` documents holding the best fused chunks, best first."""
    best: list[int] = []
    for cid in sorted(fused, key=lambda c: (-fused[c], c)):
        doc = doc_of[cid]
        if doc not in best:
            best.append(doc)
            if len(best) == n:
                break
    return best


def _result(
    index: Index,
    rank: int,
    chunk_id: int,
    score: float,
    kw: float | None,
    sem: float | None,
    cos: float | None,
    parsed: ParsedQuery,
    window: int,
    mode: str,
) -> Result:
    chunk = index.chunk(chunk_id)
    doc = index.document(chunk.doc)
    span = passage_span(index.sentences(chunk.doc), chunk.position, window)
    passage = doc.text[span.start : span.end]
    spans = highlight_spans(passage, parsed.terms)
    sentence = (chunk.start - span.start, chunk.end - span.start) if sem is not None else None
    if mode == "keyword":
        sem = None
    elif mode == "semantic":
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
        score=float(score),
        keyword_score=kw,
        semantic_score=sem,
        highlights=tuple(spans),
        evidence=Evidence(matched_words(passage, spans), sentence, cos),
        chunk_id=chunk_id,
    )
