"""Issue 17: German compounds, spellings and forms, found and highlighted; English left alone."""

from __future__ import annotations

import time
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from search import build_index
from search.analysis import _token_parts, analyze, part_spans, term_spans
from search.bm25 import BM25
from search.compounds import MAX_COMPOUND, split
from search.index import Index
from search.termmatrix import TermMatrix

from .conftest import FakeEncoder

ENCODER = FakeEncoder(["zzz"])


def parts(word: str) -> list[str]:
    return [p.text for p in split(word)]


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("donaudampfschiff", ["donau", "dampfschiff", "dampf", "schiff"]),
        ("krankenversicherung", ["krank", "versicherung"]),
        ("koalitionsvertrag", ["koalition", "vertrag"]),
        ("wandhalterung", ["wand", "halterung"]),  # never "alterung"
        ("chefverhandler", ["chef", "verhandler"]),
        ("haushaltsausschuss", ["haushalt", "ausschuss"]),  # "Haushalt" too common to be Haus + Halt inside
        ("weltkriegen", ["welt", "krieg"]),  # an inflected form split as its base
    ],
)
def test_compounds_split_into_known_words(word: str, expected: list[str]) -> None:
    assert parts(word) == expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [  # made up: two readings after "haus" tie exactly on parts, linking letters and summed frequency
        ("haussamtssitzmöbel", ["haus", "amtssitz", "amts", "sitz", "möbel"]),  # not haus|samt|sitzmöbel
        ("zeiteselendobermann", ["zeit", "elend", "obermann", "ober", "mann"]),  # not zeit|esel|dobermann
    ],
)
def test_an_exact_tie_is_broken_by_the_parts_letters(word: str, expected: list[str]) -> None:
    """The rule every index so far was built with: the query side must split a word as the index did."""
    assert parts(word) == expected


@pytest.mark.parametrize(
    "word",
    ["unternehmen", "verstand", "lehrerinnen", "gesellschaft", "halterung", "liebenden", "verlaufenden", "beispiel"],
)
def test_words_that_are_not_compounds_stay_whole(word: str) -> None:
    assert parts(word) == []


def test_part_offsets_are_the_parts_letters() -> None:
    text = "Das Donaudampfschiff und die Krankenversicherung."
    found = {text[s:e]: term for term, s, e in part_spans(text, "de")}
    assert found == {"Donau": "donau", "dampfschiff": "dampfschiff", "dampf": "dampf", "schiff": "schiff",
                     "Kranken"[:5]: "krank", "versicherung": "versicher"}  # fmt: skip
    assert list(part_spans("The steamboat insurance contract", "en")) == []  # English is never split


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("aeiouäöüßnrstlhdgkmxyzаб語"), min_size=1, max_size=250))
def test_any_word_is_analysed_in_a_millisecond(word: str) -> None:
    best = min(_cold(lambda: list(part_spans(word, "de"))) for _ in range(3))  # the best of 3 first looks
    assert best <= 1e-3, (word, best)


