"""SearchParams is the one definition of every search option: the CLI's options and the API's
parameters are generated from it, the engine obeys it, and the manifest's scoring is read back."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import numpy as np
import pytest
import typer
from fastapi import FastAPI
from fastapi.testclient import TestClient

from search import Index, Searcher, SearchParams
from search.cli import app
from search.errors import IndexFormatError, SearchError
from search.feedback import DocumentFeedback
from search.fusion import fuse, fuse_arrays
from search.params import FusionName, ModeName, param_specs
from search.serve import SearchOptions
from search.store import MANIFEST
from search.types import Result

from .conftest import FakeEncoder


def test_defaults_bounds_and_coercion() -> None:
    p = SearchParams()
    assert (p.mode, p.k, p.fusion, p.effective_alpha, p.candidates, p.feedback) == (
        ModeName.hybrid,
        10,
        FusionName.convex,
        0.8,
        100,
        1,
    )
    assert p.feedback_weight == 1.0
    assert p.effective_doc_weight == 1.0 and SearchParams(mode="semantic").effective_doc_weight == 1.0
    assert SearchParams(mode="keyword").mode is ModeName.keyword
    assert p.replace(k=5).k == 5 and p.k == 10
    with pytest.raises(SearchError, match="k must be between 1 and 1000, not 0"):
        SearchParams(k=0)
    with pytest.raises(SearchError, match="alpha must be between 0 and 1"):
        SearchParams(alpha=1.5)
    with pytest.raises(SearchError, match="choose one of: keyword, semantic, hybrid"):
        SearchParams(mode="fuzzy")
    with pytest.raises(SearchError, match="unknown search option"):
        p.replace(colour="red")
    with pytest.raises(SearchError, match="k must be between 1 and 1000, not True"):
        SearchParams(k=True)  # a bool is no count
    with pytest.raises(SearchError, match="dedupe must be true or false"):
        SearchParams(dedupe="yes")


def test_a_keyword_query_fills_in_its_own_weights_and_only_unset_ones() -> None:
    """Hybrid mode ranks a keyword query with α 0.3 and the sentence alone (keyword_queries.md); a weight the
    caller set stays, a question keeps the defaults, and the other modes are untouched."""
    from search.analysis import keyword_query

    words, question = "Versicherung Kosten", "Wer will Truppen in die Ukraine schicken?"
    assert keyword_query(words) and not keyword_query(question)
    p = SearchParams()
    kw = p.for_query(keyword_query(words))
    assert (kw.effective_alpha, kw.effective_doc_weight) == (0.3, 0.0)
    assert p.for_query(keyword_query(question)) is p and (p.effective_alpha, p.effective_doc_weight) == (0.8, 1.0)
    mine = SearchParams(alpha=0.9).for_query(True)
    assert (mine.effective_alpha, mine.effective_doc_weight) == (0.9, 0.0)
    assert SearchParams(doc_weight=2.0).for_query(True).effective_doc_weight == 2.0
    for mode in ("keyword", "semantic"):
        assert SearchParams(mode=mode).for_query(True) == SearchParams(mode=mode)


def test_a_long_query_fills_in_its_own_weights_and_only_unset_ones() -> None:
    """Hybrid mode ranks a plain query of more than the index's long_words words with α 0.6 and twice the
    document vector (long_fusion.md); a weight the caller set stays, and the other modes are untouched."""
    long = SearchParams().for_query(False, long=True)
    assert (long.effective_alpha, long.effective_doc_weight) == (0.6, 2.0)
    mine = SearchParams(alpha=0.9, doc_weight=0.5).for_query(False, long=True)
    assert (mine.effective_alpha, mine.effective_doc_weight) == (0.9, 0.5)
    assert SearchParams(doc_weight=3.0).for_query(False, long=True).effective_alpha == 0.6
    for mode in ("keyword", "semantic"):
        assert SearchParams(mode=mode).for_query(False, long=True) == SearchParams(mode=mode)


@pytest.mark.parametrize(
    ("text", "keywords"),
    [
        ("Versicherung", True),
        ("Churchill statue", True),
        ("Haus Massachusetts 1774", True),
        ("Versicherung Kosten Berlin Preis", False),  # four words: more than typed keywords
        ("Warum Truppen", False),  # a question word
        ("Truppen?", False),
        ("die Truppen", False),  # a function word: a phrase or a sentence
        ("Who wants troops", False),
        ("   ", False),
    ],
)
def test_keyword_query(text: str, keywords: bool) -> None:
    from search.analysis import keyword_query

    assert keyword_query(text) is keywords


def _cli_params(command: str) -> dict[str, typing.Any]:
    group: typing.Any = typer.main.get_command(app)
    return {p.name: p for p in group.commands[command].params if p.name}


@pytest.mark.parametrize("command", ["query", "eval"])
def test_cli_options_are_generated_from_search_params(command: str) -> None:
    params = _cli_params(command)
    for_reading = {"k", "offset", "window", "dedupe", "min_score", "cutoff", "explain"}  # eval ranks documents
    excluded = {"mode", "candidates", *for_reading} if command == "eval" else set()
    for spec in param_specs():
        if spec.name in excluded:
            continue
        opt = params[spec.name]
        assert set(spec.flag_names) <= set(opt.opts) or spec.type is bool, spec.name
        assert opt.default == (spec.default.value if hasattr(spec.default, "value") else spec.default), spec.name
        if spec.lo is not None and spec.cli_bounds:
            assert (opt.min, opt.max) == (spec.lo, spec.hi), spec.name
        elif spec.lo is not None:  # SearchParams checks it: a one-line error, exit 1
            assert (opt.min, opt.max) == (None, None), spec.name
    if command == "eval":  # its own: every mode at once, and a depth that depends on the judgments
        assert params["mode"].default == "all" and params["candidates"].default is None
        assert not {"k", "offset", "window", "dedupe", "min_score", "cutoff", "explain"} & set(params)


def test_api_parameters_are_generated_from_search_params() -> None:
    api = FastAPI()

    @api.get("/p")
    def echo(options: SearchOptions) -> dict[str, typing.Any]:
        return options.as_dict()

    schema = {p["name"]: p["schema"] for p in api.openapi()["paths"]["/p"]["get"]["parameters"]}
    for spec in param_specs():
        hi = spec.api_hi if spec.api_hi is not None else spec.hi
        if spec.lo is not None:
            bounds = schema[spec.name] if "minimum" in schema[spec.name] else schema[spec.name]["anyOf"][0]
            assert (bounds["minimum"], bounds["maximum"]) == (spec.lo, hi), spec.name
    client = TestClient(api)
    got = client.get("/p", params={"mode": "keyword", "rrf_k": 7, "dedupe": "false"}).json()
    assert got == {**SearchParams().as_dict(), "mode": "keyword", "rrf_k": 7, "dedupe": False}
    assert client.get("/p", params={"k": 1000, "offset": 10_000}).status_code == 200  # pages reach far
    for bad in ({"k": 1001}, {"candidates": 1001}, {"offset": -1}, {"offset": 10_001}):
        assert client.get("/p", params=bad).status_code == 422, bad


def test_fusion_of_three_signals_hand_computed() -> None:
    a, b, c = {1: 10.0, 2: 0.0}, {1: 0.2, 2: 0.6, 3: 0.4}, {3: 5.0}
    fused = fuse([a, b, c], [0.5, 0.3, 0.2], "convex")
    assert fused[1] == pytest.approx(0.5 * 1.0 + 0.3 * 0.0)
    assert fused[2] == pytest.approx(0.5 * 0.0 + 0.3 * 1.0)
    assert fused[3] == pytest.approx(0.3 * 0.5 + 0.2 * 1.0)  # signal a did not score 3: it counts 0 there
    rrf = fuse([a, b, c], [0.5, 0.3, 0.2], "rrf", rrf_k=10)
    assert rrf[3] == pytest.approx(2 * 0.3 / (10 + 2) + 2 * 0.2 / (10 + 1))
    arrays = fuse_arrays([np.array([10.0, 0.0, 0.0])], [np.array([True, True, False])], [1.0], "convex")
    assert arrays.tolist() == [1.0, 0.0, 0.0]


def test_feedback_strategy() -> None:
    fb = DocumentFeedback(2, 0.5)
    assert fb.top_documents({10: 0.9, 11: 0.8, 12: 0.7, 13: 0.1}, {10: 1, 11: 1, 12: 2, 13: 3}) == [1, 2]
    q, d = np.array([1.0, 0.0], np.float32), np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    moved = fb.moved(q, d)
    assert moved == pytest.approx(np.array([1.0, 0.5]) / np.sqrt(1.25))
    assert not DocumentFeedback(0, 0.5).active and not DocumentFeedback(1, 0.0).active


def test_searcher_is_the_index_handle_split(built: Path, fake_encoder: FakeEncoder) -> None:
    assert typing.get_type_hints(Index.search)["return"] == list[Result]
    with Index.open(built, encoder=fake_encoder) as ix:
        searcher = ix.searcher()
        assert isinstance(searcher, Searcher)
        params = SearchParams(mode="keyword", k=2)
        assert (
            searcher.search("Soldaten", params)
            == ix.search("Soldaten", params)
            == ix.search("Soldaten", mode="keyword", k=2)
        )


def test_rrf_k_and_alpha_reach_the_fusion(built: Path, fake_encoder: FakeEncoder) -> None:
    """The fused scores are recomputed by hand from each side's scores (ranks, 2·w / (k + rank))."""
    with Index.open(built, encoder=fake_encoder) as ix:
        params = SearchParams(fusion="rrf", rrf_k=3, alpha=0.25, feedback=0)
        scored = ix.searcher().score("Soldaten am Meer", params)
        assert scored.keyword and scored.semantic
        rank_kw = {c: r for r, c in enumerate(sorted(scored.keyword, key=lambda c: (-scored.keyword[c], c)), 1)}
        rank_sem = {c: r for r, c in enumerate(sorted(scored.semantic, key=lambda c: (-scored.semantic[c], c)), 1)}
        for cid, score in scored.fused.items():
            want = 2 * 0.25 / (3 + rank_sem[cid]) + (2 * 0.75 / (3 + rank_kw[cid]) if cid in rank_kw else 0.0)
            assert score == pytest.approx(want)


