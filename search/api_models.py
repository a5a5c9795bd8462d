"""The JSON shapes of ``search serve``'s API, as pydantic models for its OpenAPI schema.

Answers are sent as plain JSON (search/serve.py); the tests validate real answers against these.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["ERRORS", "DocumentOut", "ErrorOut", "HealthOut", "PassageOut", "ResultOut", "SearchOut"]


class ScoresOut(BaseModel):
    keyword: float | None = Field(description="BM25 score (null in semantic mode)")
    semantic: float | None = Field(description="cosine similarity (null in keyword mode)")


class EvidenceOut(BaseModel):
    terms: list[str] = Field(description="query terms as written in the passage")
    sentence: list[int] | None = Field(description="[start, end] of the sentence that carried the semantic match")
    similarity: float | None
    source: list[int] | None = Field(
        default=None, description="similar documents: [start, end] of the matching sentence in the source document"
    )


class KeywordExplainOut(BaseModel):
    raw: float = Field(description="document_share · document_bm25 + sentence_share · sentence_bm25")
    normalised: float = Field(description="min-max over the keyword candidates, or 1/(rrf_k + rank)")
    rank: int | None = Field(description="place among the keyword side's candidates (null: not scored there)")
    document_bm25: float | None = Field(description="the document's BM25 (null for query syntax)")
    sentence_bm25: float | None
    document_share: float | None = Field(description="the document's share (null for query syntax)")
    sentence_share: float | None = Field(
        description="the sentence's share: the index's, or its long-query share past its long_words words"
    )
    terms: dict[str, float] = Field(description='each "lang:term" part of raw')
    scoring: str = Field(description='"bm25" (plain words) or "bm25 syntax" (query syntax, one number: no parts)')


class SemanticExplainOut(BaseModel):
    raw: float = Field(description="(sentence_cosine + doc_weight · document_cosine) / (1 + doc_weight)")
    normalised: float
    rank: int
    sentence_cosine: float
    document_cosine: float = Field(description="to the query after feedback moved it")
    doc_weight: float


class FusionExplainOut(BaseModel):
    method: str
    alpha: float
    rrf_k: int
    weights: list[float] = Field(description="[keyword, semantic]: score = scale · Σ weight · normalised")
    scale: float


class FeedbackExplainOut(BaseModel):
    docs: list[str]
    weight: float


class ExplainOut(BaseModel):
    keyword: KeywordExplainOut | None
    semantic: SemanticExplainOut | None
    fusion: FusionExplainOut | None
    feedback: FeedbackExplainOut | None


class ResultOut(BaseModel):
    rank: int
    doc: str
    title: str
    passage: str = Field(description="the matched sentence with its neighbours")
    start: int = Field(description="passage start in the document's text (code points)")
    end: int
    score: float
    scores: ScoresOut
    highlights: list[list[int]] = Field(description="[start, end] of each matched word, inside passage")
    evidence: EvidenceOut
    explain: ExplainOut | None = Field(default=None, description="with explain=true: how the score came about")
    meta: dict[str, Any] = Field(
        default_factory=dict,
        description="the document's metadata: path, type, title, lang, size, date, and where known author, "
        "pages, from, to, or a JSONL line's own meta",
    )
    page: int | None = Field(default=None, description="documents with pages (PDF): where the passage starts, 1-based")
    pages: list[int] | None = Field(default=None, description="first and last page of the passage")


class SearchOut(BaseModel):
    query: str
    mode: str
    results: list[ResultOut]
    feedback_docs: list[str] | None = Field(
        default=None, description="hybrid mode: the documents whose vectors moved the query (feedback)"
    )
    facets: dict[str, dict[str, int]] | None = Field(
        default=None, description="with facets=…: per field, the number of matching documents per value"
    )
    shards: dict[str, int] | None = Field(
        default=None, description='a sharded index: {"answered": n, "total": N}, the shards this answer covers'
    )


class PassageOut(BaseModel):
    rank: int
    start: int = Field(description="offsets here are into the document's text")
    end: int
    score: float
    scores: ScoresOut
    highlights: list[list[int]]
    evidence: EvidenceOut


class DocumentOut(BaseModel):
    id: str
    title: str
    lang: str
    text: str
    meta: dict[str, Any] = Field(default_factory=dict)
    page_starts: list[int] = Field(
        default_factory=list, description="documents with pages: the offset in text where each page starts"
    )
    query: str | None
    mode: str
    passages: list[PassageOut]


class HealthOut(BaseModel):
    status: str
    generation: str
    documents: int
    sentences: int
    model: str
    model_loaded: bool


class ErrorOut(BaseModel):
    error: str = Field(description="one line saying what was wrong")


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "a query the engine refuses"},
    422: {"model": ErrorOut, "description": "a missing or invalid parameter (pydantic's `detail` beside)"},
}


# the API's filter and facet parameters, beside the generated SearchParams ones (search/filters.py)
FILTER_PARAMS: list[tuple[str, Any, str]] = [
    ("where", list[str] | None, "FIELD=VALUE, repeatable: one field's values OR-ed, fields AND-ed (lang, type, "
     "title, year, folder, any meta key)"),
    ("path", list[str] | None, "a glob over the document's path, e.g. berichte/2024/** (repeatable, OR-ed)"),
    ("after", str | None, "documents dated on or after this ISO 8601 date"),
    ("before", str | None, "documents dated before this ISO 8601 date"),
    ("facets", str | None, "comma-separated fields (e.g. type,lang,year,folder) to count matching documents by"),
]  # fmt: skip
