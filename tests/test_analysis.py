from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from search.analysis import analyze, detect_language, fold, language_analyzer, term_spans


def test_german_stems_meet_inflected_forms() -> None:
    assert analyze("Soldat", "de") == analyze("Soldaten", "de")
    assert analyze("britische", "de") == analyze("britischen", "de")
    assert analyze("Truppe", "de") == analyze("Truppen", "de")


def test_sharp_s_and_umlaut_folding() -> None:
    assert analyze("Großbritannien", "de") == analyze("Grossbritannien", "de")
    assert analyze("Großbritannien", "en") == analyze("Grossbritannien", "en")
    assert fold("Übergröße") == "Ubergrosse"
    assert analyze("Müller", "de") == analyze("Muller", "de")


def test_stopwords_removed_and_english_stemming() -> None:
    assert analyze("der die das und", "de") == []
    assert analyze("the soldiers are sent", "en") == ["soldier", "sent"]
    assert analyze("cooperation cooperating", "en") == ["cooper", "cooper"]


def test_numbers_stay_whole() -> None:
    assert "30.000" in analyze("30.000 Soldaten", "de")


def test_term_spans_are_offsets_into_the_text() -> None:
    text = "Großbritanniens Soldaten"
    spans = list(term_spans(text, "de"))
    assert [(t, text[s:e]) for t, s, e in spans] == [
        (analyze("Großbritanniens", "de")[0], "Großbritanniens"),
        ("soldat", "Soldaten"),
    ]


def test_language_detection() -> None:
    assert detect_language("Der britische Verteidigungsminister sprach über die Truppen.") == "de"
    assert detect_language("The defence secretary talked about sending troops.") == "en"


WORDY = st.text(
    alphabet=st.sampled_from(list("aAäÄöüßẞeinsTruppenSoldatGroß .,;:-*_'’„“\"0123456789\n\tİıﬁ")) | st.characters(),
    max_size=200,
)


@settings(max_examples=400, deadline=None)
@given(text=WORDY, lang=st.sampled_from(["de", "en", "fr"]))
def test_term_spans_agree_with_the_whoosh_analyzer(text: str, lang: str) -> None:
    """The fast path (highlighting, BM25 matrices, queries) yields exactly the terms and offsets
    whoosh's index analyzer does."""
    expected = [(t.text, t.startchar, t.endchar) for t in language_analyzer(lang)(text, chars=True)]
    assert list(term_spans(text, lang)) == expected
    assert analyze(text, lang) == [t for t, _, _ in expected]
