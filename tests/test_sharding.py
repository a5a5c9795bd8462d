"""A sharded index answers exactly as one index over the same corpus (issue 15, items 2 and 3).

The real model embeds xquad-de once: :class:`SameBatches` remembers each ``encode_passages`` call by
its texts, which is what a sharded build guarantees (one global call with the batches a one-machine
build runs), so every build here gets the vectors one model run gave. Each test compares documents,
offsets and order exactly, and scores within 1e-6.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from search import Index, build_index, open_index
from search.cli import app
from search.errors import IndexFormatError, SearchError
from search.evaluate import load_beir
from search.fanout import LocalFanout, ShardSides
from search.generation import write_generation
from search.sharding import build_sharded
from search.shards import SHARDS, GlobalStats, ShardsManifest, shard_name, shard_of
from search.store import MANIFEST

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "xquad-de"
EXAMPLE = Path(__file__).resolve().parents[1] / "corpus"
QUESTIONS = Path(__file__).resolve().parents[1] / "queries" / "koalition.jsonl"
SYNTAX = ['"im Jahr"', "Stadt AND (Universität OR Krieg)", "Stadt NOT Krieg", "stadt*", "Krieg~", "Fluss OR Rhein"]
SYNTAX += ["*", "NOT Stadt", "doc:*"]  # every match scores alike: the k kept are the lowest ids, as in one index
MODES: list[dict[str, Any]] = [
    {"mode": "keyword"},
    {"mode": "semantic"},
    {"mode": "hybrid"},  # the default fusion (convex) with feedback on
    {"mode": "hybrid", "fusion": "rrf"},
    {"mode": "hybrid", "feedback": 0},
]


class SameBatches:
    """The real encoder, each passage call computed once: the same texts in one call give the same batches."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.name, self.fingerprint, self.dim = encoder.name, encoder.fingerprint, encoder.dim
        self.memo: dict[tuple[str, ...], np.ndarray] = {}
        self.calls = 0

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.encoder.encode_queries(texts)

    def openings(self, texts: Sequence[str], max_tokens: int) -> list[str]:
        return self.encoder.openings(texts, max_tokens)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.calls += 1
        key = tuple(texts)
        if key not in self.memo:
            self.memo[key] = self.encoder.encode_passages(list(texts))
        return self.memo[key].copy()


@pytest.fixture(scope="module")
def encoder(real_encoder: Any) -> SameBatches:
    return SameBatches(real_encoder)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """xquad-de's 240 paragraphs, as a JSONL file."""
    folder = tmp_path_factory.mktemp("xquad")
    shutil.copy(DATA / "corpus.jsonl", folder / "corpus.jsonl")
    return folder


@pytest.fixture(scope="module")
def one(tmp_path_factory: pytest.TempPathFactory, corpus: Path, encoder: SameBatches) -> Path:
    folder = tmp_path_factory.mktemp("one") / "ix"
    build_index(corpus, folder, encoder=encoder)
    return folder


def _queries() -> list[str]:
    judged = load_beir(DATA)
    return [judged.queries[q] for q in sorted(judged.queries)[:25]]


def same_results(a: Index, b: Index, query: str, **params: Any) -> None:
    ra, rb = a.search(query, k=10, **params), b.search(query, k=10, **params)
    assert [(r.doc, r.start, r.end) for r in ra] == [(r.doc, r.start, r.end) for r in rb], (query, params)
    for x, y in zip(ra, rb, strict=True):
        assert x.score == pytest.approx(y.score, abs=1e-6), (query, params, x.doc)
        assert x.highlights == y.highlights, (query, params)
        ex, ey = x.evidence, y.evidence
        assert (ex.terms, ex.sentence) == (ey.terms, ey.sentence), (query, params)
        assert (ex.similarity is None) == (ey.similarity is None)
        if ex.similarity is not None:  # a cosine summed over another number of rows: within 1e-6
            assert ex.similarity == pytest.approx(ey.similarity, abs=1e-6)


@pytest.mark.parametrize("shards", [1, 2, 3])
def test_sharded_equals_one_index(tmp_path: Path, corpus: Path, one: Path, encoder: SameBatches, shards: int) -> None:
    folder = tmp_path / "sharded"
    report = build_sharded(corpus, folder, shards, encoder=encoder)
    assert report.documents == 240 and report.committed
    manifest = ShardsManifest.read(folder)
    assert len(manifest.shards) == shards and manifest.documents == 240
    with Index.open(one, encoder=encoder) as a, open_index(folder, encoder=encoder) as b:
        assert b.manifest.counts == a.manifest.counts
        assert sorted(b.chunks.ids.tolist()) == sorted(a.chunks.ids.tolist())  # the global plan's ids
        for shard, m in zip(b.shards, manifest.shards, strict=True):  # type: ignore[attr-defined]
            assert all(shard_of(d.id, shards) == b.shards.index(shard) for d in shard.documents)
            assert shard.manifest.generation == m.generation
        for query in _queries():
            for params in MODES:
                same_results(a, b, query, **params)


