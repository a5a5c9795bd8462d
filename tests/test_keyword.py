from __future__ import annotations

from pathlib import Path

import pytest

from search.keyword import KeywordIndex, KeywordRecord, looks_like_syntax

SENTENCES = [
    ("a", "de", "Die Koalition der Willigen trifft sich mit Healey."),
    ("a", "de", "Healey spricht über britische Soldaten in der Ukraine."),
    ("b", "de", "Großbritannien schickt keine Truppen."),
    ("b", "de", "Die Willigen bilden eine Koalition ohne Healey."),
    ("c", "en", "The defence secretary talked about nuclear cooperation."),
]


@pytest.fixture
def kw(tmp_path: Path) -> KeywordIndex:
    records = [KeywordRecord(i, doc, lang, f"Titel {doc}", text) for i, (doc, lang, text) in enumerate(SENTENCES)]
    KeywordIndex.build(tmp_path / "kw", ["de", "en"], records)
    ix = KeywordIndex.open(tmp_path / "kw", ["de", "en"])
    yield ix
    ix.close()


def ids(kw: KeywordIndex, text: str, syntax: str = "auto") -> list[int]:
    return [h.chunk_id for h in kw.search(kw.parse(text, syntax), 10)]  # type: ignore[arg-type]


def test_plain_words_are_or_grouped_and_stemmed(kw: KeywordIndex) -> None:
    assert set(ids(kw, "Soldat Grossbritannien")) == {1, 2}


def test_questions_are_not_syntax(kw: KeywordIndex) -> None:
    assert not looks_like_syntax("Wer schickt Truppen nach Russland?")
    assert not looks_like_syntax("Was ist los: ein Test?")
    assert looks_like_syntax('"Koalition der Willigen" AND Healey')
    assert looks_like_syntax("title:Healey")
    assert looks_like_syntax("Heeley~")
    # abbreviations in brackets are common in questions; grouping needs an operator too
    assert not looks_like_syntax("Are tumor necrosis factor alpha (TNF-α) levels raised?")
    assert looks_like_syntax("(Healey OR Starmer) AND Ukraine")
    assert ids(kw, "Wer schickt Truppen?") == [2]


def test_phrase_and_boolean(kw: KeywordIndex) -> None:
    assert ids(kw, '"Koalition der Willigen"') == [0]
    assert ids(kw, '"Koalition der Willigen" AND Healey') == [0]
    assert set(ids(kw, "Koalition AND Healey")) == {0, 3}
    assert ids(kw, "Koalition AND NOT bilden") == [0]
    assert set(ids(kw, "Truppen OR Soldaten")) == {1, 2}


def test_field_and_fuzzy(kw: KeywordIndex) -> None:
    assert set(ids(kw, "doc:b")) == {2, 3}
    assert set(ids(kw, "title:b")) == {2, 3}
    assert set(ids(kw, "Heeley~")) == {0, 1, 3}


def test_english_sentence_found_by_english_stems(kw: KeywordIndex) -> None:
    assert ids(kw, "cooperating on nuclear matters") == [4]


def test_match_terms_exclude_negated(kw: KeywordIndex) -> None:
    parsed = kw.parse("Koalition AND NOT bilden")
    assert "bild" not in parsed.terms.get("de", set())
    assert "koalition" in parsed.terms["de"]


def test_scores_for_given_chunks(kw: KeywordIndex) -> None:
    parsed = kw.parse("Healey")
    scores = kw.scores_for(parsed, [0, 2, 3])
    assert set(scores) == {0, 3}
    assert all(s > 0 for s in scores.values())


def test_stopword_only_query_matches_nothing(kw: KeywordIndex) -> None:
    parsed = kw.parse("der die das and the")
    assert parsed.query is None
    assert kw.search(parsed, 10) == []
