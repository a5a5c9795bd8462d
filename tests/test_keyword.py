"""The keyword side as users run it: a real index (build_index), queried in keyword and hybrid mode.

Plain words and questions are scored by the numpy BM25 of search/bm25.py (a sentence scores its
document's BM25 plus half its own); query syntax is run over the same matrices (tests/test_syntax.py
holds it to whoosh). The scores here are checked against a BM25 computed in this file from whoosh's
analyser, so a scorer that returns nothing,
or other numbers, fails.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest

from search import Index, build_index
from search.analysis import language_analyzer
from search.errors import QueryError
from search.parsing import looks_like_syntax
from search.types import Result

from .conftest import FakeEncoder

S0 = "Die Koalition der Willigen trifft sich mit Healey."
S1 = "Healey spricht über britische Soldaten in der Ukraine."
S2 = "Großbritannien schickt keine Truppen."
S3 = "Die Willigen bilden eine Koalition ohne Healey."
S4 = "The defence secretary talked about nuclear cooperation."
DOCS = {  # id -> (language the detector must find, title, sentences)
    "a": ("de", "Die Koalition", [S0, S1]),
    "b": ("de", "Titel b", [S2, S3]),
    "c": ("en", "Title c", [S4]),
}
SENTENCES = [S0, S1, S2, S3, S4]
# "ohne" is a German stopword: the keyword side never sees it, the fake encoder does
VOCAB = ["ohne", "truppen", "soldaten"]
K1, B = 1.2, 0.75


@pytest.fixture(scope="module")
def ix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    corpus = tmp_path_factory.mktemp("kwcorpus") / "docs.jsonl"
    corpus.write_text(
        "".join(json.dumps({"_id": d, "title": t, "text": " ".join(s)}) + "\n" for d, (_, t, s) in DOCS.items()),
        encoding="utf-8",
    )
    folder = tmp_path_factory.mktemp("kwindex") / "idx"
    build_index(corpus, folder, encoder=FakeEncoder(VOCAB))
    with Index.open(folder, encoder=FakeEncoder(VOCAB)) as opened:
        # the premises of every expectation below: languages detected, one chunk per sentence
        assert {d.id: d.lang for d in opened.documents} == {d: lang for d, (lang, _, _) in DOCS.items()}
        assert opened.manifest.counts.chunks == len(SENTENCES)
        yield opened


def keyword(ix: Index, text: str, **options: object) -> list[Result]:
    """Keyword-mode results, one sentence per passage."""
    return ix.search(text, mode="keyword", k=10, window=0, dedupe=False, **options)  # type: ignore[arg-type]


def passages(ix: Index, text: str, **options: object) -> list[str]:
    return [r.passage for r in keyword(ix, text, **options)]


def _terms(text: str, lang: str) -> list[str]:
    """whoosh's analyser (not the fast path the index uses), keyed by language like the index."""
    return [f"{lang}:{t.text}" for t in language_analyzer(lang)(text)]


def _bm25(rows: Sequence[list[str]], query: set[str]) -> list[float]:
    """Lucene-idf BM25 of each row, written out from the formula."""
    n = len(rows)
    avgdl = sum(len(r) for r in rows) / n
    df = {t: sum(t in r for r in rows) for t in query}
    out = []
    for row in rows:
        tf = Counter(row)
        score = 0.0
        for t in query:
            if tf[t]:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                score += idf * tf[t] * (K1 + 1) / (tf[t] + K1 * (1 - B + B * len(row) / avgdl))
        out.append(score)
    return out


def expected_scores(word: str, titles: bool = True) -> dict[str, float]:
    """sentence -> its document's BM25 (title and text) + half its own, for a one-word query."""
    langs = sorted({lang for lang, _, _ in DOCS.values()})
    query = {t for lang in langs for t in _terms(word, lang)}
    sentence_rows = [(d, s, _terms(s, DOCS[d][0])) for d, (_, _, ss) in DOCS.items() for s in ss]
    doc_rows = {
        d: (_terms(t, lang) if titles else []) + [x for dd, _, r in sentence_rows if dd == d for x in r]
        for d, (lang, t, _) in DOCS.items()
    }
    sent_score = _bm25([r for _, _, r in sentence_rows], query)
    doc_score = dict(zip(doc_rows, _bm25(list(doc_rows.values()), query), strict=True))
    out = {s: doc_score[d] + 0.5 * sc for (d, s, _), sc in zip(sentence_rows, sent_score, strict=True) if sc > 0}
    held = {d for (d, s, _) in sentence_rows if s in out}
    # a document whose title alone holds the word: its first sentence, with the document's score
    out.update({DOCS[d][2][0]: sc for d, sc in doc_score.items() if sc > 0 and d not in held})
    return out


