"""Pages of results (``offset``) and the documents feedback moved the query to (issue 16)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search import Index, build_index
from search.cli import app

from .conftest import FakeEncoder

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
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "1-cats.txt").write_text("The cat sleeps. Cats purr all day. Every cat likes fish.\n", encoding="utf-8")
    (corpus / "2-mixed.txt").write_text("The cat sleeps. Dogs bark loudly. A dog runs home.\n", encoding="utf-8")
    (corpus / "3-dogs.txt").write_text("Dogs bark. The dog runs. A dog sleeps.\n", encoding="utf-8")
    enc = FakeEncoder(["cat", "dog", "fish"])
    build_index(corpus, tmp_path / "idx", encoder=enc)
    with Index.open(tmp_path / "idx", encoder=enc) as ix:
        for q in ("cat fish", "dog bark"):
            first = [r.doc for r in ix.search(q, feedback=0, k=10, dedupe=False)]
            best = list(dict.fromkeys(first))  # the first ranking's documents, best first
            assert ix.page(q).feedback_docs == tuple(best[:1])
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