def test_one_shard_on_the_judged_questions(tmp_path: Path, encoder: SameBatches) -> None:
    """The example article's 35 judged questions: one document fits one shard only."""
    build_index(EXAMPLE, tmp_path / "one", encoder=encoder)
    build_sharded(EXAMPLE, tmp_path / "sharded", 1, encoder=encoder)
    questions = [json.loads(line)["text"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines() if line]
    assert len(questions) >= 35
    with Index.open(tmp_path / "one", encoder=encoder) as a, open_index(tmp_path / "sharded", encoder=encoder) as b:
        for query in questions:
            for params in MODES:
                same_results(a, b, query, **params)


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory, corpus: Path, encoder: SameBatches) -> Path:
    folder = tmp_path_factory.mktemp("two") / "ix"
    build_sharded(corpus, folder, 2, encoder=encoder)
    return folder


def test_query_syntax_scores_with_global_statistics(one: Path, two: Path, encoder: SameBatches) -> None:
    """Phrases, boolean operators, fields, wildcards and fuzzy terms: each shard scores them over its matrices
    with the statistics of all shards together, as one index would."""
    with Index.open(one, encoder=encoder) as a, open_index(two, encoder=encoder) as b:
        for query in SYNTAX:  # syntax on: a trailing * is a wildcard only then (auto reads it as a plain word)
            assert a.search(query, mode="keyword", syntax="on"), query
            for params in MODES:
                same_results(a, b, query, syntax="on", **params)


class _OverANetwork(LocalFanout):
    """The shards asked as `search serve --ray` asks them (each call a round trip): a query's
    candidates come in one call per shard and are merged (search/candidates.py merge_parts)."""

    def __init__(self, folder: Path, sharded: ShardsManifest) -> None:
        stats = GlobalStats.load(folder / sharded.stats)
        super().__init__([ShardSides(Index(folder / shard_name(i), m), stats) for i, m in enumerate(sharded.shards)])
        self.local = False
        self.rounds = 0

    def ask(self, side: str, method: str, calls: dict[int, tuple[Any, ...]]) -> dict[int, Any]:
        self.rounds += 1
        return super().ask(side, method, calls)

    def close(self) -> None:
        for s in self.shards:
            s.close()