def test_plain_word_scores_are_document_plus_half_sentence_bm25(ix: Index) -> None:
    expected = expected_scores("Healey")
    assert set(expected) == {S0, S1, S3}
    results = keyword(ix, "Healey")
    got = {r.passage: r.keyword_score for r in results}
    assert got == pytest.approx(expected, rel=1e-5)
    assert [r.score for r in results] == [r.keyword_score for r in results]
    # Healey twice in document a: both of a's sentences rank above b's, although S3 is as short as S0
    # and matches as well on its own (sentence-level BM25, whoosh's scoring, would tie S0 and S3)
    assert [r.passage for r in results] == [S0, S1, S3]


def test_title_words_count_for_the_document(ix: Index) -> None:
    # "Titel" is in a title only, in no sentence: the document is found through its first sentence,
    # which scores the document's BM25 (it holds no query word itself, so it adds nothing)
    found = keyword(ix, "Titel")
    assert [(r.doc, r.passage) for r in found] == [("b", S2)]
    assert expected_scores("Titel")[S2] > 0
    assert found[0].keyword_score == pytest.approx(expected_scores("Titel")[S2], rel=1e-5)
    assert not found[0].evidence.terms and not found[0].highlights  # no word of the passage is marked
    # S0 and S3 both hold "Koalition" once and are as long; document b is shorter, so without
    # titles S3 would lead; document a's title "Die Koalition" puts S0 first
    without_titles = expected_scores("Koalition", titles=False)
    assert sorted(without_titles, key=without_titles.__getitem__, reverse=True) == [S3, S0]
    expected = expected_scores("Koalition")
    results = keyword(ix, "Koalition")
    assert {r.passage: r.keyword_score for r in results} == pytest.approx(expected, rel=1e-5)
    assert [r.passage for r in results] == [S0, S3]


def test_plain_words_are_or_grouped_and_stemmed(ix: Index) -> None:
    # "Soldat" finds "Soldaten" (stem), "Grossbritannien" finds "Großbritannien" (folding): OR, not AND
    assert set(passages(ix, "Soldat Grossbritannien")) == {S1, S2}
    both = keyword(ix, "Healey Soldaten")
    assert both[0].passage == S1  # the one sentence holding both words, in the document holding Healey twice
    scores = [r.keyword_score or 0.0 for r in both]
    assert scores[0] > max(scores[1:])


def test_questions_are_not_syntax(ix: Index) -> None:
    assert not looks_like_syntax("Wer schickt Truppen nach Russland?")
    assert not looks_like_syntax("Was ist los: ein Test?")
    assert looks_like_syntax('"Koalition der Willigen" AND Healey')
    assert looks_like_syntax("title:Healey")
    assert looks_like_syntax("Heeley~")
    # abbreviations in brackets are common in questions; grouping needs an operator too
    assert not looks_like_syntax("Are tumor necrosis factor alpha (TNF-α) levels raised?")
    assert looks_like_syntax("(Healey OR Starmer) AND Ukraine")
    assert looks_like_syntax('"Koalition der Willigen" Healey')  # a phrase in a short query
    assert looks_like_syntax("Koalit*") and looks_like_syntax("Wer bildet die Koalit*?")  # a prefix
    assert not looks_like_syntax("Lehrer*innen an Schulen")  # a gender star inside a word
    # a pasted paragraph that quotes someone is prose; an operator still makes it syntax
    prose = 'Der Premierminister sagte vor dem Parlament, man werde "keine Truppen ohne Mandat" schicken, ' + (
        "und die Opposition verlangte am selben Tag eine Abstimmung über den Einsatz der Soldaten im Osten."
    )
    assert not looks_like_syntax(prose)
    assert looks_like_syntax(prose + " Healey AND Starmer")
    assert passages(ix, "Wer schickt Truppen?") == [S2]
    assert passages(ix, "Was ist los: Truppen?") == [S2]  # ":" and "?" mean nothing in a question


def test_phrase_and_boolean(ix: Index) -> None:
    assert passages(ix, '"Koalition der Willigen"') == [S0]
    assert passages(ix, '"Koalition der Willigen" AND Healey') == [S0]
    assert set(passages(ix, "Koalition AND Healey")) == {S0, S3}
    assert passages(ix, "Koalition AND NOT bilden") == [S0]
    # without AND, NOT still excludes (Lucene's reading), instead of adding every passage without the word
    assert passages(ix, "Koalition NOT bilden") == [S0]
    assert set(passages(ix, "Koalition Truppen NOT bilden")) == {S0, S2}
    assert set(passages(ix, "Truppen OR Soldaten")) == {S1, S2}


def test_prefix_query_without_asking_for_syntax(ix: Index) -> None:
    assert set(passages(ix, "Koalit*")) == {S0, S3}  # --syntax auto: a trailing star is a prefix
    assert passages(ix, "Koalit*", syntax="off") == []  # plain words: "koalit" is no word of the index


