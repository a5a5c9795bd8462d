"""Issue 14: filters applied on both sides before candidates are taken, and facets over the whole match set;
each expectation below is counted by hand from the corpus the test writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from search import build_index
from search.cli import app
from search.errors import SearchError
from search.filters import Filters
from search.index import Index
from search.params import SearchParams
from search.serve import IndexHolder, create_app

from .conftest import FakeEncoder

runner = CliRunner()
ENCODER = FakeEncoder(["cat", "tiger", "ocean"])


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """50 documents under out/ that outrank the 6 under in/ for "cat"; one keyword-only and one
    semantic-only match on each side ("zebra" is no dimension of the fake model; "sabretigers" holds
    "tiger" for the model but is another word for the keyword side, and its files' names, which are
    their titles, hold neither)."""
    root = tmp_path_factory.mktemp("filters")
    corpus = root / "corpus"
    (corpus / "out").mkdir(parents=True)
    (corpus / "in" / "deep").mkdir(parents=True)
    for i in range(50):
        (corpus / "out" / f"o{i:02}.txt").write_text(f"Cat cat cat number {i}.", encoding="utf-8")
    for i in range(5):
        (corpus / "in" / f"i{i}.txt").write_text(f"A cat sat by the ocean, {i}.", encoding="utf-8")
    (corpus / "in" / "deep" / "d.md").write_text("# Deep\n\nOne cat below the ocean.", encoding="utf-8")
    (corpus / "in" / "zebra.txt").write_text("A zebra runs.", encoding="utf-8")
    (corpus / "out" / "zebra.txt").write_text("Zebra zebra zebra runs.", encoding="utf-8")
    (corpus / "in" / "sabre.txt").write_text("Sabretigers roam.", encoding="utf-8")
    (corpus / "out" / "sabre.txt").write_text("Sabretigers sleep.", encoding="utf-8")
    build_index(corpus, root / "idx", encoder=ENCODER)
    return root


@pytest.mark.parametrize("mode", ["keyword", "semantic", "hybrid"])
def test_k_results_under_a_restrictive_filter_and_none_outside(folders: Path, mode: str) -> None:
    with Index.open(folders / "idx", encoder=ENCODER) as ix:
        unfiltered = ix.search("cat", mode=mode, k=6, candidates=20)
        assert all(r.doc.startswith("out/") for r in unfiltered)  # the filter has work to do
        results = ix.search("cat", mode=mode, k=6, candidates=20, filters=Filters.parse(path=["in/**"]))
    assert sorted(r.doc for r in results) == ["in/deep/d.md", *(f"in/i{i}.txt" for i in range(5))]


def test_a_keyword_only_and_a_semantic_only_match_respect_the_filter(folders: Path) -> None:
    inside = Filters.parse(path=["in/**"])
    with Index.open(folders / "idx", encoder=ENCODER) as ix:
        for mode in ("keyword", "hybrid"):
            assert [r.doc for r in ix.search("zebra", mode=mode, k=1)] == ["out/zebra.txt"]
            assert [r.doc for r in ix.search("zebra", mode=mode, k=1, filters=inside)] == ["in/zebra.txt"]
        (top,) = ix.search("tiger", mode="semantic", k=1, filters=inside)
        assert top.doc == "in/sabre.txt" and not ix.search("tiger", mode="keyword", filters=inside)
        hybrid = ix.search("tiger", mode="hybrid", k=10, filters=inside)
        assert hybrid[0].doc == "in/sabre.txt" and all(r.doc.startswith("in/") for r in hybrid)


def test_globs_where_and_dates(folders: Path) -> None:
    with Index.open(folders / "idx", encoder=ENCODER) as ix:

        def docs(**filters: object) -> set[str]:
            params = SearchParams(mode="keyword", k=100, filters=filters)
            return {r.doc for r in ix.search("cat", params)}

        assert docs(path="in/*.txt") == {f"in/i{i}.txt" for i in range(5)}  # * stays in its folder
        assert docs(path="in/**") == docs(path="in/*.txt") | {"in/deep/d.md"}
        assert docs(where=["type=md"]) == {"in/deep/d.md"}
        assert docs(where=["type=md", "type=TXT"]) == docs(path="**")  # values of one field: OR
        assert docs(where={"type": "txt", "folder": "in"}) == docs(path="in/*.txt")  # fields: AND
        assert docs(where=["folder=in/deep"]) == {"in/deep/d.md"}
        assert len(docs()) == 56
        assert len(docs(after="2000-01-01")) == 56 and docs(before="2000-01-01") == set()  # the files' mtimes


def test_dates_of_documents_at_the_boundaries(tmp_path: Path) -> None:
    corpus = tmp_path / "c.jsonl"
    dates = {"a": "2024-03-14", "b": "2024-03-15", "c": "2024-03-15T23:59:59Z", "d": "2024-03-16"}
    lines = [
        {"_id": k, "text": f"The cat {k}.", "meta": {"date": v, "team": "x" if k < "c" else "y"}}
        for k, v in dates.items()
    ]
    lines.append({"_id": "e", "text": "The cat without a team.", "meta": {"year_note": 1}})
    # a date that exists where it was written but not in UTC (after 9999-12-31): as good as none
    lines.append({"_id": "f", "text": "The cat at the end of time.", "meta": {"date": "9999-12-31T23:00:00-05:00"}})
    corpus.write_text("\n".join(json.dumps(x) for x in lines), encoding="utf-8")
    build_index(corpus, tmp_path / "idx", encoder=ENCODER)
    with Index.open(tmp_path / "idx", encoder=ENCODER) as ix:

        def docs(**filters: object) -> list[str]:
            return sorted(r.doc for r in ix.search("cat", SearchParams(mode="keyword", filters=filters)))

        assert docs(after="2024-03-15") == ["b", "c", "d", "e"]  # e has no date of its own: the file's mtime, now
        assert docs(after="2024-03-15", before="2024-03-16") == ["b", "c"]  # after: on or after; before: before
        assert docs(before="2024-03-15") == ["a"]
        assert docs(after="2024-03-15T12:00") == ["c", "d", "e"]
        assert docs(where=["year=2024"]) == ["a", "b", "c", "d"]
        assert docs(where=["team=x"]) == ["a", "b"] and docs(where=["team=y"]) == ["c", "d"]
        assert docs(where=["team=x"], before="2024-03-15") == ["a"]
        with pytest.raises(SearchError, match="unknown field 'colour'"):
            docs(where=["colour=red"])
        with pytest.raises(SearchError, match=r"^after takes a date"):
            docs(after="15.03.2024")
        assert "f" not in docs(after="2024-03-15") + docs(before="2024-03-15")
        for edge in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00+01:00"):  # valid ISO 8601, not in UTC
            with pytest.raises(SearchError, match=r"^before takes a date"):
                docs(before=edge)


def test_facets_count_the_whole_match_set_not_the_page(folders: Path) -> None:
    with Index.open(folders / "idx", encoder=ENCODER) as ix:
        page = ix.page("cat", SearchParams(mode="keyword", k=1, facets=("type", "folder", "lang")))
        assert len(page.results) == 1
        assert page.facets == {"type": {"txt": 55, "md": 1}, "folder": {"out": 50, "in": 5, "in/deep": 1},
                               "lang": {"en": 56}}  # fmt: skip
        with pytest.raises(SearchError, match="unknown facet field 'colour'; this index has: date, folder, lang,"):
            ix.page("cat", SearchParams(mode="keyword", facets=("type", "colour")))  # as --where refuses it
        filtered = ix.page("cat", SearchParams(mode="keyword", k=1, facets=("folder",), filters={"path": "in/**"}))
        assert filtered.facets == {"folder": {"in": 5, "in/deep": 1}}


def test_cli_where_path_facets_and_bad_filters(folders: Path) -> None:
    idx = str(folders / "idx")
    args = ["query", "cat", "--index", idx, "--mode", "keyword", "--json", "-k", "3"]
    result = runner.invoke(app, [*args, "--path", "in/**", "--where", "type=txt", "--facets", "type,folder"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {r["doc"] for r in payload["results"]} <= {f"in/i{i}.txt" for i in range(5)}
    assert len(payload["results"]) == 3 and payload["facets"] == {"type": {"txt": 5}, "folder": {"in": 5}}
    for bad, message in (
        (["--where", "colour=red"], "unknown field 'colour' in where"),
        (["--where", "colour"], "error: where takes FIELD=VALUE"),
        (["--after", "gestern"], "error: after takes a date like 2024-03-15"),
    ):
        result = runner.invoke(app, [*args, *bad])
        assert result.exit_code == 1, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_api_filters_and_facets(folders: Path) -> None:
    holder = IndexHolder(folders / "idx", encoder=ENCODER)
    with TestClient(create_app(holder)) as client:
        r = client.get("/api/search", params={"q": "zebra", "mode": "keyword", "path": "in/**", "facets": "type"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [x["doc"] for x in body["results"]] == ["in/zebra.txt"] and body["facets"] == {"type": {"txt": 1}}
        r = client.get(
            "/api/search", params={"q": "cat", "mode": "keyword", "where": ["type=md", "type=txt"], "k": 100}
        )
        assert r.status_code == 200 and len(r.json()["results"]) == 56
        r = client.get("/api/search", params={"q": "cat", "where": "colour=red", "mode": "keyword"})
        assert r.status_code == 400 and "unknown field 'colour'" in r.json()["error"]
    holder.close()
