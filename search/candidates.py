"""A query's candidates as both sides score them: the first step of every semantic and hybrid search.

One index (:func:`gather`): the keyword side's top ``k``, the vector side's top ``k``, each scored
by the other side too (hybrid), and the document cosines of their documents.

A sharded index asks each shard once (:func:`shard_part`): its own top ``k`` of each side, the other
side's score for every one of them (a chunk lives in one shard, so the shard holding it can score
it), and its candidates' document cosines and vectors. :func:`merge_parts` then keeps the global
top ``k`` of each side and takes the other side's scores from the parts: the global top ``k`` is
within the union of the shards' top ``k``, so the result is :func:`gather`'s on one index, in one
round trip instead of five (search/serve_ray.py pays one per round).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .filters import Allowed
from .parsing import ParsedQuery
from .types import Chunk, Hit


class Sides(Protocol):
    """What :func:`gather` reads of an open index."""

    keyword: Any

    @property
    def vectors(self) -> Any: ...

    @property
    def doc_vectors(self) -> Any: ...

    def chunk(self, chunk_id: int) -> Chunk: ...

    def doc_nums(self, chunk_ids: Iterable[int]) -> list[int]: ...


@dataclass
class Candidates:
    """Both sides' scores for a query's candidate chunks, and their documents' cosines (by document
    number). ``doc_vectors``: those documents' vectors where they came with the candidates (a sharded
    index), so that feedback needs no second round; else the index is asked."""

    keyword: dict[int, float]
    cosine: dict[int, float]
    doc_cosine: dict[int, float]
    doc_vectors: dict[int, np.ndarray] | None = None
    terms: dict[str, frozenset[str]] | None = None  # a sharded index: the words matched in every shard

    def document_vectors(self, ix: Sides, docs: list[int]) -> np.ndarray:
        if self.doc_vectors is None:
            return np.asarray(ix.doc_vectors.vectors(docs))
        return np.stack([self.doc_vectors[d] for d in docs]) if docs else np.zeros((0, 0), dtype=np.float32)

    def document_similarities(self, ix: Sides, query: np.ndarray, docs: list[int]) -> dict[int, float]:
        if self.doc_vectors is None:
            return dict(ix.doc_vectors.similarities(query, docs))
        if not docs:
            return {}
        # as VectorIndex.similarities computes them: in float64
        sims = self.document_vectors(ix, docs).astype(np.float64) @ np.asarray(query, dtype=np.float64).reshape(-1)
        return {int(d): float(s) for d, s in zip(docs, sims, strict=True)}


def gather(
    ix: Sides, parsed: ParsedQuery, qvec: np.ndarray | None, k: int, allowed: Allowed | None, hybrid: bool
) -> Candidates:
    """Today's sequence on one index: each side's top ``k``, the other side's score for them, and
    the documents' cosines (``qvec`` None: keyword mode, the keyword side's top ``k`` only)."""
    keyword: dict[int, float] = {}
    if hybrid or qvec is None:
        keyword = {h.chunk_id: h.score for h in ix.keyword.search(parsed, k, allowed)}
    if qvec is None:  # keyword mode
        return Candidates(keyword, {}, {})
    among = None if allowed is None else allowed.chunks
    cosine = {h.chunk_id: h.score for h in ix.vectors.search(qvec, k, allowed=among)}
    if hybrid:
        cosine.update(ix.vectors.similarities(qvec, [c for c in keyword if c not in cosine]))
        keyword.update(ix.keyword.scores_for(parsed, [c for c in cosine if c not in keyword]))
    docs = sorted(set(ix.doc_nums(cosine)))
    return Candidates(keyword, cosine, ix.doc_vectors.similarities(qvec, docs))


def shard_part(
    ix: Sides, parsed: ParsedQuery, qvec: np.ndarray | None, k: int, allowed: Allowed | None, hybrid: bool
) -> dict[str, Any]:
    """One shard's part of :func:`gather` (its keyword side already reading global statistics), and
    the words of the shard the query matches (the router parsed it without any shard's vocabulary)."""
    part: dict[str, Any] = {"terms": ix.keyword.terms(parsed)}
    keyword: list[Hit] = ix.keyword.search(parsed, k, allowed) if hybrid or qvec is None else []
    part["keyword"] = keyword
    if qvec is None:
        return part
    among = None if allowed is None else allowed.chunks
    vector: list[Hit] = ix.vectors.search(qvec, k, allowed=among)
    kw_ids, vec_ids = [h.chunk_id for h in keyword], [h.chunk_id for h in vector]
    docs = sorted(set(ix.doc_nums([*kw_ids, *vec_ids])))
    return part | {
        "vector": vector,
        "cosine_of_keyword": ix.vectors.similarities(qvec, kw_ids) if hybrid else {},
        "keyword_of_vector": ix.keyword.scores_for(parsed, vec_ids) if hybrid else {},
        "doc_cosine": ix.doc_vectors.similarities(qvec, docs),
        "docs": docs,
        "doc_vectors": ix.doc_vectors.vectors(docs),  # one matrix: what crosses the network stays one array
    }


def merge_terms(parts: Iterable[dict[str, frozenset[str]]]) -> dict[str, frozenset[str]]:
    """The words several shards match, per language."""
    terms: dict[str, frozenset[str]] = {}
    for part in parts:
        for lang, ts in part.items():
            terms[lang] = terms.get(lang, frozenset()) | ts
    return terms


def _top(lists: list[list[Hit]], k: int) -> dict[int, float]:
    hits = [h for hl in lists for h in hl]
    hits.sort(key=lambda h: (-h.score, h.chunk_id))  # ties by id, as one index breaks them
    return {h.chunk_id: h.score for h in hits[:k]}


def merge_parts(parts: list[dict[str, Any]], k: int, hybrid: bool) -> Candidates:
    """The shards' parts as :func:`gather` on one index over all of them would give them."""
    terms = merge_terms(p["terms"] for p in parts)
    keyword = _top([p["keyword"] for p in parts], k)
    if any("vector" not in p for p in parts):  # keyword mode
        return Candidates(keyword, {}, {}, terms=terms)
    cosine = _top([p["vector"] for p in parts], k)
    doc_cosine: dict[int, float] = {}
    doc_vectors: dict[int, np.ndarray] = {}
    for p in parts:
        doc_cosine.update(p["doc_cosine"])
        doc_vectors.update(zip(p["docs"], p["doc_vectors"], strict=True))
    if hybrid:
        other_cosine = {c: s for p in parts for c, s in p["cosine_of_keyword"].items()}
        other_keyword = {c: s for p in parts for c, s in p["keyword_of_vector"].items()}
        cosine.update({c: other_cosine[c] for c in keyword if c not in cosine})
        keyword.update({c: other_keyword[c] for c in cosine if c not in keyword and c in other_keyword})
    return Candidates(keyword, cosine, doc_cosine, doc_vectors, terms)