def test_one_round_per_query_equals_one_index(one: Path, two: Path, encoder: SameBatches) -> None:
    """The one-round candidates a router gathers from shards elsewhere: the same results in one call per
    shard, plain words and query syntax alike (the shards score both with the global statistics)."""
    with Index.open(one, encoder=encoder) as a, open_index(two, encoder=encoder, remote=_OverANetwork) as b:
        fanout = b.fanout  # type: ignore[attr-defined]
        assert isinstance(fanout, _OverANetwork) and all(s.keyword is None for s in b.shards)  # type: ignore[attr-defined]
        for query in _queries()[:12]:
            for params in MODES:
                before = fanout.rounds
                same_results(a, b, query, **params)
                if not params.get("explain"):
                    assert fanout.rounds - before == 1, (query, params)
        for query in SYNTAX:
            for params in MODES:
                before = fanout.rounds
                same_results(a, b, query, syntax="on", **params)
                if not params.get("explain"):
                    assert fanout.rounds - before == 1, (query, params)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_word_queries(one: Path, two: Path, encoder: SameBatches, data: st.DataObject) -> None:
    """Queries drawn from the collection's own words, explain and offset included."""
    with Index.open(one, encoder=encoder) as a, open_index(two, encoder=encoder) as b:
        words = sorted({w.strip(".,;:()\"'") for d in a.documents[:60] for w in d.text.split()} - {""})
        query = " ".join(data.draw(st.lists(st.sampled_from(words), min_size=1, max_size=6)))
        params = data.draw(st.sampled_from(MODES))
        offset = data.draw(st.integers(0, 5))
        same_results(a, b, query, offset=offset, **params)
        ea = a.search(query, k=3, explain=True, **params)
        eb = b.search(query, k=3, explain=True, **params)
        for x, y in zip(ea, eb, strict=True):
            assert json.dumps(x.explain, sort_keys=True) == json.dumps(y.explain, sort_keys=True) or _close(
                x.explain, y.explain
            )


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-6
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _subset(src: Path, dst: Path, keep: Callable[[int, dict[str, Any]], dict[str, Any] | None]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (src / "corpus.jsonl").read_text(encoding="utf-8").splitlines() if line]
    kept = [r for r in (keep(i, row) for i, row in enumerate(rows)) if r is not None]
    (dst / "corpus.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), "utf-8")
    return dst


def test_updates_and_prune_stay_identical(tmp_path: Path, corpus: Path, encoder: SameBatches) -> None:
    """First 150 documents, then all but a changed one and without ten (--prune): both kinds of index
    take the same steps and answer alike after each."""
    first = _subset(corpus, tmp_path / "c1", lambda i, r: r if i < 150 else None)

    def later(i: int, r: dict[str, Any]) -> dict[str, Any] | None:
        if 20 <= i < 30:
            return None
        return {**r, "text": r["text"] + " Nachtrag zur Koalition."} if i == 5 else r

    second = _subset(corpus, tmp_path / "c2", later)
    build_index(first, tmp_path / "one", encoder=encoder)
    build_sharded(first, tmp_path / "sh", 3, encoder=encoder)
    build_index(second, tmp_path / "one", encoder=encoder, prune=True)
    report = build_sharded(second, tmp_path / "sh", 3, encoder=encoder, prune=True)
    assert (report.added, report.updated, report.removed) == (90, 1, 10)
    again = build_sharded(second, tmp_path / "sh", 3, encoder=encoder)
    assert not again.committed  # nothing changed: no new generation
    with Index.open(tmp_path / "one", encoder=encoder) as a, open_index(tmp_path / "sh", encoder=encoder) as b:
        assert len(b.documents) == len(a.documents) == 230
        for query in [*_queries()[:10], "Nachtrag zur Koalition"]:
            for params in MODES:
                same_results(a, b, query, **params)


def test_a_failed_shard_write_keeps_the_previous_generation(tmp_path: Path, corpus: Path, encoder: SameBatches) -> None:
    first = _subset(corpus, tmp_path / "c1", lambda i, r: r if i < 60 else None)
    folder = tmp_path / "sh"
    build_sharded(first, folder, 2, encoder=encoder)
    before = (folder / SHARDS).read_bytes()
    calls = []

    def dies_on_second(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return write_generation(*args, **kwargs)

    with pytest.raises(OSError):
        build_sharded(corpus, folder, 2, encoder=encoder, write_shard=dies_on_second)
    assert (folder / SHARDS).read_bytes() == before
    with open_index(folder, encoder=encoder) as ix:
        assert len(ix.documents) == 60
        assert ix.search("Fluss", mode="keyword", k=3)
    for i in range(2):  # the shard that did write keeps no generation beside the named one
        gens = sorted(p.name for p in (folder / shard_name(i)).iterdir() if p.name.startswith("g"))
        assert gens == [ShardsManifest.read(folder).shards[i].generation]
    build_sharded(corpus, folder, 2, encoder=encoder)  # and the next write goes through
    with open_index(folder, encoder=encoder) as ix:
        assert len(ix.documents) == 240


def test_info_check_on_a_sharded_index(two: Path) -> None:
    from search import check_index

    checks = check_index(two)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    names = {c.name for c in checks}
    assert {"shard-000: vector ids = chunk ids", "shard-001: BM25 rows = chunk ids"} <= names
    assert "global BM25 statistics = the shards' sum" in names
    result = CliRunner().invoke(app, ["info", "--index", str(two), "--json"])
    assert result.exit_code == 0
    info = json.loads(result.output)
    assert info["counts"]["documents"] == 240 and len(info["shards"]) == 2


def test_remove_and_compact_stay_identical(tmp_path: Path, corpus: Path, encoder: SameBatches) -> None:
    build_index(corpus, tmp_path / "one", encoder=encoder)
    build_sharded(corpus, tmp_path / "sh", 3, encoder=encoder)
    gone = ["xquad-00-00", "xquad-10-01", "xquad-99-99"]
    runner = CliRunner()
    for folder in ("one", "sh"):
        result = runner.invoke(app, ["remove", *gone, "--index", str(tmp_path / folder)])
        assert result.exit_code == 0, result.output
        assert "not in the index: xquad-99-99" in result.output and "removed 2 documents" in result.output
        result = runner.invoke(app, ["compact", "--index", str(tmp_path / folder)])
        assert result.exit_code == 0 and "compacted" in result.output
    from search import check_index

    assert all(c.ok for c in check_index(tmp_path / "sh"))
    with Index.open(tmp_path / "one", encoder=encoder) as a, open_index(tmp_path / "sh", encoder=encoder) as b:
        assert len(b.documents) == len(a.documents) == 238
        assert not {"xquad-00-00", "xquad-10-01"} & {d.id for d in b.documents}
        for query in _queries()[:8]:
            for params in MODES:
                same_results(a, b, query, **params)


def test_answers_say_how_many_shards_answered(two: Path, encoder: SameBatches) -> None:
    from fastapi.testclient import TestClient

    from search.serve import IndexHolder, create_app

    holder = IndexHolder(two, encoder=encoder)
    try:
        client = TestClient(create_app(holder))
        body = client.get("/api/search", params={"q": "Universität", "k": 3}).json()
        assert body["shards"] == {"answered": 2, "total": 2} and len(body["results"]) == 3
        doc = body["results"][0]["doc"]
        similar = client.get(f"/api/documents/{doc}/similar", params={"k": 2}).json()
        assert similar["shards"] == {"answered": 2, "total": 2} and len(similar["results"]) == 2
        assert client.get(f"/api/documents/{doc}").status_code == 200
    finally:
        holder.close()
    result = CliRunner().invoke(app, ["query", "Universität", "--index", str(two), "--mode", "keyword", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["shards"] == {"answered": 2, "total": 2}


def test_a_shard_is_not_written_on_its_own(two: Path, corpus: Path, encoder: SameBatches) -> None:
    """A write to one shard's folder would commit a generation shards.json does not name: refused."""
    before = (two / SHARDS).read_bytes()
    gens = sorted(p.name for p in (two / shard_name(0)).iterdir())
    runner = CliRunner()
    for args in (["index", str(corpus)], ["remove", "xquad-00-00"], ["compact"]):
        result = runner.invoke(app, [*args, "--index", str(two / shard_name(0))])
        assert result.exit_code == 3 and "is a shard of the sharded index" in result.output, result.output
    assert (two / SHARDS).read_bytes() == before
    assert sorted(p.name for p in (two / shard_name(0)).iterdir()) == gens


def test_bad_shard_requests(tmp_path: Path, corpus: Path, encoder: SameBatches) -> None:
    few = _subset(corpus, tmp_path / "few", lambda i, r: r if i < 3 else None)
    with pytest.raises(SearchError, match="at most 3 shards"):
        build_sharded(few, tmp_path / "a", 4, encoder=encoder)
    assert not (tmp_path / "a").exists()
    with pytest.raises(SearchError, match="between 1 and"):
        build_sharded(few, tmp_path / "a", 0, encoder=encoder)
    with pytest.raises(SearchError, match="unsupported language 'xx'"):
        build_sharded(few, tmp_path / "a", 2, encoder=encoder, lang="xx")
    assert not (tmp_path / "a").exists()
    assert build_sharded(few, tmp_path / "b", 2, encoder=encoder, lang="DE").languages == {"de": 3}
    with pytest.raises(SearchError, match="has 2 shards, not 3"):
        build_sharded(few, tmp_path / "b", 3, encoder=encoder)
    build_index(few, tmp_path / "c", encoder=encoder)
    with pytest.raises(SearchError, match="unsharded"):
        build_sharded(few, tmp_path / "c", 2, encoder=encoder)


def test_a_missing_shard_generation_is_named(tmp_path: Path, corpus: Path, encoder: SameBatches) -> None:
    few = _subset(corpus, tmp_path / "few", lambda i, r: r if i < 20 else None)
    folder = tmp_path / "sh"
    build_sharded(few, folder, 2, encoder=encoder)
    gen = ShardsManifest.read(folder).shards[1].generation
    shutil.rmtree(folder / shard_name(1) / gen)
    with pytest.raises(IndexFormatError, match="shard-001"):
        open_index(folder, encoder=encoder)
    with pytest.raises(IndexFormatError, match=r"is a sharded index: open it with search\.open_index"):
        Index.open(folder, encoder=encoder)
    result = CliRunner().invoke(app, ["query", "Fluss", "--index", str(folder), "--mode", "keyword"])
    assert result.exit_code == 3 and "shard-001" in result.output
    result = CliRunner().invoke(app, ["info", "--index", str(folder), "--check"])
    assert result.exit_code == 3 and "shard-001" in result.output
    # the global manifest gone: an unsharded index written beside the shards would hide them
    (folder / SHARDS).unlink()
    with pytest.raises(IndexFormatError, match=r"holds the shards of a sharded index but no shards\.json"):
        build_index(few, folder, encoder=encoder)
    assert not (folder / MANIFEST).exists() and sorted(p.name for p in folder.glob("g*")) == []


def test_cli_shards_option(tmp_path: Path, corpus: Path) -> None:
    few = _subset(corpus, tmp_path / "few", lambda i, r: r if i < 3 else None)
    runner = CliRunner()
    result = runner.invoke(app, ["index", str(few), "--index", str(tmp_path / "x"), "--shards", "0"])
    assert result.exit_code == 1 and "between 1 and" in result.output
    result = runner.invoke(app, ["index", str(few), "--index", str(tmp_path / "x"), "--shards", "5"])
    assert result.exit_code == 1 and "at most 3 shards" in result.output
    result = runner.invoke(app, ["index", str(few), "--index", str(tmp_path / "x"), "--ray", "local"])
    assert result.exit_code == 1 and "--shards" in result.output
