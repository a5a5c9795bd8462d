from __future__ import annotations

from search.chunking import MAX_SENTENCE, Span, passage_span, split_sentences

from .conftest import EXAMPLE


def sentences(text: str, lang: str = "de") -> list[str]:
    return [text[s.start : s.end] for s in split_sentences(text, lang)]


def test_offsets_point_into_the_original_text() -> None:
    text = "  Erster Satz.  Zweiter Satz!\n\nDritter Satz?  "
    spans = split_sentences(text)
    assert [text[s.start : s.end] for s in spans] == ["Erster Satz.", "Zweiter Satz!", "Dritter Satz?"]
    assert spans[0] == Span(2, 14)


def test_german_abbreviations_dates_and_numbers_do_not_split() -> None:
    text = (
        "Am 15. August sagte Dr. Müller, z. B. seien 30.000 Soldaten bereit. "
        "Nr. 5 kam am 1. Januar an. Das 3. Treffen folgte."
    )
    assert sentences(text) == [
        "Am 15. August sagte Dr. Müller, z. B. seien 30.000 Soldaten bereit.",
        "Nr. 5 kam am 1. Januar an.",
        "Das 3. Treffen folgte.",
    ]


def test_a_year_ends_a_sentence_where_an_ordinal_does_not() -> None:
    text = "Das geschah im Jahr 2023. Danach kam das 3. Treffen. Es war am 1. Mai."
    assert sentences(text) == ["Das geschah im Jahr 2023.", "Danach kam das 3. Treffen.", "Es war am 1. Mai."]
    # English writes no ordinal dot: a number may end a sentence
    assert sentences("He was 3. Then he left.", "en") == ["He was 3.", "Then he left."]


def test_a_bracketed_remark_stays_with_its_sentence() -> None:
    text = "Sie sei „bereit, zu helfen.“ (Hervorhebung hinzugefügt)\n\nDanach ging er."
    assert sentences(text) == ["Sie sei „bereit, zu helfen.“ (Hervorhebung hinzugefügt)", "Danach ging er."]


def test_german_quotes_keep_the_quoted_speech_together() -> None:
    text = "Er fügte hinzu: „Die Pläne sind abgeschlossen. Wir sind bereit.“ Danach ging er."
    assert sentences(text) == ["Er fügte hinzu: „Die Pläne sind abgeschlossen. Wir sind bereit.“", "Danach ging er."]


def test_bracketed_photo_caption_is_its_own_chunk_and_not_merged() -> None:
    text = (
        "Der Minister bei einer Pressekonferenz im April 2025 [AP Photo/Geert Vanden Wijngaert]\n\n"
        "Healey sagte, es handele sich um eine Gruppe."
    )
    assert sentences(text) == [
        "Der Minister bei einer Pressekonferenz im April 2025 [AP Photo/Geert Vanden Wijngaert]",
        "Healey sagte, es handele sich um eine Gruppe.",
    ]


def test_english_abbreviations() -> None:
    text = "Mr. Smith met Dr. Jones at 5 p.m. on Jan. 3. They talked about the U.S. economy."
    assert sentences(text, "en") == [
        "Mr. Smith met Dr. Jones at 5 p.m. on Jan. 3.",
        "They talked about the U.S. economy.",
    ]


def test_example_corpus_hard_cases() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    sents = sentences(text)
    assert len(sents) == 39
    assert any(s.startswith("Am Morgen des Gipfeltreffens") and "am 15. August in Alaska" in s for s in sents)
    assert any("30.000 Soldaten zu stellen" in s for s in sents)
    assert all(not s.startswith(("August", "000", "B.")) for s in sents)
    assert "David North" in sents  # the book advert's byline stays apart from its neighbours


def test_passage_window() -> None:
    spans = [Span(0, 5), Span(6, 10), Span(11, 20), Span(21, 30)]
    assert passage_span(spans, 0, 1) == Span(0, 10)
    assert passage_span(spans, 2, 1) == Span(6, 30)
    assert passage_span(spans, 3, 0) == Span(21, 30)
    assert passage_span(spans, 1, 5) == Span(0, 30)


def test_an_overlong_sentence_is_cut_at_spaces_into_bounded_chunks() -> None:
    # a table or log without full stops, or a file of one word repeated, must not become one chunk of
    # megabytes (the passage of every result, and of its JSON): cut at the last space before the limit
    words = " ".join(f"Wort{i}" for i in range(2000))
    text = f"Ein Satz. {words}. Ende."
    spans = split_sentences(text)
    assert text[spans[0].start : spans[0].end] == "Ein Satz." and text[spans[-1].start : spans[-1].end] == "Ende."
    middle = spans[1:-1]
    assert len(middle) >= 3 and all(s.end - s.start <= MAX_SENTENCE for s in middle)
    assert " ".join(text[s.start : s.end] for s in middle) == words + "."  # nothing lost, no word cut
    table = "\t".join(f"Zelle{i}" for i in range(2000))  # a tab-separated table: tabs are spaces too
    cells = [table[s.start : s.end] for s in split_sentences(table)]
    assert len(cells) >= 3 and "\t".join(cells) == table
    solid = "x" * (2 * MAX_SENTENCE + 7)  # no space at all: cut at the limit
    assert [(s.start, s.end) for s in split_sentences(solid)] == [
        (0, MAX_SENTENCE), (MAX_SENTENCE, 2 * MAX_SENTENCE), (2 * MAX_SENTENCE, len(solid))
    ]  # fmt: skip
