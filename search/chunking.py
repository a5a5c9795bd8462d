"""Sentence chunking with character offsets into the original text.

pysbd does the sentence boundary work (it knows German abbreviations, ordinals such as
"am 15. August" and numbers such as "30.000"). Around it we do two things it does not: split
paragraphs first, so a photo caption or heading without final punctuation never merges with the
next sentence, and map every sentence back to exact offsets in the original text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

PARAGRAPH = re.compile(r"\n\s*\n")
SPLITTER_LANGS = {"de", "en", "fr", "es", "it", "nl", "da", "ru", "pl"}


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@lru_cache(maxsize=8)
def _segmenter(lang: str) -> Any:
    import pysbd

    return pysbd.Segmenter(language=lang if lang in SPLITTER_LANGS else "en", clean=False)


def _paragraphs(text: str) -> list[Span]:
    spans = []
    pos = 0
    for m in PARAGRAPH.finditer(text):
        spans.append(Span(pos, m.start()))
        pos = m.end()
    spans.append(Span(pos, len(text)))
    return spans


def _strip(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


def split_sentences(text: str, lang: str = "de") -> list[Span]:
    """Sentence spans of ``text``: ``text[s.start:s.end]`` is one sentence, whitespace trimmed."""
    seg = _segmenter(lang)
    out: list[Span] = []
    for para in _paragraphs(text):
        chunk = text[para.start : para.end]
        if not chunk.strip():
            continue
        cursor = 0
        for sent in seg.segment(chunk):
            piece = sent.strip()
            if not piece:
                continue
            found = chunk.find(piece, cursor)
            if found < 0:  # the splitter altered the text; fall back to the rest of the paragraph
                found = cursor
                piece = chunk[cursor:]
            span = _strip(text, para.start + found, para.start + found + len(piece))
            if span:
                out.append(span)
            cursor = found + len(piece)
        tail = _strip(text, para.start + cursor, para.end)
        if tail:  # whatever the splitter dropped stays searchable
            out.append(tail)
    return out


def passage_span(sentences: list[Span], position: int, window: int) -> Span:
    """The span of sentence ``position`` together with ``window`` neighbours on each side."""
    lo = max(0, position - window)
    hi = min(len(sentences) - 1, position + window)
    return Span(sentences[lo].start, sentences[hi].end)
