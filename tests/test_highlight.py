from __future__ import annotations

from pathlib import Path

from search import build_index
from search.analysis import analyze
from search.highlight import highlight_spans, matched_words, merge
from search.index import Index

from .conftest import FakeEncoder


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


def test_only_the_passages_own_language_marks() -> None:
    # "banks" is "bank" in the German analysis too: with the passage's language given, the German
    # terms of a query are not looked for in an English passage (its keyword side never read them)
    passage = "The banks of the river flood."
    query = {"de": frozenset(analyze("Banken", "de")), "en": frozenset(analyze("Banken", "en"))}
    assert [passage[s:e] for s, e in highlight_spans(passage, query)] == ["banks"]
    assert highlight_spans(passage, query, "en") == []
    assert [passage[s:e] for s, e in highlight_spans(passage, query | {"en": frozenset({"bank"})}, "en")] == ["banks"]


def test_a_result_is_marked_in_its_documents_language(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "de.txt").write_text("Die Banken der Stadt schließen am Abend früh.", encoding="utf-8")
    (corpus / "en.txt").write_text("The banks of the river flood every spring season.", encoding="utf-8")
    encoder = FakeEncoder(["zzz"])  # every text the same vector: semantic mode returns both
    build_index(corpus, tmp_path / "idx", encoder=encoder)
    with Index.open(tmp_path / "idx", encoder=encoder) as ix:
        marked = {r.doc: (r.meta["lang"], r.evidence.terms) for r in ix.search("Banken", mode="semantic", window=0)}
    assert marked == {"de.txt": ("de", ("Banken",)), "en.txt": ("en", ())}
