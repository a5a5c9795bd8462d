"""Evidence: where the query's terms occur in a passage, found by the same analyzer as the index.

Highlighting needs no index: any text can be marked for any analysed term set, so a passage the
vector index found still shows the words it shares with the query.
"""

from __future__ import annotations

from collections.abc import Mapping

from .analysis import part_spans, term_spans

Spans = list[tuple[int, int]]


def highlight_spans(text: str, terms: Mapping[str, frozenset[str]], lang: str | None = None) -> Spans:
    """Character spans of ``text`` whose analysed form (per language) is one of ``terms``.

    A key ``lang+`` holds compound parts: "schiff" marks the letters "schiff" inside "Donaudampfschiff"
    (the part's own offsets), and :func:`matched_words` then lists "schiff" as a matched word.

    ``lang``, the language of the passage's document, reads only that language's terms: the keyword
    side indexed the passage in its own language alone, so another language's analysis of the same
    query words (an English word stemmed and folded as German) would mark words that never matched,
    and each language costs a pass over the passage (highlighting was over half a keyword query's
    time at 100,000 sentences in three languages)."""
    spans: set[tuple[int, int]] = set()
    for key, wanted in terms.items():
        lang_of = key.rstrip("+")
        if not wanted or (lang and lang_of != lang):
            continue
        found = part_spans(text, lang_of) if key.endswith("+") else term_spans(text, lang_of)
        for term, start, end in found:
            if term in wanted:
                spans.add((start, end))
    return merge(sorted(spans))


def merge(spans: Spans) -> Spans:
    """Overlapping or touching spans joined; input sorted by start."""
    out: Spans = []
    for start, end in spans:
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def matched_words(text: str, spans: Spans) -> tuple[str, ...]:
    """The distinct surface words under ``spans``, in order of first appearance."""
    return tuple(dict.fromkeys(text[s:e] for s, e in spans))
