from __future__ import annotations

import pickle

from hypothesis import example, given, settings
from hypothesis import strategies as st

from search.analysis import analyze, detect_language, fold, language_analyzer, term_spans

from .analysis_chain import filter_chain


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
@example(text="\u0301", lang="en").via("a token of combining marks alone")
def test_term_spans_agree_with_the_whoosh_analyzer(text: str, lang: str) -> None:
    """The fast path (highlighting, BM25 matrices, queries) yields exactly the terms and offsets
    whoosh's index analyzer does."""
    expected = [(t.text, t.startchar, t.endchar) for t in filter_chain(lang)(text, chars=True)]
    assert list(term_spans(text, lang)) == expected
    assert analyze(text, lang) == [t for t, _, _ in expected]


def _tokens(analyzer: object, text: str, **options: object) -> list[tuple[object, ...]]:
    fields = ("text", "pos", "startchar", "endchar", "stopped")  # those a token carries with these options
    return [tuple(getattr(t, f, None) for f in fields) for t in analyzer(text, **options)]  # type: ignore[operator]


# stopwords between kept words (what renumbers positions), and a token of combining marks alone (a word folded to "")
WORDS = st.lists(
    st.sampled_from(["der", "die", "und", "the", "and", "le", "Hund", "Lehrer*innen", "Soldaten", "Straße", "\u0301"]),
    max_size=12,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(text=WORDY | WORDS, lang=st.sampled_from(["de", "en", "fr"]))
@example(text=" \u0301 x", lang="de").via("a token of combining marks alone")
@example(text="der Hund und die Katze", lang="de").via("stopwords between words")
def test_the_one_step_analyzer_is_the_filter_chain(text: str, lang: str) -> None:
    """What whoosh indexes, parses and highlights with (one filter) equals the chain of four it replaced:
    terms, positions renumbered over the words kept, offsets, and stopwords kept and marked when a
    parser asks for them (removestops=False)."""
    fused, chain = language_analyzer(lang), filter_chain(lang)
    for options in ({}, {"positions": True, "chars": True}, {"positions": True, "removestops": False}):
        assert _tokens(fused, text, **options) == _tokens(chain, text, **options)


def test_the_analyzer_survives_pickling() -> None:
    """whoosh stores a schema, analyzers included, with pickle (format 7 indexes did; the reference index of
    tests/test_syntax.py is one)."""
    text = "Die Lehrer*innen der Koalition"
    again = pickle.loads(pickle.dumps(language_analyzer("de")))
    assert _tokens(again, text, positions=True) == _tokens(language_analyzer("de"), text, positions=True)
    assert _tokens(again, text, positions=True) == _tokens(filter_chain("de"), text, positions=True)
    assert [t[0] for t in _tokens(again, text)] == analyze("Lehrer Koalition", "de")  # two stopwords dropped