def test_the_long_weights_start_past_the_index_long_words(built: Path, fake_encoder: FakeEncoder) -> None:
    """A plain query of more than the manifest's long_words words is fused with the long query's weights, one
    of exactly long_words is not, and neither is query syntax however long; what ranked is what explain says."""
    from search.params import HYBRID_ALPHA, HYBRID_DOC_WEIGHT, LONG_QUERY_ALPHA, LONG_QUERY_DOC_WEIGHT

    manifest = json.loads((built / MANIFEST).read_text())
    manifest["scoring"]["long_words"] = 5  # this index's own threshold, not the default 20
    (built / MANIFEST).write_text(json.dumps(manifest))
    words = ["Soldaten", "Truppen", "Meer", "Ukraine", "Koalition", "Healey", "Paris"]
    with Index.open(built, encoder=fake_encoder) as ix:

        def weights(text: str) -> tuple[float, float]:
            p = ix.searcher().score(text, SearchParams()).params
            assert p is not None
            return p.effective_alpha, p.effective_doc_weight

        assert weights(" ".join(words[:5])) == (HYBRID_ALPHA, HYBRID_DOC_WEIGHT)
        assert weights(" ".join(words[:6])) == (LONG_QUERY_ALPHA, LONG_QUERY_DOC_WEIGHT)
        assert weights(" AND ".join(words[:6])) == (HYBRID_ALPHA, HYBRID_DOC_WEIGHT)  # syntax: no plain words
        page = ix.page(" ".join(words[:6]), explain=True, k=3)
        assert page.results and all(r.explain["fusion"]["alpha"] == LONG_QUERY_ALPHA for r in page.results)


