"""Small frozen records that travel between the modules."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One document of the corpus: its id (path or ``_id``), title and full text.

    ``meta`` holds what its reader knew (search/readers/): ``path``, ``type``, ``author``, ``date``
    (ISO 8601), ``size``, ``pages``, and for e-mail ``from`` and ``to``; a JSONL line's own ``meta``
    object too. ``pages`` is the offset in ``text`` where each page starts (PDF; empty otherwise).
    """

    id: str
    title: str
    text: str
    lang: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    pages: tuple[int, ...] = ()

    def page_of(self, offset: int) -> int | None:
        """The 1-based page where ``offset`` lies, or None for a document without pages."""
        if not self.pages:
            return None
        return max(1, bisect.bisect_right(self.pages, offset))

    def metadata(self) -> dict[str, Any]:
        """``meta`` as results show it: with the title and the detected language."""
        return {**self.meta, "title": self.title, "lang": self.lang}


@dataclass(frozen=True)
class Chunk:
    """One sentence of a document, located by character offsets into ``Document.text``."""

    id: int
    doc: int  # position of the document in the store
    start: int
    end: int
    position: int  # sentence number inside its document


@dataclass(frozen=True)
class Check:
    """One verified property of an index: its name, whether it holds, and the detail that proves or refutes it."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Hit:
    """A chunk found by one side of the index with that side's raw score."""

    chunk_id: int
    score: float


@dataclass(frozen=True)
class Evidence:
    """Why a passage matched.

    ``terms`` are the query terms (as written in the passage) that matched by the analyzer;
    ``sentence`` locates, inside the passage, the sentence that carried the semantic match,
    with its cosine similarity to the query. For "more like this" (``Searcher.similar``) the
    query is a document: ``source`` locates, in that document's text, the sentence closest to
    ``sentence``, and ``similarity`` is the cosine of the two.
    """

    terms: tuple[str, ...] = ()
    sentence: tuple[int, int] | None = None
    similarity: float | None = None
    source: tuple[int, int] | None = None  # "more like this": the matching sentence in the source document


@dataclass(frozen=True)
class Result:
    """One ranked passage: the matched sentence with its neighbours and the evidence."""

    rank: int
    doc: str
    title: str
    passage: str
    start: int  # passage start in the document text
    end: int
    score: float
    keyword_score: float | None
    semantic_score: float | None
    highlights: tuple[tuple[int, int], ...] = ()
    evidence: Evidence = field(default_factory=Evidence)
    chunk_id: int = -1
    explain: dict[str, Any] | None = None  # with SearchParams.explain: how the score came about
    meta: dict[str, Any] = field(default_factory=dict)  # the document's (Document.metadata)
    pages: tuple[int, int] | None = None  # first and last page of the passage (documents with pages)

    def to_json(self) -> dict[str, object]:
        """The JSON shape promised to users (``search query --json``)."""
        ev = self.evidence
        return {
            "rank": self.rank,
            "doc": self.doc,
            "title": self.title,
            "passage": self.passage,
            "start": self.start,
            "end": self.end,
            "score": self.score,
            "scores": {"keyword": self.keyword_score, "semantic": self.semantic_score},
            "highlights": [list(span) for span in self.highlights],
            "evidence": {
                "terms": list(ev.terms),
                "sentence": list(ev.sentence) if ev.sentence else None,
                "similarity": ev.similarity,
                **({"source": list(ev.source)} if ev.source else {}),
            },
            "meta": self.meta,
            **({"page": self.pages[0], "pages": list(self.pages)} if self.pages else {}),
            **({"explain": self.explain} if self.explain is not None else {}),
        }


def results_payload(
    query: str,
    mode: str,
    results: list[Result],
    feedback_docs: tuple[str, ...] | None = None,
    facets: dict[str, dict[str, int]] | None = None,
    shards: tuple[int, int] | None = None,
) -> dict[str, object]:
    """``{"query", "mode", "results"}``: what ``search query --json`` prints and ``/api/search`` returns;
    in hybrid mode also ``feedback_docs``, the documents whose vectors moved the query (empty without feedback);
    on a sharded index ``shards``: ``{"answered": n, "total": N}``."""
    # a lone surrogate (undecodable bytes in argv) cannot be written as UTF-8: echo U+FFFD instead
    echo = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in query)
    payload: dict[str, object] = {"query": echo, "mode": mode, "results": [r.to_json() for r in results]}
    if mode == "hybrid":
        payload["feedback_docs"] = list(feedback_docs or ())
    if facets is not None:
        payload["facets"] = facets
    if shards is not None:  # a sharded index: how many shards answered, of how many
        payload["shards"] = {"answered": shards[0], "total": shards[1]}
    return payload
