"""Issue 17's weights for German compound parts, tuned on a split and reported on the rest.

The German collections (mlqa-de-dev, xquad-de) are indexed as `search eval` does (their eval indexes,
cached). Every setting of (part_weight, query_part_weight) is then measured on each collection's tuning
split (the same seeded 30% of its queries as benchmarks/relevance.py): part_weight is what a query word
found inside a document's compound counts (``de+:`` columns), query_part_weight what a part of a query
compound counts; (0, 0) is the engine without compound parts. The weights chosen are those with the best
mean of keyword and hybrid nDCG@10 over both tuning splits among the settings whose hybrid is no lower than
(0, 0) on either; the table reports every query, and the held-out 70%, with the weights off and chosen.
English is not split (tests/test_compounds.py holds that), so xquad-en, scifact and cranfield do not move.

    python benchmarks/compounds.py      # ~20 minutes on 2 cores; writes results/compounds.{md,json}
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from typing import Any

from _common import log, stamp, write_results
from relevance import eval_index, ndcg10, split

COLLECTIONS = ["mlqa-de-dev", "xquad-de"]
PART_WEIGHTS = [0.0, 0.25, 0.5, 0.75, 1.0]
QUERY_PART_WEIGHTS = [0.0, 0.25, 0.5, 1.0]
MODES = ["keyword", "hybrid"]


def set_weights(ix: Any, part: float, query_part: float) -> None:
    bm25 = ix.keyword.bm25
    for side in (bm25.sent, bm25.docs):
        side.part_weight, side.query_part_weight = part, query_part
    bm25._memo = threading.local()  # scores are memoised per query: forget the other weights' ones


def measure(ix: Any, judged: Any, part: float, query_part: float, only: set[str] | None) -> dict[str, float]:
    from search.evaluate import run_queries

    set_weights(ix, part, query_part)
    subset = judged
    if only is not None:
        queries = {q: t for q, t in judged.queries.items() if q in only}
        subset = dataclasses.replace(judged, queries=queries, qrels={q: judged.qrels[q] for q in only})
    out = {}
    for mode in MODES:
        run = run_queries(ix, subset, mode)
        out[mode] = ndcg10(judged.qrels, run, only)
        if only is None:
            out[f"{mode}_heldout"] = ndcg10(judged.qrels, run, set(judged.qrels) - split(list(judged.qrels)))
    return out


def main() -> None:
    from search import Index

    figures: dict[str, Any] = stamp("python benchmarks/compounds.py")
    grid = list(itertools.product(PART_WEIGHTS, QUERY_PART_WEIGHTS))
    tuning: dict[str, dict[str, dict[str, float]]] = {}
    contexts = {}
    for name in COLLECTIONS:
        judged, folder = eval_index(name)
        contexts[name] = (judged, folder)
        tune = split(list(judged.qrels))
        with Index.open(folder) as ix:
            for part, qpart in grid:
                key = f"{part:g}/{qpart:g}"
                tuning.setdefault(key, {})[name] = measure(ix, judged, part, qpart, tune)
                log(f"{name} {key}: {tuning[key][name]}")
    off = tuning["0/0"]
    allowed = [k for k in tuning if all(tuning[k][n]["hybrid"] >= off[n]["hybrid"] for n in COLLECTIONS)]
    chosen = max(allowed, key=lambda k: (sum(tuning[k][n][m] for n in COLLECTIONS for m in MODES), k == "0/0"))
    part, qpart = (float(x) for x in chosen.split("/"))
    log(f"chosen part_weight {part:g}, query_part_weight {qpart:g}")
    final = {}
    for name, (judged, folder) in contexts.items():
        with Index.open(folder) as ix:
            final[name] = {"off": measure(ix, judged, 0.0, 0.0, None), "chosen": measure(ix, judged, part, qpart, None)}
    figures.update(tuning=tuning, chosen={"part_weight": part, "query_part_weight": qpart}, final=final)
    write_results("compounds", figures, render(figures))


def render(f: dict[str, Any]) -> list[str]:
    c = f["chosen"]
    lines = [
        "# German compound parts: weights tuned on a split",
        "",
        f"`{f['command']}` on {f['date']}, {f['machine']}. Method: see the script's docstring.",
        "",
        f"Chosen on the tuning splits: **part_weight {c['part_weight']:g}, query_part_weight "
        f"{c['query_part_weight']:g}**. nDCG@10 on every query (held-out 70% in brackets), parts off → chosen:",
        "",
        "| collection | keyword | hybrid |",
        "|---|---|---|",
    ]
    for name, r in f["final"].items():
        cells = [
            f"{r['off'][m]:.4f} → {r['chosen'][m]:.4f} ({r['off'][m + '_heldout']:.4f} → "
            f"{r['chosen'][m + '_heldout']:.4f})"
            for m in MODES
        ]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    lines += ["", "Tuning splits (keyword / hybrid), part_weight/query_part_weight:", "",
              "| setting | " + " | ".join(COLLECTIONS) + " |", "|---|" + "---|" * len(COLLECTIONS)]  # fmt: skip
    for key, per in f["tuning"].items():
        cells = [f"{per[n]['keyword']:.4f} / {per[n]['hybrid']:.4f}" for n in COLLECTIONS]
        lines.append(f"| {key} | {' | '.join(cells)} |")
    return lines


if __name__ == "__main__":
    main()