def test_scoring_parameters_are_read_back_from_the_manifest(built: Path, fake_encoder: FakeEncoder) -> None:
    with Index.open(built, encoder=fake_encoder) as ix:
        before = ix.search("Soldaten Truppen", mode="keyword", k=3)
    manifest = json.loads((built / MANIFEST).read_text())
    manifest["scoring"]["sentence_share"] = 0.0  # a sentence then scores its document's BM25 alone
    (built / MANIFEST).write_text(json.dumps(manifest))
    with Index.open(built, encoder=fake_encoder) as ix:
        assert ix.keyword.bm25 is not None and ix.keyword.bm25.sentence_weight == 0.0
        after = ix.search("Soldaten Truppen", mode="keyword", k=3)
    same_doc = [r.keyword_score for r in after if r.doc == after[0].doc]
    assert len(set(same_doc)) == 1  # every sentence of the document now scores the same
    assert [r.keyword_score for r in before] != [r.keyword_score for r in after]
    manifest["scoring"]["idf"] = "robertson"
    (built / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="unknown idf form 'robertson'"):
        Index.open(built, encoder=fake_encoder)


def test_semantic_mode_answers_syntax_whoosh_cannot_parse(
    built: Path, fake_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import search.parsing

    class Refusing:  # whoosh's parser is lenient; this stands for the inputs it does refuse
        def parse(self, text: str) -> None:
            raise ValueError("unbalanced")

    monkeypatch.setattr(search.parsing, "_parser", lambda lang: Refusing())
    with Index.open(built, encoder=fake_encoder) as ix:
        with pytest.raises(SearchError, match="cannot parse query syntax"):
            ix.search("ocean AND (", mode="keyword", syntax="on")
        results = ix.search("ocean AND (", mode="semantic", syntax="on")
        assert "ocean" in results[0].passage.lower() and results[0].highlights  # plain-word highlights


@pytest.mark.parametrize(("word", "langs"), [("dog", ["en"]), ("Meer", ["de"])])
def test_a_foreign_stopword_alone_is_still_searched(word: str, langs: list[str]) -> None:
    """'dog' is a Danish stopword and 'Meer' a Dutch one; alone in a query they are the words sought."""
    from search.parsing import parse_query

    lang = langs[0]
    inside = (f"{lang}+:{word.lower()}",) if lang == "de" else ()  # German: the word inside compounds too
    assert parse_query(word, langs).plain == (f"{lang}:{word.lower()}", *inside)
    assert parse_query(f"the {word}", ["en"]).plain == (f"en:{word.lower()}",)
    assert parse_query("deep sea", ["en"]).plain == ("en:deep", "en:sea")  # one Spanish stopword is no Spanish
    english = parse_query("What did Britain and France say", ["de"]).plain or ()
    assert "de:and" not in english and "de:franc" in english  # an English question in a German index
