"""`search eval` through the CLI: query files with sentence-level judgments, --qrels, --metrics,
--split, --aggregate, and the eval cache (reuse, and resume after an interrupted build).

Every figure is checked against the run the command wrote (TREC format) with metrics computed
here by hand, not with the product's own ``evaluate()``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from search.cli import app

from .conftest import ROOT, interruptible

runner = CliRunner()
pytestmark = pytest.mark.model

Run = dict[str, list[str]]  # query id -> ids, best first
Qrels = dict[str, dict[str, int]]


# -- metrics, written out from trec_eval's definitions -------------------------------------------


def read_trec_run(path: Path) -> Run:
    """A TREC run, ordered by its rank column."""
    rows: dict[str, list[tuple[int, str]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        qid, q0, doc, rank, _score, _tag = line.split()
        assert q0 == "Q0"
        rows.setdefault(qid, []).append((int(rank), doc))
    return {q: [d for _, d in sorted(r)] for q, r in rows.items()}


def run_scores(path: Path) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        qid, _, doc, _, score, _ = line.split()
        out.setdefault(qid, {})[doc] = float(score)
    return out


def ndcg(ranked: list[str], grades: dict[str, int], cut: int) -> float:
    dcg = sum(grades.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:cut]))
    ideal = sorted((g for g in grades.values() if g > 0), reverse=True)[:cut]
    return dcg / sum(g / math.log2(i + 2) for i, g in enumerate(ideal))


def reciprocal_rank(ranked: list[str], grades: dict[str, int], cut: int) -> float:
    return next((1 / (i + 1) for i, d in enumerate(ranked[:cut]) if grades.get(d, 0) > 0), 0.0)


def recall(ranked: list[str], grades: dict[str, int], cut: int) -> float:
    relevant = {d for d, g in grades.items() if g > 0}
    return len(relevant & set(ranked[:cut])) / len(relevant)


def precision(ranked: list[str], grades: dict[str, int], cut: int) -> float:
    return sum(grades.get(d, 0) > 0 for d in ranked[:cut]) / cut


def average_precision(ranked: list[str], grades: dict[str, int]) -> float:
    relevant = {d for d, g in grades.items() if g > 0}
    hits, total = 0, 0.0
    for i, d in enumerate(ranked):
        if d in relevant:
            hits += 1
            total += hits / (i + 1)
    return total / len(relevant)


METRIC = {
    "ndcg@10": lambda r, g: ndcg(r, g, 10),
    "ndcg@100": lambda r, g: ndcg(r, g, 100),
    "mrr@10": lambda r, g: reciprocal_rank(r, g, 10),
    "recall@100": lambda r, g: recall(r, g, 100),
    "recall@10": lambda r, g: recall(r, g, 10),
    "p@10": lambda r, g: precision(r, g, 10),
    "map": average_precision,
}


def by_hand(run: Run, qrels: Qrels, metrics: list[str]) -> dict[str, float]:
    """Mean of each metric over the queries with a relevant item (no result: 0)."""
    judged = [q for q, g in qrels.items() if any(v > 0 for v in g.values())]
    return {m: sum(METRIC[m](run.get(q, []), qrels[q]) for q in judged) / len(judged) for m in metrics}


def eval_json(*args: str) -> dict:
    result = runner.invoke(app, ["eval", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- a query file against an index ---------------------------------------------------------------

DOCS = {
    "koalition.txt": "Großbritannien will Truppen in die Ukraine schicken. Die Koalition der Willigen plant seit "
    "Monaten. Frankreich liefert Satellitendaten für die Mission.\n",
    "garten.txt": "Im Garten blühen die Rosen. Der Gärtner gießt die Beete am Morgen. Truppen von Ameisen laufen "
    "über den Weg.\n",
}
QUERIES = [
    {"_id": "q1", "text": "Wer will Truppen in die Ukraine schicken?", "relevant": ["Truppen in die Ukraine schicken"]},
    {"_id": "q2", "text": "Wann gießt der Gärtner die Beete?", "relevant": ["gießt die Beete"]},
    # two relevant sentences, one without any query word
    {"_id": "q3", "text": "Satellitendaten", "relevant": ["liefert Satellitendaten", "Koalition der Willigen"]},
]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str]]:
    """An index of two documents, a query file judged by sentence, and every sentence by chunk id."""
    from search import Index

    root = tmp_path_factory.mktemp("eval-file")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    index = root / "idx"
    result = runner.invoke(app, ["index", str(corpus), "--index", str(index)])
    assert result.exit_code == 0, result.output
    queries = root / "queries.jsonl"
    queries.write_text("".join(json.dumps(q, ensure_ascii=False) + "\n" for q in QUERIES), encoding="utf-8")
    # every sentence of the index with its id, through the search API (a semantic query ranks them all)
    with Index.open(index) as ix:
        results = ix.search("Satellitendaten", mode="semantic", k=100, candidates=100, dedupe=False, window=0)
    sentences = {str(r.chunk_id): r.passage[slice(*r.evidence.sentence)] for r in results}
    assert len(sentences) == 6
    return index, queries, sentences


def sentence_qrels(sentences: dict[str, str]) -> Qrels:
    return {q["_id"]: {cid: 1 for cid, s in sentences.items() if any(n in s for n in q["relevant"])} for q in QUERIES}


def test_query_file_is_judged_by_sentence(judged: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    index, queries, sentences = judged
    qrels = sentence_qrels(sentences)
    assert [len(qrels[q]) for q in ("q1", "q2", "q3")] == [1, 1, 2]
    runs = tmp_path / "run.trec"
    report = eval_json(str(queries), "--index", str(index), "--run-out", str(runs))
    assert report["level"] == "sentence" and report["queries"] == 3
    assert set(report["modes"]) == {"keyword", "semantic", "hybrid"}
    metrics = ["ndcg@10", "mrr@10", "recall@100", "map"]
    for mode in ("keyword", "semantic", "hybrid"):
        run = read_trec_run(tmp_path / f"run.{mode}.trec")
        assert set(run) == {"q1", "q2", "q3"}
        assert all(set(ids) <= set(sentences) for ids in run.values())  # ranked items are sentences
        assert report["modes"][mode] == pytest.approx(by_hand(run, qrels, metrics), abs=1e-6), mode
    # by hand: in keyword mode q1 and q2 find their sentence first; q3's word is in one of its two
    # sentences, the other holds no query word and is never retrieved
    keyword = read_trec_run(tmp_path / "run.keyword.trec")
    assert sentences[keyword["q1"][0]].startswith("Großbritannien will Truppen")
    assert sentences[keyword["q2"][0]].startswith("Der Gärtner gießt")
    assert [sentences[c] for c in keyword["q3"]] == ["Frankreich liefert Satellitendaten für die Mission."]
    assert report["modes"]["keyword"]["mrr@10"] == pytest.approx(1.0)
    assert report["modes"]["keyword"]["recall@100"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert report["modes"]["keyword"]["map"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_qrels_file_replaces_the_judgments(judged: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    index, queries, _ = judged
    # document-level judgments that disagree with the substrings: q1's answer is "the garden"
    trec = tmp_path / "qrels.trec"
    trec.write_text("q1 0 garten.txt 1\nq2 0 garten.txt 1\nq3 0 koalition.txt 2\nq3 0 garten.txt 0\n")
    beir = tmp_path / "qrels.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\tgarten.txt\t1\nq2\tgarten.txt\t1\nq3\tkoalition.txt\t2\n")
    qrels = {"q1": {"garten.txt": 1}, "q2": {"garten.txt": 1}, "q3": {"koalition.txt": 2}}
    metrics = ["ndcg@10", "mrr@10", "recall@100", "map"]
    reports = []
    for path in (trec, beir):
        report = eval_json(str(queries), "--index", str(index), "--mode", "keyword", "--qrels", str(path),
                           "--run-out", str(tmp_path / f"{path.suffix}.trec"))  # fmt: skip
        assert report["level"] == "document"
        run = read_trec_run(tmp_path / f"{path.suffix}.trec")
        assert set(run["q1"]) == {"koalition.txt", "garten.txt"}  # documents now, not sentences
        assert report["modes"]["keyword"] == pytest.approx(by_hand(run, qrels, metrics), abs=1e-6)
        reports.append(report["modes"])
    assert reports[0] == reports[1]  # TREC and BEIR files read alike
    # by hand: "Truppen … Ukraine" ranks koalition.txt first and garten.txt (Truppen) second
    assert reports[0]["keyword"]["mrr@10"] == pytest.approx((1 / 2 + 1 + 1) / 3)
    assert reports[0]["keyword"]["ndcg@10"] == pytest.approx((1 / math.log2(3) + 1 + 1) / 3)


def test_metrics_option_picks_the_metrics(judged: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    index, queries, sentences = judged
    chosen = ["ndcg@100", "recall@10", "p@10", "mrr@10"]
    report = eval_json(str(queries), "--index", str(index), "--mode", "hybrid", "--metrics", ",".join(chosen),
                       "--run-out", str(tmp_path / "run.trec"))  # fmt: skip
    assert list(report["modes"]) == ["hybrid"]
    assert list(report["modes"]["hybrid"]) == chosen
    run = read_trec_run(tmp_path / "run.trec")
    assert report["modes"]["hybrid"] == pytest.approx(by_hand(run, sentence_qrels(sentences), chosen), abs=1e-6)
    # p@10 on six sentences: 4 relevant of at most 10 places over 3 queries
    assert report["modes"]["hybrid"]["p@10"] == pytest.approx((1 + 1 + 2) / 10 / 3)
    # the table shows the chosen columns only
    table = runner.invoke(app, ["eval", str(queries), "--index", str(index), "--mode", "keyword", "--metrics", "p@10"])
    assert table.exit_code == 0 and "p@10" in table.output and "ndcg@10" not in table.output
    bad = runner.invoke(app, ["eval", str(queries), "--index", str(index), "--metrics", "ndcg@7"])
    assert bad.exit_code == 1 and "unknown metric 'ndcg@7'" in bad.output


# -- BEIR folders --------------------------------------------------------------------------------


def write_beir(folder: Path, docs: dict[str, str], queries: dict[str, str], qrels: dict[str, str]) -> Path:
    """A BEIR folder; ``qrels`` maps a split to its TSV body (without the header)."""
    (folder / "qrels").mkdir(parents=True)
    lines = (json.dumps({"_id": k, "title": "", "text": v}, ensure_ascii=False) + "\n" for k, v in docs.items())
    (folder / "corpus.jsonl").write_text("".join(lines), encoding="utf-8")
    lines = (json.dumps({"_id": k, "text": v}, ensure_ascii=False) + "\n" for k, v in queries.items())
    (folder / "queries.jsonl").write_text("".join(lines), encoding="utf-8")
    for split, body in qrels.items():
        (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + body, encoding="utf-8")
    return folder


SMALL_DOCS = {
    "d1": "Solar panels turn sunlight into electricity. They work best in summer.",
    "d2": "The river floods every spring. Farmers plant rice on the banks.",
    "d3": "Glaciers melt as the climate warms. Sea levels rise slowly.",
}
SMALL_QUERIES = {"q1": "solar electricity", "q2": "river floods", "q3": "melting glaciers"}


def test_split_picks_the_qrels_file(tmp_path: Path) -> None:
    beir = write_beir(tmp_path / "small", SMALL_DOCS, SMALL_QUERIES,
                      {"test": "q1\td1\t1\nq2\td3\t1\n", "dev": "q3\td3\t1\n"})  # fmt: skip
    index = tmp_path / "idx"
    test = eval_json(str(beir), "--index", str(index), "--mode", "keyword", "--run-out", str(tmp_path / "t.trec"))
    dev = eval_json(str(beir), "--index", str(index), "--mode", "keyword", "--split", "dev",
                    "--run-out", str(tmp_path / "d.trec"))  # fmt: skip
    assert test["queries"] == 2 and dev["queries"] == 1
    assert set(read_trec_run(tmp_path / "t.trec")) == {"q1", "q2"}
    assert set(read_trec_run(tmp_path / "d.trec")) == {"q3"}
    # by hand: each query's words are in one document only; test judges q2 against the wrong one
    assert test["modes"]["keyword"]["mrr@10"] == pytest.approx(0.5)
    assert dev["modes"]["keyword"]["mrr@10"] == pytest.approx(1.0)
    one = runner.invoke(app, ["eval", str(beir), "--index", str(index), "--mode", "keyword", "--split", "dev"])
    assert one.exit_code == 0 and ": 1 query, judged per document" in one.output, one.output
    missing = runner.invoke(app, ["eval", str(beir), "--index", str(index), "--split", "train"])
    assert missing.exit_code == 2 and "train.tsv" in missing.output


def test_metric_cutoffs_on_a_known_ranking(tmp_path: Path) -> None:
    # twelve one-sentence documents of twelve words; d01 says "solar" twelve times, d12 once, so
    # keyword mode ranks them d01 … d12; q1's one relevant document is 7th, q2's 12th
    docs = {f"d{i:02d}": " ".join(["Solar"] * (13 - i) + ["panel"] * (i - 1)) + "." for i in range(1, 13)}
    beir = write_beir(tmp_path / "ranked", docs, {"q1": "solar", "q2": "solar"}, {"test": "q1\td07\t1\nq2\td12\t1\n"})
    metrics = ["ndcg@10", "ndcg@100", "mrr@10", "recall@10", "recall@100", "p@10", "map"]
    out = tmp_path / "run.trec"
    report = eval_json(str(beir), "--index", str(tmp_path / "idx"), "--mode", "keyword", "--metrics", ",".join(metrics),
                       "--run-out", str(out))  # fmt: skip
    run = read_trec_run(out)
    assert run["q1"] == run["q2"] == sorted(docs)
    assert report["modes"]["keyword"] == pytest.approx(
        {
            "ndcg@10": (1 / math.log2(8) + 0) / 2,
            "ndcg@100": (1 / math.log2(8) + 1 / math.log2(13)) / 2,
            "mrr@10": (1 / 7 + 0) / 2,
            "recall@10": (1 + 0) / 2,
            "recall@100": (1 + 1) / 2,
            "p@10": (0.1 + 0) / 2,
            "map": (1 / 7 + 1 / 12) / 2,
        }
    )


def test_aggregate_max_plus_rewards_documents_with_several_matches(tmp_path: Path) -> None:
    # d-one holds "solar" twice in one sentence, d-many once in each of three sentences
    docs = {
        "d-one": "Solar panels and solar cells. The station lies in the desert. Nobody lives there.",
        "d-many": "Solar roofs are common here. Solar farms grow every year. Solar heaters save money. "
        "Cats sleep. Dogs bark. Birds sing.",
        "d-none": "The river floods in spring. Farmers plant rice.",
    }
    beir = write_beir(tmp_path / "agg", docs, {"q1": "solar"}, {"test": "q1\td-many\t1\n"})
    index = tmp_path / "idx"
    runs = {}
    for rule in ("max", "max+"):
        out = tmp_path / f"{rule}.trec"
        report = eval_json(str(beir), "--index", str(index), "--mode", "keyword", "--aggregate", rule,
                           "--run-out", str(out))  # fmt: skip
        runs[rule] = (report["modes"]["keyword"], read_trec_run(out)["q1"], run_scores(out)["q1"])
    # the crafted case flips: the single strong sentence wins under max, the three matches under max+
    assert runs["max"][1] == ["d-one", "d-many"]
    assert runs["max+"][1] == ["d-many", "d-one"]
    assert runs["max"][0]["ndcg@10"] == pytest.approx(1 / math.log2(3))
    assert runs["max+"][0]["ndcg@10"] == pytest.approx(1.0)
    # each document's score is its sentences' keyword scores combined as documented
    query = runner.invoke(app, ["query", "solar", "--index", str(index), "--mode", "keyword", "--json",
                                "--no-dedupe", "-k", "1000", "--candidates", "1000"])  # fmt: skip
    assert query.exit_code == 0, query.output
    per_doc: dict[str, list[float]] = {}
    for r in json.loads(query.stdout)["results"]:
        per_doc.setdefault(r["doc"], []).append(r["scores"]["keyword"])
    assert sorted(len(s) for s in per_doc.values()) == [1, 3]
    best = {d: sorted(s, reverse=True) for d, s in per_doc.items()}
    assert runs["max"][2] == pytest.approx({d: s[0] for d, s in best.items()}, abs=2e-6)
    assert runs["max+"][2] == pytest.approx({d: s[0] + 0.1 * sum(s[1:3]) for d, s in best.items()}, abs=2e-6)
    bad = runner.invoke(app, ["eval", str(beir), "--index", str(index), "--aggregate", "mean"])
    assert bad.exit_code == 1 and "unknown aggregation" in bad.output


# -- the eval cache ------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty SEARCH_CACHE_DIR sharing only the converted models with the usual cache (no reconversion)."""
    from search.encoder import cache_dir, resolve_model

    resolve_model()  # the default model converted where it normally lives
    models = cache_dir() / "models"
    folder = tmp_path / "cache"
    folder.mkdir()
    (folder / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("SEARCH_CACHE_DIR", str(folder))
    monkeypatch.delenv("SEARCH_EMBEDDINGS_DIR", raising=False)
    yield folder


def _snapshot(folder: Path) -> dict[str, int]:
    """Every file of an index folder with its mtime, but the writer lock (a no-op write still takes it)."""
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != ".lock"
    }


