"""``search eval``: readers and writers, metrics on a hand-computed run, aggregation, and end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search import build_index
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

from .conftest import FakeEncoder

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
    doc_of = {1: "A", 2: "A", 3: "A", 4: "B"}.__getitem__
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
    # a line ends at \n only: U+2028 inside a JSON string (json.dumps with ensure_ascii=False) is text
    row = {"_id": "b", "text": "zwei\u2028Zeilen\x85", "docs": {"d1": 2}}
    (tmp_path / "qs3.jsonl").write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    assert load_query_file(tmp_path / "qs3.jsonl").queries == {"b": "zwei\u2028Zeilen\x85"}


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
    assert set(run) == {"q1", "q2", "q3", "q4"} and max(run["q1"], key=run["q1"].__getitem__) == "d1"
    assert (tmp_path / "saved" / "eval.png").stat().st_size > 1000
    assert json.loads((tmp_path / "saved" / "eval.json").read_text())["modes"] == report["modes"]
    # every reported figure, recomputed by hand from the files --save wrote (the run as TREC lines,
    # the qrels): the saved run is the one measured, and the figures are what its ranks give
    qrels = [line.split() for line in (tmp_path / "saved" / "qrels.trec").read_text().splitlines()]
    assert sorted(qrels) == [[f"q{i}", "0", f"d{i}", "1"] for i in range(1, 5)]
    for mode, figures in report["modes"].items():
        assert figures == pytest.approx(_by_hand(tmp_path / "saved" / f"run.{mode}.trec", qrels)), mode
    # judgments that put the relevant document below the first rank (--qrels replaces the dataset's),
    # so the figures are not all 1.0: q1 judges d2, q2 d3, q3 d4, q4 d1
    shifted = tmp_path / "shifted.tsv"
    shifted.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i % 4 + 1}\t1\n" for i in range(1, 5)))
    other = runner.invoke(
        app, ["eval", str(tiny_beir), "--index", str(index), "--qrels", str(shifted), "--json", "--save",
              str(tmp_path / "shifted")],
    )  # fmt: skip
    assert other.exit_code == 0, other.output
    figures = json.loads(other.stdout)["modes"]
    qrels = [line.split() for line in (tmp_path / "shifted" / "qrels.trec").read_text().splitlines()]
    assert sorted(qrels) == [[f"q{i}", "0", f"d{i % 4 + 1}", "1"] for i in range(1, 5)]
    for mode in figures:
        assert figures[mode] == pytest.approx(_by_hand(tmp_path / "shifted" / f"run.{mode}.trec", qrels)), mode
    assert 0 < figures["semantic"]["ndcg@10"] < 1 and 0 < figures["semantic"]["map"] < 1
    again = runner.invoke(app, ["eval", str(tiny_beir), "--index", str(index), "--mode", "keyword", "--limit", "2"])
    assert again.exit_code == 0 and "keyword" in again.output and "2 queries" in again.output


def _by_hand(run_file: Path, qrels: list[list[str]]) -> dict[str, float]:
    """nDCG@10, MRR@10, Recall@100 and MAP of a TREC run where each query has one relevant document
    of grade 1: each is a function of that document's rank alone (0 where it is not ranked)."""
    ranked: dict[str, list[tuple[int, float, str]]] = {}
    for line in run_file.read_text().splitlines():
        qid, q0, doc, position, score, _tag = line.split()
        assert q0 == "Q0"
        ranked.setdefault(qid, []).append((int(position), float(score), doc))
    per_query = []
    for qid, _, relevant, _ in qrels:
        rows = sorted(ranked.get(qid, []))
        assert [r for r, _, _ in rows] == list(range(1, len(rows) + 1))
        scores = [s for _, s, _ in rows]
        assert scores == sorted(scores, reverse=True)
        docs = [d for _, _, d in rows]
        rank = docs.index(relevant) + 1 if relevant in docs else 0
        if rank:  # a tie would leave the rank to the tool's tie-breaking
            assert scores.count(scores[rank - 1]) == 1, rows
        per_query.append(
            {
                "ndcg@10": 1 / math.log2(rank + 1) if 0 < rank <= 10 else 0.0,
                "mrr@10": 1 / rank if 0 < rank <= 10 else 0.0,
                "recall@100": 1.0 if 0 < rank <= 100 else 0.0,
                "map": 1 / rank if rank else 0.0,
            }
        )
    return {m: sum(q[m] for q in per_query) / len(per_query) for m in per_query[0]}


def test_eval_errors(tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> None:
    missing = runner.invoke(app, ["eval", str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and "neither" in missing.output
    (tmp_path / "q.jsonl").write_text('{"_id": "a", "text": "cat", "docs": {"animals.txt": 1}}\n')
    no_index = runner.invoke(app, ["eval", str(tmp_path / "q.jsonl"), "--index", str(tmp_path / "none")])
    assert no_index.exit_code == 3 and "no index" in no_index.output
    # an unknown metric, against an index that answers the query
    folder = tmp_path / "idx"
    build_index(tiny_corpus, folder, encoder=fake_encoder)
    args = ["eval", str(tmp_path / "q.jsonl"), "--index", str(folder), "--mode", "keyword"]
    good = runner.invoke(app, [*args, "--metrics", "ndcg@10,p@10", "--json"])
    assert good.exit_code == 0, good.output
    assert json.loads(good.stdout)["modes"]["keyword"] == {"ndcg@10": 1.0, "p@10": 0.1}
    bad = runner.invoke(app, [*args, "--metrics", "ndcg@10,ndcg@1000"])
    assert bad.exit_code == 1, bad.output
    assert bad.stderr.strip().splitlines() == [
        "error: unknown metric 'ndcg@1000'; choose from: ndcg@10, mrr@10, recall@100, map, ndcg@100, recall@10, p@10"
    ]
