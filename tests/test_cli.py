"""The command line, driven through typer's test runner (and once as ``python -m search``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search.cli import app

from .conftest import EXAMPLE, ROOT, assert_result_json

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli") / "default"
    corpus = tmp_path_factory.mktemp("corpus")
    (corpus / EXAMPLE.name).write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    (corpus / "broken.txt").write_bytes(b"\x00\x00binary")
    result = runner.invoke(app, ["index", str(corpus), "--index", str(folder)])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "broken.txt" in result.output
    assert "indexed 1 document, 39 sentences" in result.output
    return folder


@pytest.mark.model
def test_query_prints_passages_with_both_scores(cli_index: Path) -> None:
    result = runner.invoke(
        app, ["query", "Wer will britische Soldaten in die Ukraine schicken?", "--index", str(cli_index), "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "koalition-der-willigen.txt" in result.output
    assert "keyword" in result.output and "semantic" in result.output
    assert "britische Truppen in der Ukraine" in result.output


@pytest.mark.model
def test_query_json_shape(cli_index: Path) -> None:
    query = '"Koalition der Willigen" AND Healey'
    result = runner.invoke(app, ["query", query, "--mode", "keyword", "--json", "--index", str(cli_index)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["query"] == query and payload["mode"] == "keyword"
    first = payload["results"][0]
    assert_result_json(first, EXAMPLE.read_text(encoding="utf-8"))
    assert first["scores"]["semantic"] is None and first["scores"]["keyword"] > 0
    marked = {first["passage"][s:e] for s, e in first["highlights"]}
    assert {"Koalition", "Willigen", "Healey"} <= marked


@pytest.mark.model
def test_semantic_mode_english_query(cli_index: Path) -> None:
    result = runner.invoke(
        app,
        [
            "query",
            "nuclear cooperation between France and Britain",
            "--mode",
            "semantic",
            "-k",
            "3",
            "--json",
            "--index",
            str(cli_index),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads(result.stdout)["results"]
    assert len(results) == 3
    assert all(r["scores"]["keyword"] is None and r["evidence"]["sentence"] for r in results)
    assert any("atomare Zusammenarbeit" in r["passage"] for r in results)


@pytest.mark.model
def test_hybrid_options(cli_index: Path) -> None:
    for extra in (
        ["--fusion", "rrf"],
        ["--fusion", "convex", "--alpha", "0.3"],
        ["--window", "0"],
        ["--syntax", "off"],
        ["--feedback", "0"],
        ["--feedback", "2", "--feedback-weight", "1.5", "--doc-weight", "1"],
    ):
        result = runner.invoke(app, ["query", "Truppen", "--json", "--index", str(cli_index), *extra])
        assert result.exit_code == 0, (extra, result.output)
        assert json.loads(result.stdout)["results"], extra


@pytest.mark.model
def test_info(cli_index: Path) -> None:
    result = runner.invoke(app, ["info", "--index", str(cli_index)])
    assert result.exit_code == 0, result.output
    for word in ("documents", "sentences", "multilingual-e5-small", "snowball", "size"):
        assert word in result.output
    data = json.loads(runner.invoke(app, ["info", "--json", "--index", str(cli_index)]).stdout)
    assert data["counts"] == {"documents": 1, "chunks": 39, "skipped": 1}


@pytest.mark.model
def test_model_mismatch_exit_code(cli_index: Path) -> None:
    result = runner.invoke(app, ["query", "Truppen", "--model", "all-MiniLM-L6-v2", "--index", str(cli_index)])
    assert result.exit_code == 4
    assert "built with model 'multilingual-e5-small'" in result.output
    assert "Traceback" not in result.output


def test_errors_are_one_line_with_exit_codes(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["query", "x", "--index", str(tmp_path / "none")])
    assert missing.exit_code == 3 and "no index" in missing.output
    assert len(missing.output.strip().splitlines()) == 1
    no_corpus = runner.invoke(app, ["index", str(tmp_path / "nothing"), "--index", str(tmp_path / "i")])
    assert no_corpus.exit_code == 2 and "not found" in no_corpus.output
    bad_mode = runner.invoke(app, ["query", "x", "--mode", "fuzzy"])
    assert bad_mode.exit_code == 2
    for flag in ("--min-score", "--alpha"):  # nan passes no bound, so the message once named the wrong one
        not_a_number = runner.invoke(app, ["query", "x", flag, "nan"])
        assert not_a_number.exit_code == 2 and "Input should be a finite number" in not_a_number.output
    for flag, value, bound in (("--alpha", "2", "less than or equal to 1"), ("-k", "0", "greater than or equal to 1")):
        out_of_range = runner.invoke(app, ["query", "x", flag, value])
        assert out_of_range.exit_code == 2 and f"Input should be {bound}" in out_of_range.output
    bad_lang = runner.invoke(app, ["index", str(EXAMPLE), "--lang", "xx", "--index", str(tmp_path / "j")])
    assert bad_lang.exit_code == 1 and "unsupported language 'xx'; choose one of: auto, da, de," in bad_lang.output


@pytest.mark.model
def test_empty_query_exit_code(cli_index: Path) -> None:
    result = runner.invoke(app, ["query", "   ", "--index", str(cli_index)])
    assert result.exit_code == 5 and "empty query" in result.output


def test_help_explains_every_option() -> None:
    commands = ("index", "query", "info", "eval", "serve", "similar", "remove", "compact")
    for cmd in (["--help"], *([c, "--help"] for c in commands)):
        result = runner.invoke(app, cmd)
        assert result.exit_code == 0
        # every option's value reads as a word (<float>), not as the type behind it; no markup eaten
        assert "typing." not in result.output and "Annotated" not in result.output, cmd
        assert "-e '.'" not in result.output, cmd
    query_help = runner.invoke(app, ["query", "--help"]).output
    for option in ("--index", "--mode", "--fusion", "--alpha", "--json", "--window", "--syntax", "--model"):
        assert option in query_help


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "search", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and "index" in proc.stdout and "query" in proc.stdout


def test_an_error_message_is_printed_as_text_not_markup(tmp_path: Path) -> None:
    """Brackets in user input reach the error line as written (rich would read "[red]" as a style)."""
    result = runner.invoke(app, ["query", "x", "--index", str(tmp_path / "[red]nothing")])
    assert result.exit_code == 3
    assert "[red]nothing" in result.output


def test_an_unknown_metric_is_refused_before_anything_is_indexed(tmp_path: Path) -> None:
    beir = tmp_path / "tiny"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text('{"_id": "d1", "text": "The cat sleeps."}\n')
    (beir / "queries.jsonl").write_text('{"_id": "q1", "text": "cat"}\n')
    (beir / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    cache = tmp_path / "cache"
    result = runner.invoke(
        app, ["eval", str(beir), "--metrics", "ndcg@10,[b]bogus"], env={"SEARCH_CACHE_DIR": str(cache)}
    )
    assert result.exit_code == 1
    assert "unknown metric '[b]bogus'" in result.output
    assert not (cache / "eval").exists()  # refused before the corpus was indexed