def test_beir_folder_is_indexed_once_into_the_cache(tmp_path: Path, cache: Path) -> None:
    beir = write_beir(tmp_path / "small", SMALL_DOCS, SMALL_QUERIES,
                      {"test": "q1\td1\t1\nq2\td2\t1\nq3\td3\t1\n", "dev": "q3\td3\t1\n"})  # fmt: skip
    first = eval_json(str(beir), "--mode", "keyword")
    (built,) = (cache / "eval").iterdir()
    assert built.name.startswith("small-")
    assert first["index"] == str(built)
    assert (built / "manifest.json").exists()
    before = _snapshot(built)
    # again, another split, another mode: the same index, not a file written
    again = eval_json(str(beir), "--mode", "keyword")
    assert again["modes"] == first["modes"]
    eval_json(str(beir), "--mode", "semantic", "--split", "dev")
    assert [p.name for p in (cache / "eval").iterdir()] == [built.name]
    assert _snapshot(built) == before
    # a changed corpus file is a new key, so a new index beside the old one
    with (beir / "corpus.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"_id": "d4", "title": "", "text": "Volcanoes erupt with lava."}) + "\n")
    changed = eval_json(str(beir), "--mode", "keyword")
    assert len(list((cache / "eval").iterdir())) == 2 and changed["index"] != str(built)


def _cached_rows(cache: Path) -> int:
    total = 0
    for db in (cache / "embeddings").glob("*.sqlite"):
        con = sqlite3.connect(db, timeout=30)
        try:
            total += int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
        except sqlite3.OperationalError:  # the table is not created yet
            pass
        finally:
            con.close()
    return total


def _poison(cache: Path) -> None:
    """Every cached vector replaced by the same unit vector."""
    for db in (cache / "embeddings").glob("*.sqlite"):
        with sqlite3.connect(db, timeout=30) as con:
            for key, blob in con.execute("SELECT key, vec FROM vectors").fetchall():
                vec = np.zeros(len(blob) // 4, dtype=np.float32)
                vec[0] = 1.0
                con.execute("UPDATE vectors SET vec = ? WHERE key = ?", (vec.tobytes(), key))


def big_docs(n_docs: int, per_doc: int) -> dict[str, str]:
    """Short, distinct sentences (few tokens each): enough of them that embedding takes some seconds."""
    rng = np.random.default_rng(7)
    words = ["River", "Mountain", "City", "Forest", "Engine", "Garden", "Market", "Harbour", "Bridge", "Station"]
    verbs = ["grow", "shine", "wait", "fall", "turn", "rise", "sleep", "sing", "move", "stand"]
    docs = {}
    for d in range(n_docs):
        sentences = [
            f"{words[rng.integers(len(words))]}s {verbs[rng.integers(len(verbs))]} {d * per_doc + s} times."
            for s in range(per_doc)
        ]
        docs[f"doc{d:03d}"] = " ".join(sentences)
    return docs


def test_interrupted_eval_build_resumes_from_the_cache(tmp_path: Path, cache: Path) -> None:
    # 3,000 sentences: the cache stores every 2,048 embedded, and the 952 after them take long enough for
    # Ctrl-C to land before the build ends (with 2,100, the last 52 and the documents could finish first)
    docs = big_docs(3, 1000)
    beir = write_beir(tmp_path / "big", docs, {"q1": "rivers grow"}, {"test": "q1\tdoc001\t1\n"})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "search", "eval", str(beir), "--mode", "keyword"]
    proc = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=interruptible,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while _cached_rows(cache) < 2048:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the build never stored a batch of embeddings"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr  # (the "interrupted" line: see test_cli_process.py)
    kept = _cached_rows(cache)
    assert 2048 <= kept < 3000
    assert not list((cache / "eval").glob("*/manifest.json"))  # nothing committed

    # the second run reuses what the first embedded: made recognisable by replacing those vectors
    _poison(cache)
    report = eval_json(str(beir), "--mode", "keyword")
    (built,) = (cache / "eval").iterdir()
    assert report["index"] == str(built)
    assert _cached_rows(cache) == 3000 + 3  # the rest embedded and stored, documents too
    found = runner.invoke(app, ["query", "rivers grow", "--index", str(built), "--mode", "semantic",
                                "--doc-weight", "0", "--no-dedupe", "--json", "-k", "1000",
                                "--candidates", "3000"])  # fmt: skip
    assert found.exit_code == 0, found.output
    similarities = [r["evidence"]["similarity"] for r in json.loads(found.stdout)["results"]]
    # of the 1,000 best, at least 1,000 - (3,000 - kept) carry the one replaced vector
    most = max(similarities.count(s) for s in set(similarities))
    assert most >= 1000 - (3000 - kept)
    check = runner.invoke(app, ["info", "--check", "--index", str(built)])
    assert check.exit_code == 0, check.output


def test_unreadable_inputs_and_unwritable_outputs_are_one_line_errors(
    judged: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    index, queries, _ = judged
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b'{"_id": "q1", "text": "Truppen"}\n\xff\xfe\x00junk\n')
    (tmp_path / "taken").write_text("a file\n")
    lines = {
        "notext": [{"_id": "a", "docs": {"x": 1}}],
        "blank": [{"_id": "a", "text": " ", "docs": {"x": 1}}],
        "twice": [{"_id": "a", "text": "Truppen", "docs": {"x": 1}}, {"_id": "a", "text": "Garten", "docs": {"x": 1}}],
        "grades": [{"_id": "a", "text": "Truppen", "docs": {"x": "high"}}],
    }
    for name, rows in lines.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "empty.qrels").write_text("")
    cases = [
        ([str(tmp_path / "notext.jsonl")], "query 1 (id 'a') needs a non-empty string \"text\""),
        ([str(tmp_path / "blank.jsonl")], "query 1 (id 'a') needs a non-empty string \"text\""),
        ([str(tmp_path / "twice.jsonl")], "query id 'a' appears twice"),  # not merged into one silently
        ([str(tmp_path / "grades.jsonl")], '"docs" maps document ids to whole-number grades'),
        ([str(queries), "--qrels", str(tmp_path / "empty.qrels")], "judges no document relevant to any query"),
        ([str(binary)], "bin.jsonl: not UTF-8 text"),
        ([str(queries), "--qrels", str(binary)], "bin.jsonl: not UTF-8 text"),
        ([str(queries), "--run-out", str(tmp_path)], "is a folder; give a file path"),  # refused before any query
        ([str(queries), "--run-out", str(tmp_path / "no" / "run.trec")], "is in no existing folder"),
        ([str(queries), "--save", str(tmp_path / "taken")], "is a file; give a folder"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["eval", *args, "--index", str(index), "--mode", "keyword"])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output and "Traceback" not in result.output, result.output
