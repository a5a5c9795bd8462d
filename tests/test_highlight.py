from __future__ import annotations

from search.analysis import analyze
from search.highlight import highlight_spans, matched_words, merge


def terms(words: str, lang: str = "de") -> dict[str, frozenset[str]]:
    return {lang: frozenset(analyze(words, lang))}


def test_stems_and_folded_forms_highlight() -> None:
    passage = "Großbritanniens Soldaten stehen bereit; ein Soldat wartet."
    spans = highlight_spans(passage, terms("Grossbritannien Soldat"))
    assert [passage[s:e] for s, e in spans] == ["Großbritanniens", "Soldaten", "Soldat"]
    assert spans[0] == (0, 15)


def test_no_terms_no_spans() -> None:
    assert highlight_spans("Nichts passt hier.", {}) == []
    assert highlight_spans("Nichts passt hier.", terms("Ozean")) == []


def test_merge_and_words() -> None:
    assert merge([(0, 3), (2, 5), (7, 9)]) == [(0, 5), (7, 9)]
    assert matched_words("abc abc def", [(0, 3), (4, 7), (8, 11)]) == ("abc", "def")
