"""Property-based tests of the query path: any text, any operator soup, every mode and option."""

from __future__ import annotations

import itertools
import json
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from search import Index, build_index
from search.cli import app
from search.errors import QueryError
from search.parsing import looks_like_syntax
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


# Words each a sentence of the index holds, and no language's stoplist (parse_query drops a
# word that is a stopword in any language in play), with a piece of that sentence.
FOUND = {
    "cat": "The cat sleeps", "sofa": "The cat sleeps", "postman": "A dog barks", "barks": "A dog barks",
    "Soldaten": "Die Soldaten stehen", "Truppen": "schickt Truppen", "Großbritannien": "Großbritannien schickt",
    "Grossbritannien": "Großbritannien schickt",
}  # fmt: skip


def is_blank(q: str) -> bool:
    """The README's rule, written out here: only spaces and control characters (Unicode C*, Z*) is empty."""
    return all(unicodedata.category(c)[0] in "CZ" for c in q)


def syntax_in_use(q: str, syntax: str) -> bool:
    cleaned = " ".join("".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in q).split())
    return syntax == "on" or (syntax == "auto" and looks_like_syntax(cleaned))


def allowed_refusal(q: str, syntax: str, message: str) -> bool:
    """A query may be refused when it is empty, or when it is query syntax whoosh cannot parse."""
    if is_blank(q):
        return message.startswith("empty query")
    return syntax_in_use(q, syntax) and message.startswith("cannot parse query syntax")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    q=queries,
    mode=st.sampled_from(MODES),
    syntax=st.sampled_from(["auto", "on", "off"]),
    fusion=st.sampled_from(["convex", "rrf"]),
)
def test_any_query_is_answered_unless_empty_or_unparsable(
    ix: Index, q: str, mode: str, syntax: str, fusion: str
) -> None:
    try:
        results = ix.search(q, mode=mode, syntax=syntax, fusion=fusion, k=5)
    except QueryError as exc:
        assert allowed_refusal(q, syntax, str(exc)), f"{q!r} refused: {exc}"
        assert "\n" not in str(exc)
        return
    assert not is_blank(q), f"{q!r} holds no word but was answered"
    if mode != "keyword":  # the semantic side ranks every sentence: a non-empty query always gets results
        assert 1 <= len(results) <= 5
    for r in results:
        doc = next(d for d in ix.documents if d.id == r.doc)
        assert doc.text[r.start : r.end] == r.passage
        assert all(0 <= s < e <= len(r.passage) for s, e in r.highlights)
        json.dumps(r.to_json())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=queries, word=st.sampled_from(sorted(FOUND)), after=queries, mode=st.sampled_from(MODES))
def test_a_query_holding_an_indexed_word_finds_its_sentence(
    ix: Index, before: str, word: str, after: str, mode: str
) -> None:
    # whatever surrounds it, a plain-word query is OR-ed: the word's sentence is found, by keyword too
    results = ix.search(f"{before} {word} {after}", mode=mode, syntax="off", k=5)
    assert any(FOUND[word] in r.passage for r in results), [r.passage for r in results]
    if mode == "keyword":
        assert all(r.keyword_score and r.keyword_score > 0 and r.highlights for r in results)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    q=queries,
    word=st.none() | st.sampled_from(sorted(FOUND)),
    syntax=st.sampled_from(["auto", "on", "off"]),
    as_json=st.booleans(),
)
def test_cli_answers_every_query_but_empty_or_unparsable_ones(
    index_dir: Path, q: str, word: str | None, syntax: str, as_json: bool
) -> None:
    text = q if word is None else f"{q} {word}"
    args = ["query", "--index", str(index_dir), "--mode", "keyword", "--syntax", syntax]
    # "--" ends the options, so a query such as "-0" or "--x" is text, as in any command line tool
    result = CliRunner().invoke(app, [*args, *(["--json"] if as_json else []), "--", text])
    if result.exit_code:
        assert result.exit_code == QueryError.exit_code, result.output
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and "Traceback" not in result.output
        assert allowed_refusal(text, syntax, line.removeprefix("error: ")), f"{text!r} refused: {line}"
        return
    assert not is_blank(text), f"{text!r} holds no word but was answered"
    if as_json:
        found = json.loads(result.stdout)["results"]
        assert isinstance(found, list)
        if word is not None and syntax == "off":
            assert any(FOUND[word] in r["passage"] for r in found), found
    elif word is not None and syntax == "off":
        assert FOUND[word] in " ".join(result.stdout.split())


@pytest.mark.parametrize(("word", "sentence"), [("dog", "A dog barks"), ("Meer", "Die Soldaten stehen am Meer")])
def test_an_indexed_word_that_is_a_foreign_stopword_is_found(ix: Index, word: str, sentence: str) -> None:
    assert any(sentence in r.passage for r in ix.search(word, mode="keyword"))


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
