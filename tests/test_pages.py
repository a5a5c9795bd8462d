"""Pages of results (``offset``), the documents feedback moved the query to, and "more like this"
(``search similar``, ``/api/documents/{id}/similar``): issue 16."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from search import Index, SearchParams, build_index
from search.analysis import keyword_query
from search.cli import app
from search.errors import DocumentNotFoundError
from search.params import (
    HYBRID_ALPHA,
    HYBRID_DOC_WEIGHT,
    KEYWORD_QUERY_ALPHA,
    KEYWORD_QUERY_DOC_WEIGHT,
    LONG_QUERY_ALPHA,
    LONG_QUERY_DOC_WEIGHT,
)
from search.serve import IndexHolder, SearchOut, create_app

from .conftest import FakeEncoder, animal_corpus

QUERIES = ["Koalition der Willigen", "Wer will britische Soldaten in die Ukraine schicken?", "Truppen Healey"]


def _key(r):  # type: ignore[no-untyped-def]
    return (r.rank, r.doc, r.start, r.end, r.score, r.chunk_id)


@pytest.mark.model
@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_a_page_is_those_ranks_of_the_deeper_query(example_index, mode: str) -> None:  # type: ignore[no-untyped-def]
    for q in QUERIES:
        for k, offset in ((3, 0), (3, 2), (5, 7), (1, 20), (4, 35)):
            page = example_index.search(q, mode=mode, k=k, offset=offset)
            deeper = example_index.search(q, mode=mode, k=k + offset)
            assert [_key(r) for r in page] == [_key(r) for r in deeper[offset:]], (q, k, offset)
            assert [r.rank for r in page] == list(range(offset + 1, offset + 1 + len(page)))
    everything = example_index.search(QUERIES[1], mode=mode, k=1000, dedupe=False, window=0)
    assert example_index.search(QUERIES[1], mode=mode, k=10, offset=len(everything), dedupe=False, window=0) == []


def test_feedback_docs_are_the_first_rankings_best_documents(tmp_path: Path) -> None:
    corpus, enc = animal_corpus(tmp_path / "c", ["1-cats.txt", "2-mixed.txt", "3-dogs.txt"])
    build_index(corpus, tmp_path / "idx", encoder=enc)
    with Index.open(tmp_path / "idx", encoder=enc) as ix:
        assert ix.page("cat fish").feedback_docs == ()  # a keyword query reads the sentences alone
        assert ix.page("cat fish", doc_weight=4).feedback_docs != ()
        for q in ("which cat eats fish", "when does a dog bark"):
            first = [r.doc for r in ix.search(q, feedback=0, k=10, dedupe=False)]
            best = list(dict.fromkeys(first))  # the first ranking's documents, best first
            assert ix.page(q).feedback_docs == tuple(best[: SearchParams().feedback])  # the default
            assert ix.page(q, feedback=1).feedback_docs == tuple(best[:1])
            assert ix.page(q, feedback=2).feedback_docs == tuple(best[:2])
            assert ix.page(q, feedback=0).feedback_docs == ()
            assert ix.page(q, mode="keyword").feedback_docs == ()
            assert ix.page(q, doc_weight=0).feedback_docs == ()  # nothing to move without document cosines


@pytest.mark.parametrize("offset", ["-1", "10001"])
def test_cli_offset_out_of_range_is_a_one_line_error_exit_1(tmp_path: Path, offset: str) -> None:
    result = CliRunner().invoke(app, ["query", "Truppen", "--index", str(tmp_path / "none"), "--offset", offset])
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [f"error: offset must be between 0 and 10000, not {offset}"]


def test_cli_json_pages_and_names_feedback_docs(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()

    def query(*args: str) -> dict:  # type: ignore[type-arg]
        words = "Meer Soldaten Truppen Berg"
        result = runner.invoke(app, ["query", words, "--index", str(built), "--json", "--mode", "keyword", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)  # type: ignore[no-any-return]

    deep = query("-k", "3")
    page = query("-k", "2", "--offset", "1")
    assert page["results"] == deep["results"][1:3] and "feedback_docs" not in page
    empty = runner.invoke(app, ["query", "Meer", "--index", str(built), "--mode", "keyword", "--offset", "50"])
    assert empty.exit_code == 0 and "past rank 50" in empty.output


@pytest.fixture
def animals(tmp_path: Path) -> tuple[Path, FakeEncoder]:
    """Four documents whose vectors are explainable by hand: the fake encoder marks cat, dog, fish."""
    corpus, enc = animal_corpus(tmp_path / "animals")
    build_index(corpus, tmp_path / "animals-idx", encoder=enc)
    return tmp_path / "animals-idx", enc


def test_similar_documents_with_the_closest_sentence_pair(animals: tuple[Path, FakeEncoder]) -> None:
    folder, enc = animals
    with Index.open(folder, encoder=enc) as ix:
        source = ix.document(ix.document_num("1-cats.txt") or 0).text
        got = ix.similar("1-cats.txt", k=10, window=0)
        # cats+fish is nearest to fish (cosine 0.71), then cat+dog (0.5), then dog (0): itself excluded
        assert [r.doc for r in got] == ["4-fish.txt", "2-mixed.txt", "3-dogs.txt"]
        assert [r.rank for r in got] == [1, 2, 3]
        mine = ix.doc_vectors.vectors([ix.document_num("1-cats.txt") or 0])[0]
        for r in got:
            theirs = ix.doc_vectors.vectors([ix.document_num(r.doc) or 0])[0]
            assert r.score == pytest.approx(float(mine @ theirs)) and r.semantic_score == r.score
            assert r.keyword_score is None and r.highlights == ()
        fish, mixed = got[0], got[1]
        assert fish.passage == "Fish swim." and source[slice(*fish.evidence.source)] == "Every cat likes fish."
        assert fish.evidence.similarity == pytest.approx(
            float(enc._vec("Every cat likes fish.") @ enc._vec("Fish swim."))
        )
        assert mixed.passage[slice(*mixed.evidence.sentence)] == "The cat sleeps."
        assert source[
            slice(*mixed.evidence.source)
        ] == "The cat sleeps." and mixed.evidence.similarity == pytest.approx(1)
        assert [r.doc for r in ix.similar("1-cats.txt", k=1)] == ["4-fish.txt"]
        with pytest.raises(DocumentNotFoundError, match=r"no document 'nope\.txt' in the index"):
            ix.similar("nope.txt")


def test_similar_from_the_cli_and_the_api(animals: tuple[Path, FakeEncoder]) -> None:
    folder, enc = animals
    runner = CliRunner()
    result = runner.invoke(app, ["similar", "1-cats.txt", "--index", str(folder), "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"] == "1-cats.txt" and payload["mode"] == "similar"
    assert [r["doc"] for r in payload["results"]] == ["4-fish.txt", "2-mixed.txt"]
    assert payload["results"][0]["evidence"]["source"] == [35, 56]  # "Every cat likes fish." in 1-cats.txt
    shown = runner.invoke(app, ["similar", "1-cats.txt", "--index", str(folder), "-k", "1"])
    assert shown.exit_code == 0 and "4-fish.txt" in shown.output and "like: Every cat likes fish." in shown.output
    missing = runner.invoke(app, ["similar", "nope.txt", "--index", str(folder)])
    assert missing.exit_code == 3
    assert missing.output.strip().splitlines() == ["error: no document 'nope.txt' in the index"]

    holder = IndexHolder(folder, encoder=enc)
    try:
        client = TestClient(create_app(holder))
        answer = client.get("/api/documents/1-cats.txt/similar", params={"k": 2})
        assert answer.status_code == 200
        SearchOut.model_validate(answer.json(), strict=True)
        assert answer.json() == payload  # the CLI's JSON
        gone = client.get("/api/documents/nope.txt/similar")
        assert gone.status_code == 404 and gone.json() == {"error": "no document 'nope.txt' in the index"}
        assert client.get("/api/documents/1-cats.txt/similar", params={"k": 0}).status_code == 422
        assert client.get("/api/documents/1-cats.txt").json()["id"] == "1-cats.txt"  # the document route still works
    finally:
        holder.close()


@pytest.mark.model
@pytest.mark.parametrize("fusion", ["convex", "rrf"])
@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_explain_recomputes_every_score(example_index, mode: str, fusion: str) -> None:  # type: ignore[no-untyped-def]
    shares = example_index.manifest.scoring
    long = (  # a paragraph pasted in: more than long_words words, ranked by documents (search/bm25.py)
        "Der britische Premierminister will nach einem Waffenstillstand Soldaten in die Ukraine schicken, "
        "und die Koalition der Willigen berät in Paris und London über Sicherheitsgarantien, Truppen und "
        "Luftverteidigung für die Zeit danach"
    )
    assert len(long.split()) > shares.long_words
    for q in [*QUERIES, '"Koalition der Willigen" AND Healey', long]:
        page = example_index.page(q, mode=mode, fusion=fusion, k=15, explain=True)
        plain = example_index.search(q, mode=mode, fusion=fusion, k=15)
        assert [(r.chunk_id, r.score) for r in page.results] == [(r.chunk_id, r.score) for r in plain]
        assert all(r.explain is None for r in plain)  # only when asked
        kw_ranks, sem_ranks = [], []
        for r in page.results:
            e = r.explain
            kw, sem, fu = e["keyword"], e["semantic"], e["fusion"]
            if mode != "semantic":
                assert kw["raw"] == r.keyword_score
                if kw["document_bm25"] is not None:  # plain words: the numpy BM25, term by term
                    share = shares.long_sentence_share if q == long else shares.sentence_share
                    assert (kw["document_share"], kw["sentence_share"]) == (shares.document_share, share)
                    doc_part = shares.document_share * kw["document_bm25"]
                    assert kw["raw"] == pytest.approx(doc_part + share * kw["sentence_bm25"], rel=1e-5)
                    assert sum(kw["terms"].values()) == pytest.approx(kw["raw"], rel=1e-5)
                    assert all(":" in t for t in kw["terms"])  # "lang:term", as the index holds it
                else:
                    assert kw["scoring"] == "bm25 syntax" or kw["rank"] is None
                if kw["rank"] is not None:
                    kw_ranks.append((kw["rank"], kw["raw"]))
            if mode != "keyword":
                w = sem["doc_weight"]
                assert sem["raw"] == r.semantic_score
                expected = (sem["sentence_cosine"] + w * sem["document_cosine"]) / (1 + w)
                assert sem["raw"] == pytest.approx(expected, rel=1e-6)
                assert sem["sentence_cosine"] == r.evidence.similarity
                sem_ranks.append((sem["rank"], sem["raw"]))
            if mode == "hybrid":
                weights = fu["weights"]
                keywords = keyword_query(q)  # "Truppen Healey" is one: its own weights (tests/test_params.py)
                alpha = KEYWORD_QUERY_ALPHA if keywords else LONG_QUERY_ALPHA if q == long else HYBRID_ALPHA
                doc_weight = (
                    KEYWORD_QUERY_DOC_WEIGHT if keywords else LONG_QUERY_DOC_WEIGHT if q == long else HYBRID_DOC_WEIGHT
                )
                assert (fu["method"], fu["alpha"], weights) == (fusion, alpha, [pytest.approx(1 - alpha), alpha])
                assert sem["doc_weight"] == doc_weight
                recomputed = fu["scale"] * (weights[0] * kw["normalised"] + weights[1] * sem["normalised"])
                assert r.score == pytest.approx(recomputed, abs=1e-12)
                moved = {"docs": list(page.feedback_docs), "weight": 1.0} if doc_weight else None
                assert e["feedback"] == moved
            else:
                assert fu is None and e["feedback"] is None
                assert r.score == (kw or sem)["raw"]
        for side in (kw_ranks, sem_ranks):  # a better raw score has a better rank on its side
            ordered = sorted(side)
            assert [raw for _, raw in ordered] == sorted((raw for _, raw in ordered), reverse=True)
            assert len({rank for rank, _ in side}) == len(side)


def test_explain_in_the_cli_json(built: Path) -> None:
    args = ["query", "Meer Soldaten", "--index", str(built), "--json", "--mode", "keyword"]
    plain = json.loads(CliRunner().invoke(app, args).stdout)
    explained = json.loads(CliRunner().invoke(app, [*args, "--explain"]).stdout)
    assert all("explain" not in r for r in plain["results"])
    first = explained["results"][0]["explain"]
    assert first["keyword"]["raw"] == explained["results"][0]["scores"]["keyword"]
    assert set(first["keyword"]["terms"]) <= {"de:meer", "de:soldat", "en:meer", "en:soldaten"}
    assert first["semantic"] is None and first["fusion"] is None
    text = CliRunner().invoke(app, [*args[:-3], "--mode", "keyword", "--explain"])
    assert text.exit_code == 0 and "why: keyword" in text.output


def test_min_score_cuts_below_it_and_never_unasked(built: Path, fake_encoder: FakeEncoder) -> None:
    with Index.open(built, encoder=fake_encoder) as ix:
        for mode in ("keyword", "semantic", "hybrid"):
            every = ix.search("Meer Soldaten cat", mode=mode, k=50, dedupe=False)
            assert len(every) >= 2
            floor = every[len(every) // 2].score
            kept = ix.search("Meer Soldaten cat", mode=mode, k=50, dedupe=False, min_score=floor)
            assert kept == [r for r in every if r.score >= floor] and 0 < len(kept) < len(every)
            assert ix.search("Meer Soldaten cat", mode=mode, k=50, dedupe=False, min_score=0.0) == [
                r for r in every if r.score >= 0
            ]
            assert ix.search("Meer Soldaten cat", mode=mode, min_score=999.0) == []
    result = CliRunner().invoke(
        app, ["query", "Meer", "--index", str(built), "--mode", "keyword", "--min-score", "999"]
    )
    assert result.exit_code == 0  # not an error: it says so
    assert "no passages match 'Meer' in keyword mode with a score of 999 or more" in result.output


def test_cutoff_auto_drops_below_the_calibrated_score(
    built: Path, fake_encoder: FakeEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import search.params

    for name in ("AUTO_CUTOFF", "KEYWORD_QUERY_CUTOFF"):  # fused hybrid scores, from benchmarks/results/cutoff.json
        assert 0 < getattr(search.params, name) < 1
    monkeypatch.setattr(search.params, "AUTO_CUTOFF", 0.5)
    monkeypatch.setattr(search.params, "KEYWORD_QUERY_CUTOFF", 0.4)  # a keyword query has its own
    with Index.open(built, encoder=fake_encoder) as ix:
        # "Meer" is a Dutch stopword, so "Meer Soldaten cat" is no keyword query; "Soldaten cat" is one
        for query, floor in (("Soldaten cat", 0.4), ("Where are the Meer Soldaten and the cat?", 0.5)):
            assert keyword_query(query) is (floor == 0.4)
            every = ix.search(query, k=50, dedupe=False)
            cut = ix.search(query, k=50, dedupe=False, cutoff="auto")
            assert cut == [r for r in every if r.score >= floor] and 0 < len(cut) < len(every), query
            assert ix.search(query, k=50, dedupe=False, cutoff="auto", min_score=0.9) == [
                r for r in every if r.score >= 0.9
            ]
            assert ix.search(query, k=50, dedupe=False, cutoff="none") == every  # never cut unasked
    for mode, fusion in (("keyword", "convex"), ("semantic", "convex"), ("hybrid", "rrf")):
        args = ["query", "Meer", "--index", str(built), "--mode", mode, "--fusion", fusion, "--cutoff", "auto"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines() == [
            "error: cutoff auto is calibrated for hybrid mode with convex fusion only; set a min-score instead"
        ]


def test_every_document_id_is_reachable_through_the_api_by_parameter(tmp_path: Path) -> None:
    """In the path, an id ending in "/similar" is taken by the similar route, and a browser drops a ".."
    segment; ``?doc_id=`` (what the page uses) reaches every id."""
    ids = ["notes/similar", "notes", "a/../b", "..", "über uns?#1 & more"]
    lines = [json.dumps({"_id": i, "text": f"Text number {n} is about a cat and a fish."}) for n, i in enumerate(ids)]
    (tmp_path / "c.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    enc = FakeEncoder(["cat", "dog", "fish"])
    build_index(tmp_path / "c.jsonl", tmp_path / "idx", encoder=enc)
    holder = IndexHolder(tmp_path / "idx", encoder=enc)
    try:
        client = TestClient(create_app(holder))
        for n, doc_id in enumerate(ids):
            doc = client.get("/api/document", params={"doc_id": doc_id, "q": "cat"})
            assert doc.status_code == 200 and doc.json()["id"] == doc_id, doc.text
            assert doc.json()["text"].startswith(f"Text number {n} ") and doc.json()["passages"]
            similar = client.get("/api/similar", params={"doc_id": doc_id, "k": 10})
            assert similar.status_code == 200 and similar.json()["query"] == doc_id
            assert sorted(r["doc"] for r in similar.json()["results"]) == sorted(set(ids) - {doc_id})
        # the path routes cannot tell these apart: the document "notes/similar" is the similar route of "notes"
        assert client.get("/api/documents/notes/similar").json()["query"] == "notes"
        missing = client.get("/api/document", params={"doc_id": "nope"})
        assert missing.status_code == 404 and missing.json() == {"error": "no document 'nope' in the index"}
        assert client.get("/api/similar").status_code == 422  # doc_id is required
    finally:
        holder.close()
