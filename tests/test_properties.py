"""Property-based tests of the query path: any text, any operator soup, every mode and option."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from search import Index, build_index
from search.cli import app
from search.errors import QueryError, SearchError
from search.searcher import MAX_QUERY_CHARS

from .conftest import FakeEncoder

VOCAB = ["cat", "dog", "ocean", "sea", "mountain", "truppen", "soldaten"]
OPERATORS = [
    "AND", "OR", "NOT", "ANDNOT", "TO", '"', "(", ")", "[", "]", "{", "}", ":", "~", "~2", "*", "?", "^", "^2",
    "+", "-", "\\", "/", "text:", "title:", "doc:", "chunk:", "<", ">", "'", "„", "“", "\x00", "\x07", "\u200b",
    "\ud800", "\udcff", "\n", "\t", "Soldaten", "Truppen", "cat", "ß", "Ä", "z. B.", "15.", "30.000", "🙂",
]  # fmt: skip
soup = st.lists(st.one_of(st.sampled_from(OPERATORS), st.text(max_size=8)), max_size=12).map(
    lambda parts: " ".join(parts) if len(parts) % 2 else "".join(parts)
)
queries = st.one_of(st.text(max_size=60), soup)
MODES = ["keyword", "semantic", "hybrid"]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    corpus = tmp_path_factory.mktemp("corpus")
    (corpus / "a.txt").write_text("The cat sleeps on the sofa. A dog barks at the postman.\n", encoding="utf-8")
    (corpus / "b.md").write_text("# Meer\n\nDie Soldaten stehen am Meer. Großbritannien schickt Truppen.\n")
    folder = tmp_path_factory.mktemp("idx") / "idx"
    build_index(corpus, folder, encoder=FakeEncoder(VOCAB))
    return folder


@pytest.fixture(scope="module")
def ix(index_dir: Path):  # type: ignore[no-untyped-def]
    with Index.open(index_dir, encoder=FakeEncoder(VOCAB)) as opened:
        yield opened


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    q=queries,
    mode=st.sampled_from(MODES),
    syntax=st.sampled_from(["auto", "on", "off"]),
    fusion=st.sampled_from(["convex", "rrf"]),
)
def test_any_query_raises_only_our_errors(ix: Index, q: str, mode: str, syntax: str, fusion: str) -> None:
    try:
        results = ix.search(q, mode=mode, syntax=syntax, fusion=fusion, k=5)
    except SearchError as exc:
        assert isinstance(exc, QueryError), exc  # the only error a query text can cause
        assert "\n" not in str(exc)
        return
    for r in results:
        doc = next(d for d in ix.documents if d.id == r.doc)
        assert doc.text[r.start : r.end] == r.passage
        assert all(0 <= s < e <= len(r.passage) for s, e in r.highlights)
        json.dumps(r.to_json())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries, syntax=st.sampled_from(["auto", "on", "off"]), as_json=st.booleans())
def test_cli_exit_code_is_zero_or_the_query_error(index_dir: Path, q: str, syntax: str, as_json: bool) -> None:
    args = ["query", "--index", str(index_dir), "--mode", "keyword", "--syntax", syntax]
    # "--" ends the options, so a query such as "-0" or "--x" is text, as in any command line tool
    result = CliRunner().invoke(app, [*args, *(["--json"] if as_json else []), "--", q])
    assert result.exit_code in (0, QueryError.exit_code), result.output
    if result.exit_code == 0 and as_json:
        assert isinstance(json.loads(result.stdout)["results"], list)
    if result.exit_code:
        assert result.output.count("\n") <= 3 and "Traceback" not in result.output


def test_long_and_empty_queries(ix: Index) -> None:
    assert ix.search("cat " * (MAX_QUERY_CHARS // 4), mode="hybrid")  # at the limit: answered
    for bad in ("x" * (MAX_QUERY_CHARS + 1), "", "   ", "\x00\x07\u200b"):
        with pytest.raises(QueryError):
            ix.search(bad)


@pytest.mark.parametrize(
    "mode,fusion,syntax,dedupe,window",
    list(itertools.product(MODES, ["convex", "rrf"], ["auto", "on", "off"], [True, False], [0, 2])),
)
def test_every_option_combination(ix: Index, mode: str, fusion: str, syntax: str, dedupe: bool, window: int) -> None:
    results = ix.search(
        "Soldaten cat", mode=mode, fusion=fusion, syntax=syntax, dedupe=dedupe, window=window, k=3, candidates=2
    )
    assert 1 <= len(results) <= 3
    assert [r.rank for r in results] == list(range(1, len(results) + 1))
    assert all(results[i].score >= results[i + 1].score for i in range(len(results) - 1))


def test_json_output_with_a_lone_surrogate_in_the_query(index_dir: Path) -> None:
    # what Python makes of undecodable bytes in argv; found by the property test above
    result = CliRunner().invoke(
        app, ["query", "--index", str(index_dir), "--mode", "keyword", "--json", "--", "cat\udcff"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["query"] == "cat\ufffd"