def test_field_and_fuzzy(ix: Index) -> None:
    assert set(passages(ix, "doc:b")) == {S2, S3}
    assert set(passages(ix, "title:b")) == {S2}  # a title is stored with its document's first sentence
    assert set(passages(ix, "Heeley~")) == {S0, S1, S3}
    assert set(passages(ix, "Heeley~2")) == {S0, S1, S3}
    with pytest.raises(QueryError, match="at most 2 edits, as in Lucene, not 'Heeley~3'"):
        passages(ix, "Truppen Heeley~3")  # each edit more walks the vocabulary longer: w~9 took seconds
    with pytest.raises(QueryError, match="not 'Heeley~10'"):
        passages(ix, "Heeley~10")  # whoosh would read one edit and a word "0"
    passages(ix, " ".join(f"Heeley{i}~" for i in range(10)))  # ten are allowed
    with pytest.raises(QueryError, match="at most 10 fuzzy terms"):
        passages(ix, " ".join(f"Heeley{i}~" for i in range(11)))
    for refused in ("0~3:AND", "Heeley~3", " ".join(f"Heeley{i}~" for i in range(11))):
        with pytest.raises(QueryError, match=r"^cannot parse query syntax \(.*; set syntax off"):
            passages(ix, refused)  # worded as every refusal of syntax (hypothesis found "0~3:AND")
        passages(ix, refused, syntax="off")  # and searchable as plain words


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ("Truppen AND", "AND has no term after it"),  # whoosh searched a word "and": in German, "ändern"
        ("AND", "AND has no term before it"),
        ("OR Healey", "OR has no term before it"),
        ("Koalition AND OR Healey", "AND has no term after it"),
        ("Koalition NOT", "NOT has no term after it"),
        ("(Healey OR) Truppen", "OR has no term after it"),
        ("Healey^-1 Truppen", "'Healey^-1': a boost or an edit distance cannot be negative"),
        ("Heeley~-1", "'Heeley~-1': a boost or an edit distance cannot be negative"),
        ('"Koalition der"~-1', "'\"Koalition der\"~-1': a boost or an edit distance cannot be negative"),
        ("(Healey OR Truppen)^-2", "')^-2': a boost or an edit distance cannot be negative"),
        ("Koalition ANDMAYBE", "ANDMAYBE has no term after it"),
    ],
)
def test_operators_without_terms_and_negative_numbers_are_refused(ix: Index, query: str, problem: str) -> None:
    with pytest.raises(QueryError, match=re.escape(f"cannot parse query syntax ({problem}); set syntax off")):
        passages(ix, query, syntax="on")
    keyword(ix, query, syntax="off")  # plain words: nothing to refuse


def test_operator_words_that_join_terms_or_sit_in_a_phrase_are_fine(ix: Index) -> None:
    # --syntax auto: an operator that joins nothing is not syntax clearly meant; the other words are searched
    assert passages(ix, "Truppen AND") == passages(ix, "TRUPPEN OR") == [S2]
    assert passages(ix, '"Heeley~9 x" OR Truppen') == [S2]  # in a phrase "~9" is no fuzzy term
    assert passages(ix, "NOT Healey AND Truppen") == [S2]
    assert passages(ix, "Healey^2 AND Koalition") == passages(ix, "Healey AND Koalition")
    assert passages(ix, '"Koalition der Willigen" AND "Koalition AND"', syntax="on") == []


def test_english_sentence_found_by_english_stems(ix: Index) -> None:
    assert passages(ix, "cooperating on nuclear matters") == [S4]


def test_negated_words_are_not_highlighted(ix: Index) -> None:
    [hit] = ix.search("Truppen AND NOT bilden", mode="keyword", window=1)
    assert hit.passage == f"{S2} {S3}"  # the window shows the neighbour that holds "bilden"
    assert [hit.passage[s:e] for s, e in hit.highlights] == ["Truppen"]
    assert hit.evidence.terms == ("Truppen",)


def test_semantic_only_candidate_gets_its_bm25_score_in_hybrid(ix: Index) -> None:
    # one candidate per side: keyword proposes S0 (Healey twice in its document, shortest), the fake
    # encoder proposes S3 (the only sentence with "ohne"); S3's keyword score then comes from BM25
    # restricted to the candidates, and must be the score keyword mode gives it
    alone = {r.passage: r.keyword_score for r in keyword(ix, "Healey ohne")}
    assert next(iter(alone)) == S0 and alone[S3]
    [top] = ix.search("Healey ohne", mode="hybrid", k=1, candidates=1, window=0)
    assert top.passage == S3
    assert top.keyword_score == pytest.approx(alone[S3], rel=1e-6)


def test_stopword_only_query_matches_nothing(ix: Index) -> None:
    assert keyword(ix, "der die das and the") == []
    assert passages(ix, "Gibt es einen Vulkan?") == []  # words no sentence holds