def _cold(fn) -> float:  # type: ignore[no-untyped-def]
    """Seconds ``fn`` takes with the splitter's caches and the analyser's cache of each token's parts empty."""
    split.cache_clear()
    _token_parts.cache_clear()
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def test_long_and_repeated_words_are_left_alone() -> None:
    assert parts("a" * 200) == [] and parts("haus" * (MAX_COMPOUND // 4 + 1)) == []


def test_forms_and_spellings_meet() -> None:
    def terms(text: str) -> list[str]:
        return analyze(text, "de")

    assert terms("Kuendigung") == terms("Kündigung") and terms("Strasse") == terms("Straße")
    assert terms("Mauer") != terms("Maür")  # "ue" after a vowel is no umlaut
    lehrer = terms("Lehrer")
    for form in ("Lehrer*innen", "Lehrer:innen", "Lehrer_innen", "LehrerInnen", "Lehrerinnen"):
        assert terms(form) == lehrer, form
    composed, decomposed = "Königreich", unicodedata.normalize("NFD", "Königreich")
    assert decomposed != composed and terms(decomposed) == terms(composed)
    (span,) = [(s, e) for _, s, e in term_spans(f"Das {decomposed}.", "de") if e - s > 3]
    assert f"Das {decomposed}."[slice(*span)] == decomposed  # offsets stay on the original text


@pytest.fixture(scope="module")
def german(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compounds")
    corpus = root / "c"
    corpus.mkdir()
    texts = {
        "schiff.txt": "Das Donaudampfschiff legte in Wien an.",
        "kasse.txt": "Die Krankenversicherung zahlt die Behandlung.",
        "vertrag.txt": "Der Koalitionsvertrag wurde unterschrieben.",
        "wand.txt": "Die Wandhalterung hält den Fernseher.",
        "fpoe.txt": "Der FPÖ-Chefverhandler trat zurück.",
        "recht.txt": "Nach § 7 Abs. 2 BGB und Art. 5 GG gilt das.",
        "nfd.txt": unicodedata.normalize("NFD", "Das Königreich Preußen und die Kündigung."),
        "lehrer.txt": "Die Lehrer*innen streiken, die Lehrerinnen auch.",
        "potato.txt": "The potato harvest was poor.",
        "alter.txt": "Die Alterung der Bevölkerung.",
        "koenigin.txt": "Die Königin von Dänemark.",
    }
    for name, text in texts.items():
        (corpus / name).write_text(text, encoding="utf-8")
    build_index(corpus, root / "idx", encoder=ENCODER)
    return root / "idx"


@pytest.mark.parametrize(
    ("query", "doc", "marked"),
    [
        ("Schiff", "schiff.txt", "schiff"),
        ("Versicherung", "kasse.txt", "versicherung"),
        ("Vertrag", "vertrag.txt", "vertrag"),
        ("Verhandler", "fpoe.txt", "verhandler"),
        ("Chef", "fpoe.txt", "Chef"),
        ("FPÖ", "fpoe.txt", "FPÖ"),
        ("Kuendigung", "nfd.txt", unicodedata.normalize("NFD", "Kündigung")),
        ("Königreich", "nfd.txt", unicodedata.normalize("NFD", "Königreich")),
        ("Lehrer", "lehrer.txt", "Lehrer*innen"),
        (unicodedata.normalize("NFD", "Königin"), "koenigin.txt", "Königin"),  # typed decomposed, found composed
        (unicodedata.normalize("NFD", "Königin AND Dänemark"), "koenigin.txt", "Königin"),  # query syntax too
    ],
)
def test_keyword_search_finds_and_marks_inside_words(german: Path, query: str, doc: str, marked: str) -> None:
    with Index.open(german, encoder=ENCODER) as ix:
        results = ix.search(query, mode="keyword", window=0)
    assert results and results[0].doc == doc, [r.doc for r in results]
    top = results[0]
    assert marked in [top.passage[s:e] for s, e in top.highlights]
    assert marked in top.evidence.terms  # a matched part is listed like a matched word


def test_a_query_compound_finds_its_parts_at_lower_weight(german: Path) -> None:
    with Index.open(german, encoder=ENCODER) as ix:
        whole = ix.search("Krankenversicherung", mode="keyword")
        assert [r.doc for r in whole] == ["kasse.txt"]
        (r,) = ix.search("Versicherungsvertrag", mode="keyword", window=0)[:1]
        assert r.doc in {"kasse.txt", "vertrag.txt"}  # neither holds the word; each holds a part of it


def test_false_parts_and_english_are_not_found(german: Path) -> None:
    with Index.open(german, encoder=ENCODER) as ix:
        assert [r.doc for r in ix.search("Alterung", mode="keyword")] == ["alter.txt"]  # not the Wandhalterung
        assert [r.doc for r in ix.search("Tat", mode="keyword")] == []  # never inside "potato"
        assert [r.doc for r in ix.search("Preußen", mode="keyword")] == ["nfd.txt"]


def test_legal_references_stay_searchable_as_written(german: Path) -> None:
    with Index.open(german, encoder=ENCODER) as ix:
        for query in ('"§ 7 Abs. 2 BGB"', '"Art. 5 GG"', "BGB"):
            assert [r.doc for r in ix.search(query, mode="keyword")] == ["recht.txt"], query


def test_part_columns_score_at_their_weight() -> None:
    """A "de+:" key reads the part column at part_weight; "de~:" a whole-word column at query_part_weight;
    parts do not count in a row's length (the formula by hand, k1 = 1.2, b = 0.75, Lucene idf)."""
    rows = [["de:donaudampfschiff", "de+:donau", "de+:schiff", "de:fahrt"], ["de:schiff"], ["de:hafen"]]
    m = TermMatrix.empty().update(np.zeros(0, dtype=np.int64), [0, 1, 2], rows)
    assert m.doclen.tolist() == [2.0, 1.0, 1.0]
    bm = BM25(m, part_weight=0.25, query_part_weight=0.5)

    def by_hand(tf: float, df: int, dl: float) -> float:
        idf = np.log1p((3 - df + 0.5) / (df + 0.5))
        return float(idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * dl / (4 / 3))))

    rows_, scores = bm.scores(["de+:schiff"])
    assert dict(zip(rows_.tolist(), scores.tolist(), strict=True)) == pytest.approx({0: 0.25 * by_hand(1, 1, 2)})
    rows_, scores = bm.scores(["de~:schiff", "de~+:schiff"])
    got = dict(zip(rows_.tolist(), scores.tolist(), strict=True))
    assert got == pytest.approx({0: 0.125 * by_hand(1, 1, 2), 1: 0.5 * by_hand(1, 1, 1)})


def test_the_hand_checked_list_is_the_splitters_and_mostly_right() -> None:
    """queries/compounds-checked.tsv: 400+ words of the shared corpora with the splitter's split and a judgement
    by hand. The splits must still be the splitter's (else the judgements say nothing), and the rate of
    false splits stays what the results state."""
    lines = [
        line.split("\t")
        for line in (Path(__file__).parent.parent / "queries" / "compounds-checked.tsv").read_text().splitlines()
        if line and not line.startswith(("#", "word\t"))
    ]
    assert len(lines) >= 200
    assert [row[2] for row in lines] == ["+".join(p.text for p in split(row[0])) for row in lines]
    false = sum(row[3] == "false" for row in lines)
    assert {row[3] for row in lines} == {"ok", "false"} and false / len(lines) < 0.08


def test_the_default_weights_are_the_ones_tuned_or_measured_beside_them() -> None:
    """The manifest's defaults for part weights are what benchmarks/compounds.py chose on the tuning splits, or,
    where its last run chose others, the engine's own weights were measured beside them and the choice's gain
    over them is not significant on the tuning queries (its sign-flip test: p ≥ 0.05, the rule its docstring
    states); the test's difference is the tuning table's, recomputed query by query."""
    import json

    from search.manifest import Scoring

    results = json.loads((Path(__file__).parent.parent / "benchmarks" / "results" / "compounds.json").read_text())
    chosen = results["chosen"]
    engine = {"part_weight": Scoring.part_weight, "query_part_weight": Scoring.query_part_weight}
    if engine == chosen:
        return
    assert results["query_set"]["engine_weights"] == engine and "engine" in results["query_set"]

    def mean(weights: dict[str, float]) -> float:
        per = results["tuning"][f"{weights['part_weight']:g}/{weights['query_part_weight']:g}"]
        return sum(v for n in per.values() for k, v in n.items() if k in ("keyword", "hybrid")) / (2 * len(per))

    tie = results["tie_test"]
    assert tie["engine"] == list(engine.values()) and tie["chosen"] == list(chosen.values())
    assert tie["difference"] == pytest.approx(mean(chosen) - mean(engine), abs=1e-9)
    assert tie["p"] >= 0.05


def test_the_word_list_is_kept_in_the_cache_and_a_damaged_one_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search import compounds

    monkeypatch.setenv("SEARCH_CACHE_DIR", str(tmp_path))
    compounds._zipf.cache_clear()
    try:
        words = compounds._zipf()
        (kept,) = (tmp_path / "compounds").glob("de-wordfreq-*.tsv")
        assert len(kept.read_text(encoding="utf-8").splitlines()) == len(words) > 50_000
        compounds._zipf.cache_clear()
        assert compounds._zipf() == words  # read back: the same list
        kept.write_text("schiff\tnot a number\n", encoding="utf-8")  # damaged
        compounds._zipf.cache_clear()
        assert compounds._zipf() == words and len(kept.read_text(encoding="utf-8").splitlines()) == len(words)
    finally:
        compounds._zipf.cache_clear()
