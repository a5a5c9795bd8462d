"""Sentence chunking with character offsets into the original text.

sentencex (Wikimedia's rule-based segmenter, in Rust, with abbreviation lists for some 300
languages) does the sentence boundary work and reports each sentence's character offsets; it
knows "Dr.", "z. B.", "am 15. August" and "30.000". Around it we do three things it does not:
split paragraphs first, so a photo caption or heading without final punctuation never merges with
the next sentence; keep a bracketed remark with the sentence before it; and keep a German ordinal
("das 3. Treffen") inside its sentence, as pysbd (the splitter before it, 150 times slower) did:
in languages that write ordinals with a dot, a sentence never ends on a number of one or two digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PARAGRAPH = re.compile(r"\n\s*\n")
SPLITTER = "sentencex"  # recorded in the manifest; eval indexes are keyed by it
# a document's own vector reads its opening 256 tokens, not the model's 512: 40% less time for those
# vectors, hybrid nDCG@10 within 0.001 of 512 on every collection at μ=3 (benchmarks/results/doc_vectors.md)
DOC_TOKENS = 256
# languages whose ordinals are written "3." (pysbd's rule for German, and theirs too)
ORDINAL_DOT_LANGS = {"de", "da", "no", "nb", "nn", "fi", "is", "cs", "sk", "sl", "hr", "sr", "bs", "pl", "hu", "et"}
ORDINAL_END = re.compile(r"(?:^|[\s(\[])\d{1,2}\.\s*$")
REMARK = re.compile(r"[(\[][^()\[\]]*[)\]][.!?]?")  # "(Hervorhebung hinzugefügt)" after a quote
# a "sentence" longer than this (a table or log without full stops, a file of one word) is cut at the last
# space before it: the longest real one in the shared collections is 4,439 characters (scifact), and the
# model reads only the first 512 tokens (about 2,000 characters) of a chunk anyway
MAX_SENTENCE = 5000


@dataclass(frozen=True)
class Span:
    start: int
    end: int


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
    from sentencex import get_sentence_boundaries

    ordinals = lang in ORDINAL_DOT_LANGS
    out: list[Span] = []
    for para in _paragraphs(text):
        chunk = text[para.start : para.end]
        if not chunk.strip():
            continue
        first = len(out)  # this paragraph's first sentence
        begin = 0  # where the sentence being gathered starts, in the paragraph
        ends = [b["end_index"] for b in get_sentence_boundaries(lang, chunk)]
        for end in [*ends, len(chunk)]:  # the paragraph's end: whatever the splitter left over
            if ordinals and end < len(chunk) and ORDINAL_END.search(chunk, begin, end):
                continue  # "das 3." goes on with "Treffen"
            span = _strip(text, para.start + begin, para.start + end)
            begin = end
            if span is None:
                continue
            if len(out) > first and REMARK.fullmatch(text, span.start, span.end):
                out[-1] = Span(out[-1].start, span.end)
            else:
                out.append(span)
    if all(s.end - s.start <= MAX_SENTENCE for s in out):
        return out
    return [piece for span in out for piece in _bounded(text, span)]


def _bounded(text: str, span: Span) -> list[Span]:
    """``span`` in pieces of at most MAX_SENTENCE characters, each cut at its last whitespace where
    the second half of the piece has one (else exactly at the limit)."""
    pieces: list[Span] = []
    start = span.start
    while span.end - start > MAX_SENTENCE:
        cut = start + MAX_SENTENCE
        space = next((i for i in range(cut - 1, start + MAX_SENTENCE // 2, -1) if text[i].isspace()), -1)
        piece = _strip(text, start, space if space > 0 else cut)
        if piece is not None:
            pieces.append(piece)
        start = space + 1 if space > 0 else cut
    rest = _strip(text, start, span.end)
    return [*pieces, rest] if rest is not None else pieces


def passage_span(sentences: list[Span], position: int, window: int) -> Span:
    """The span of sentence ``position`` together with ``window`` neighbours on each side."""
    lo = max(0, position - window)
    hi = min(len(sentences) - 1, position + window)
    return Span(sentences[lo].start, sentences[hi].end)
