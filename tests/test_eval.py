"""``search eval``: readers and writers, metrics on a hand-computed run, aggregation, and end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search.cli import app
from search.errors import CorpusError
from search.evaluate import (
    aggregate,
    evaluate,
    load_beir,
    load_query_file,
    read_qrels,
    read_run,
    write_qrels,
    write_run,
)

runner = CliRunner()


def test_metrics_on_a_hand_computed_run() -> None:
    qrels = {"q1": {"a": 1, "c": 2}, "q2": {"x": 1}, "q3": {"z": 1}}
    run = {"q1": {"a": 0.9, "b": 0.8, "c": 0.7}, "q2": {"y": 0.5, "x": 0.4}}  # q3: no result at all
    got = evaluate(qrels, run, ["ndcg@10", "mrr@10", "recall@100", "map"])
    dcg1 = 1 / math.log2(2) + 2 / math.log2(4)  # trec_eval's gains are the grades themselves
    idcg1 = 2 / math.log2(2) + 1 / math.log2(3)
    ndcg2 = (1 / math.log2(3)) / 1.0
    assert got["ndcg@10"] == pytest.approx((dcg1 / idcg1 + ndcg2 + 0) / 3)
    assert got["mrr@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert got["recall@100"] == pytest.approx((1 + 1 + 0) / 3)
    assert got["map"] == pytest.approx(((1 + 2 / 3) / 2 + 0.5 + 0) / 3)


def test_mrr_is_cut_at_10() -> None:
    run = {"q": {f"d{i:02d}": 1 - i / 100 for i in range(12)}}
    assert evaluate({"q": {"d11": 1}}, run, ["mrr@10"])["mrr@10"] == 0.0
    assert evaluate({"q": {"d09": 1}}, run, ["mrr@10"])["mrr@10"] == pytest.approx(0.1)


def test_aggregation_rules() -> None:
    doc_of = {1: "A", 2: "A", 3: "A", 4: "B"}.get
    scores = {1: 0.5, 2: 0.4, 3: 0.3, 4: 0.55}
    assert aggregate(scores, doc_of, "max") == {"A": 0.5, "B": 0.55}
    assert aggregate(scores, doc_of, "max+") == pytest.approx({"A": 0.5 + 0.1 * (0.4 + 0.3), "B": 0.55})


def test_trec_and_beir_readers_and_writers(tmp_path: Path) -> None:
    qrels = {"1": {"d1": 2, "d2": 0}, "2": {"d3": 1}}
    write_qrels(tmp_path / "q.trec", qrels)
    assert read_qrels(tmp_path / "q.trec") == qrels
    (tmp_path / "q.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t2\n1\td2\t0\n2\td3\t1\n")
    assert read_qrels(tmp_path / "q.tsv") == qrels
    run = {"1": {"d1": 0.5, "d2": 0.25}, "2": {"d3": 1.0}}
    write_run(tmp_path / "r.trec", run, "tag")
    lines = (tmp_path / "r.trec").read_text().splitlines()
    assert lines[0] == "1 Q0 d1 1 0.500000 tag" and lines[1].startswith("1 Q0 d2 2 ")
    assert read_run(tmp_path / "r.trec") == run
    (tmp_path / "bad.tsv").write_text("1 d1\n")
    with pytest.raises(CorpusError, match=r"bad\.tsv:1"):
        read_qrels(tmp_path / "bad.tsv")
    with pytest.raises(CorpusError, match="not a BEIR folder"):
        load_beir(tmp_path)
    (tmp_path / "qs.jsonl").write_text('{"_id": "a", "text": "x", "docs": {"d1": 1}}\n')
    assert load_query_file(tmp_path / "qs.jsonl").qrels == {"a": {"d1": 1}}
    (tmp_path / "qs2.jsonl").write_text('{"_id": "a", "text": "x"}\n')
    with pytest.raises(CorpusError, match="relevant"):
        load_query_file(tmp_path / "qs2.jsonl")


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-beir"
    (folder / "qrels").mkdir(parents=True)
    docs = {
        "d1": "Die Koalition der Willigen will Soldaten in die Ukraine schicken. Großbritannien führt sie an.",
        "d2": "Photosynthesis converts light into chemical energy. Plants need sunlight and water.",
        "d3": "Der Eiffelturm steht in Paris. Er wurde 1889 eröffnet.",
        "d4": "Vaccines train the immune system. They reduce severe illness.",
    }
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": k, "title": "", "text": v}) + "\n" for k, v in docs.items())
    )
    queries = {"q1": "Wer will Truppen in die Ukraine schicken?", "q2": "How do plants make energy from light?",
               "q3": "Wann wurde der Eiffelturm gebaut?", "q4": "immune response to vaccination"}  # fmt: skip
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in queries.items()))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(1, 5))
    )
    return folder


@pytest.mark.model
def test_search_eval_end_to_end(tmp_path: Path, tiny_beir: Path) -> None:
    index = tmp_path / "idx"
    result = runner.invoke(
        app, ["eval", str(tiny_beir), "--index", str(index), "--json", "--run-out", str(tmp_path / "run.trec"),
              "--save", str(tmp_path / "saved")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dataset"] == "tiny-beir" and report["queries"] == 4
    assert set(report["modes"]) == {"keyword", "semantic", "hybrid"}
    assert set(report["modes"]["hybrid"]) == {"ndcg@10", "mrr@10", "recall@100", "map"}
    assert report["modes"]["semantic"]["mrr@10"] == 1.0  # four easy questions, one document each
    assert report["modes"]["hybrid"]["ndcg@10"] >= 0.9
    run = read_run(tmp_path / "run.hybrid.trec")
    assert set(run) == {"q1", "q2", "q3", "q4"} and max(run["q1"], key=run["q1"].get) == "d1"
    assert (tmp_path / "saved" / "eval.png").stat().st_size > 1000
    assert json.loads((tmp_path / "saved" / "eval.json").read_text())["modes"] == report["modes"]
    # the numbers can be checked against the written run and qrels by any trec_eval
    assert evaluate(read_qrels(tmp_path / "saved" / "qrels.trec"), run)["ndcg@10"] == pytest.approx(
        report["modes"]["hybrid"]["ndcg@10"]
    )
    again = runner.invoke(app, ["eval", str(tiny_beir), "--index", str(index), "--mode", "keyword", "--limit", "2"])
    assert again.exit_code == 0 and "keyword" in again.output and "2 queries" in again.output


def test_eval_errors(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["eval", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "neither" in missing.output
    (tmp_path / "q.jsonl").write_text('{"_id": "a", "text": "x", "docs": {"d": 1}}\n')
    bad_metric = runner.invoke(app, ["eval", str(tmp_path / "q.jsonl"), "--index", str(tmp_path / "none")])
    assert bad_metric.exit_code == 3 and "no index" in bad_metric.output
