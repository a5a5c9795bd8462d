"""Why a sentence's keyword score adds its document's BM25: keyword nDCG@10 of four scorings.

The engine ranks sentences. Its keyword score for a sentence that holds a query word is its
document's BM25 (title and text) plus half its own BM25, and a document whose title alone holds one is
found through its first sentence, with its document's BM25 (search/bm25.py, ``PassageBM25``). This
measures that choice against its parts on the three collections where it was chosen, with the
engine's own index (chunking, language detection, analysis, term matrices) and `search eval`'s
evaluation (1,000 sentences, a document scored by its best sentence, pytrec_eval):

- sentence alone: each sentence's own BM25;
- document alone: whole-document BM25 over the document matrix (title and text), no sentences;
- document + ½ sentence: the engine's composition, every query read as plain words;
- keyword mode: `search eval --mode keyword` itself (query syntax where a query clearly writes it, and
  a query of more than 20 words ranked by documents: benchmarks/results/long_rule.md).

Only the keyword side is measured, so the index is built with a stand-in embedding model (a
constant vector): nothing here depends on it.

    python benchmarks/keyword_scoring.py     # ~3 minutes on 2 cores, most of it indexing scifact
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from _common import DATA, log, stamp, write_results

COLLECTIONS = ["mlqa-de-dev", "scifact", "cranfield"]
SCORINGS = ["sentence alone", "document alone", "document + ½ sentence", "keyword mode"]
METRICS = ["ndcg@10", "mrr@10", "recall@100"]


class ConstantEncoder:
    """A stand-in model: every text gets the same unit vector (the keyword side never reads it)."""

    name = "constant"
    fingerprint = "constant-1"
    dim = 2

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        out[:, 0] = 1.0
        return out

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if progress:
            progress(len(texts))
        return self.encode_queries(texts)


def measure(name: str, tmp: Path) -> dict[str, Any]:
    from search import Index, build_index
    from search.evaluate import CHUNK_DEPTH, RUN_DEPTH, aggregate, evaluate, load_beir, run_queries

    judged = load_beir(DATA / name)
    assert judged.corpus is not None
    encoder = ConstantEncoder()
    t = time.perf_counter()
    build_index(judged.corpus, tmp / name, encoder=encoder)
    build_s = time.perf_counter() - t
    runs: dict[str, dict[str, dict[str, float]]] = {s: {} for s in SCORINGS}
    with Index.open(tmp / name, encoder=encoder) as ix:
        bm25 = ix.keyword.bm25
        assert bm25 is not None, "the index has no BM25 matrices"

        def doc_id(chunk_id: int) -> str:
            return ix.document(ix.chunk(chunk_id).doc).id

        def top(docs: dict[str, float]) -> dict[str, float]:
            return dict(sorted(docs.items(), key=lambda x: (-x[1], x[0]))[:RUN_DEPTH])

        for qid, text in judged.queries.items():
            terms = ix.keyword.parse(text, syntax="off").plain or ()
            sentence = {h.chunk_id: h.score for h in bm25.sent.search(terms, CHUNK_DEPTH)}
            passage = {h.chunk_id: h.score for h in bm25.search(terms, CHUNK_DEPTH)}
            runs["sentence alone"][qid] = top(aggregate(sentence, doc_id, "max"))
            runs["document + ½ sentence"][qid] = top(aggregate(passage, doc_id, "max"))
            whole = bm25.docs.search(terms, RUN_DEPTH)  # its rows are document numbers
            runs["document alone"][qid] = {ix.document(h.chunk_id).id: h.score for h in whole}
        runs["keyword mode"] = run_queries(ix, judged, "keyword")
        sentences, documents = len(ix.chunks), len(ix.documents)
    return {
        "documents": documents,
        "sentences": sentences,
        "queries": len(judged.queries),
        "build_s": round(build_s, 1),
        "scores": {s: evaluate(judged.qrels, runs[s], METRICS) for s in SCORINGS},
    }


def main() -> None:
    t0 = time.perf_counter()
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in COLLECTIONS:
            rows[name] = measure(name, Path(tmp))
            log(f"{name} {json.dumps(rows[name]['scores'])}")
    figures = {
        **stamp("python benchmarks/keyword_scoring.py"),
        "seconds": round(time.perf_counter() - t0, 1),
        "collections": rows,
    }
    lines = [
        "# Keyword scoring: a sentence alone, its document alone, and both",
        "",
        f"`{figures['command']}` on {figures['date']}, {figures['machine']}. Sentence chunks, 1,000 sentences a "
        "query, a document scored by its best sentence (`search eval`'s evaluation); BM25 k1 1.2, b 0.75, "
        "Lucene's idf throughout.",
        "",
        "## nDCG@10",
        "",
        "| collection | sentence alone | document alone | document + ½ sentence | keyword mode (`search eval`) "
        "| sentence alone − document alone | sentence alone − (document + ½ sentence) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        s = {k: v["ndcg@10"] for k, v in r["scores"].items()}
        lines.append(
            f"| {name} | {s['sentence alone']:.4f} | {s['document alone']:.4f} | {s['document + ½ sentence']:.4f} "
            f"| {s['keyword mode']:.4f} | {s['sentence alone'] - s['document alone']:+.4f} "
            f"| {s['sentence alone'] - s['document + ½ sentence']:+.4f} |"
        )
    lines += ["", "## MRR@10 and Recall@100", "", "| collection | scoring | MRR@10 | Recall@100 |", "|---|---|---|---|"]
    for name, r in rows.items():
        for scoring, v in r["scores"].items():
            lines.append(f"| {name} | {scoring} | {v['mrr@10']:.4f} | {v['recall@100']:.4f} |")
    lines += [
        "",
        "| collection | documents | sentences | queries | index build s |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {r['documents']:,} | {r['sentences']:,} | {r['queries']} | {r['build_s']} |"
            for name, r in rows.items()
        ),
        "",
        "Keyword mode differs from document + ½ sentence only where a query clearly writes query syntax "
        "(three mlqa-de-dev questions quote a title): a phrase matches only where its words stand together.",
    ]
    write_results("keyword_scoring", figures, lines)


if __name__ == "__main__":
    main()
