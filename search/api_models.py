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


class SearchOut(BaseModel):
    query: str
    mode: str
    results: list[ResultOut]
    feedback_docs: list[str] | None = Field(
        default=None, description="hybrid mode: the documents whose vectors moved the query (feedback)"
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
