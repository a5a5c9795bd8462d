"""How `search query` and `search similar` print results for people: passages with highlights, pages,
scores, the "why" line of explain, and facet counts."""

from __future__ import annotations

import unicodedata
from typing import Any

from rich.markup import escape
from rich.text import Text

from .cli_common import out
from .corpus import escaped_text


def _render(result: Any) -> Text:
    text = Text(result.passage)
    ev = result.evidence
    if ev.sentence:
        text.stylize("italic on grey15", *ev.sentence)
    for start, end in result.highlights:
        text.stylize("bold black on yellow", start, end)
    return text


def _why(e: dict[str, Any]) -> str:
    """One line of a result's explain object: each side's score, rank and parts, then the fusion."""
    parts = []
    if e["keyword"]:
        k = e["keyword"]
        line = f"keyword {k['raw']:.3f} (rank {k['rank'] or '–'}, normalised {k['normalised']:.3f}"
        if k["document_bm25"] is not None:
            terms = ", ".join(f"{t.split(':', 1)[-1]} {v:.2f}" for t, v in k["terms"].items())
            line += (
                f"; document BM25 {k['document_bm25']:.2f} × {k['document_share']:g}, sentence "
                f"{k['sentence_bm25']:.2f} × {k['sentence_share']:g}; {terms}"
            )
        parts.append(line + ")")
    if e["semantic"]:
        m = e["semantic"]
        parts.append(
            f"semantic {m['raw']:.3f} (rank {m['rank']}, normalised {m['normalised']:.3f}; sentence cosine "
            f"{m['sentence_cosine']:.3f}, document {m['document_cosine']:.3f} × {m['doc_weight']:g})"
        )
    if e["fusion"]:
        f = e["fusion"]
        parts.append(f"{f['method']} α={f['alpha']:g}" + (f" k={f['rrf_k']}" if f["method"] == "rrf" else ""))
    if e["feedback"]:
        parts.append(f"feedback from {', '.join(e['feedback']['docs'])} × {e['feedback']['weight']:g}")
    return " · ".join(parts)


def print_facets(facets: dict[str, dict[str, int]]) -> None:
    for name, counts in facets.items():
        values = ", ".join(f"{v} {n}" for v, n in counts.items()) or "–"
        out.print(Text.assemble((f"{name}: ", "dim"), values), soft_wrap=True)
    out.print()


def _where(r: Any) -> str:
    """Where a passage lies: "p. 12" (or "pp. 12–13") in a document with pages, with its characters."""
    chars = f"chars {r.start}–{r.end}"
    if not r.pages:
        return chars
    first, last = r.pages
    return (f"p. {first}" if first == last else f"pp. {first}–{last}") + f", {chars}"


def shown(value: object) -> str:
    """User text (a path, an id, a query, a reason) for a line printed as markup: its brackets escaped
    ("bericht [entwurf].pdf" lost its "[entwurf]" as a style tag), its control characters and the
    undecodable bytes of a file name written as escapes, so one line stays one line."""
    text = "".join(
        c.encode("unicode_escape").decode() if unicodedata.category(c) in _BREAKS else c
        for c in escaped_text(str(value))
    )
    return escape(text)


_BREAKS = {"Cc", "Zl", "Zp"}  # control characters, line and paragraph separators


def count(n: int, word: str, plural: str = "") -> str:
    return f"{n:,} {word if n == 1 else plural or word + 's'}"


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def print_results(results: list[Any], source: str | None = None) -> None:
    """Passages as `search query` prints them; with ``source`` (similar), the sentence of it each matched."""
    for r in results:
        head = Text.assemble(
            (f"{r.rank:>2}. ", "bold"),
            (r.doc, "bold cyan"),
            f"  {_where(r)}   ",
            ("score ", "dim"),
            f"{r.score:.3f}   ",
            ("keyword ", "dim"),
            _score(r.keyword_score),
            ("   semantic ", "dim"),
            _score(r.semantic_score),
        )
        out.print(head)
        out.print(_render(r), soft_wrap=False)
        if r.evidence.terms:
            out.print(Text.assemble(("    matched: ", "dim"), ", ".join(r.evidence.terms)))
        if r.explain is not None:
            out.print(Text.assemble(("    why: ", "dim"), _why(r.explain)), soft_wrap=True)
        if source is not None and r.evidence.source:
            like = source[slice(*r.evidence.source)]
            out.print(Text.assemble(("    like: ", "dim"), like, ("   cosine ", "dim"), _score(r.evidence.similarity)))
        out.print()
