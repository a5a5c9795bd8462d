"""Issue 16, item 5: how keyword mode ranks a long query (a paragraph pasted in), chosen on tuning splits.

A query of more than T words is ranked by whole documents: a sentence's keyword score is
``document BM25 + s · its own BM25`` with s below the short queries' 0.5, and a German query word found
inside a document's compounds counts p instead of 0.5 (search/bm25.py, ``PassageBM25``). Tried:
T in {20, 30, 50} words, s in {0.5, 0.25, 0.1, 0.01} and p in {0.5, 0.25, 0}; s = 0 is shown too, for
reference only, since it leaves a document's sentences tied and shows its first one instead of its best.

Eight query sets, each with relevance.py's seeded 30% tuning split: the five shared collections' own
queries, and the long queries long_queries.py builds from xquad-en, xquad-de and mlqa-de-dev (a
paragraph finds its article's other paragraphs, its own paragraph removed from the ranking). The rule
is the setting with the best mean tuning nDCG@10 over the eight among those that keep every set's
tuning nDCG@10 within 0.01 of whole-document bm25s's on the same tuning queries (long_queries.py's
reference), issue 16's bar, which holds on each collection and not on average; the other 70% of each
set is reported. (Until stop 35 the rule was the best mean alone: compound parts at 0.25, which left
mlqa-de-dev's long tuning queries 0.016 under bm25s; the floor chooses 0, which keeps xquad-de's long
tuning queries above theirs by a margin of only 0.0016, at 0.029 below what 0.25 gave them.)
Keyword mode runs ``search eval``'s code path (run_queries) on the cached eval indexes. A query's
ranking depends only on whether the rule applies to it, so each (s, p) runs once with the rule on
every query and once off, and T picks per query which of the two counts.

    python benchmarks/long_rule.py     # writes benchmarks/results/long_rule.{md,json} (~10 min)
"""

from __future__ import annotations

import functools
import itertools
import statistics
from typing import Any

from _common import DATA, heading, log, per_query_ndcg10, stamp, write_results
from long_queries import LONG, WITHIN, Reference, long_set, ranked, without_own
from relevance import COLLECTIONS, eval_index, split

THRESHOLDS = [20, 30, 50]
SHARES = [0.5, 0.25, 0.1, 0.01]
PARTS = [0.5, 0.25, 0.0]
REFERENCE_SHARE = 0.0  # shown, never chosen


def query_sets() -> list[tuple[str, str, Any, dict[str, str]]]:
    """(collection, kind, judgments, each query's own document) of the eight sets."""
    from search.evaluate import Judged, load_beir, read_jsonl

    sets = []
    for name in COLLECTIONS:
        judged = load_beir(DATA / name)
        sets.append((name, "own", judged, {}))
        if name in LONG:
            queries, qrels, own = long_set(name, read_jsonl(DATA / name / "corpus.jsonl"))
            sets.append((name, "long", Judged(name, queries, qrels, "document", corpus=judged.corpus), own))
    return sets


@functools.cache
def reference(name: str) -> Reference:
    """long_queries.py's whole-document bm25s of a collection (its own and its long queries share it)."""
    from search.evaluate import read_jsonl

    return Reference(name, read_jsonl(DATA / name / "corpus.jsonl"))


def bm25s_ndcg(name: str, judged: Any, own: dict[str, str]) -> dict[str, float]:
    """Each query's nDCG@10 under whole-document bm25s (long_queries.py's reference, its own paragraph left out)."""
    ref = reference(name)
    qids, scores = ref.bm25_scores(judged.queries)
    return per_query_ndcg10(judged.qrels, ranked(qids, ref.ids, scores, own))


def per_query(name: str, judged: Any, own: dict[str, str], settings: list[tuple[float, float]]) -> dict[str, Any]:
    """Each query's word count and nDCG@10: with the rule off, and on (every query) for each (s, p)."""
    from search import Index
    from search.evaluate import run_queries

    _, folder = eval_index(name)
    with Index.open(folder) as ix:
        bm25 = ix.keyword.bm25
        words = {q: ix.keyword.parse(t).words for q, t in judged.queries.items()}
        out: dict[str, Any] = {"words": words}
        for label, threshold, share, part in [("off", 10**9, 0.5, 0.5)] + [
            (f"{s:g}/{p:g}", -1, s, p) for s, p in settings
        ]:
            bm25.long_words, bm25.long_sentence_weight, bm25.long_part_weight = threshold, share, part
            run = without_own(run_queries(ix, judged, "keyword"), own)
            out[label] = per_query_ndcg10(judged.qrels, run)
    return out


def mean(scores: dict[str, float], only: set[str]) -> float:
    return statistics.fmean(v for q, v in scores.items() if q in only)


def main() -> None:
    settings = [(s, p) for s, p in itertools.product([*SHARES, REFERENCE_SHARE], PARTS) if (s, p) != (0.5, 0.5)]
    rows = []
    for name, kind, judged, own in query_sets():
        log(f"{name} {kind}: {len(judged.queries)} queries")
        measured = per_query(name, judged, own, settings)
        tune = split(list(judged.queries))
        bm25s = bm25s_ndcg(name, judged, own)
        rows.append({"collection": name, "queries": kind, "tune": sorted(tune), "bm25s": bm25s, **measured})

    def scores(row: dict[str, Any], threshold: int, label: str) -> dict[str, float]:
        on = row[label] if label in row else row["off"]
        return {q: on[q] if row["words"][q] > threshold else row["off"][q] for q in row["off"]}

    grid = []
    for threshold, (share, part) in itertools.product(THRESHOLDS, [(0.5, 0.5), *settings]):
        label = f"{share:g}/{part:g}"
        cells = []
        for row in rows:
            s, tune = scores(row, threshold, label), set(row["tune"])
            cells.append({"tuning": mean(s, tune), "heldout": mean(s, set(s) - tune), "all": mean(s, set(s))})
        grid.append({"words": threshold, "share": share, "part": part, "cells": cells})
    bm25s = [mean(r["bm25s"], set(r["tune"])) for r in rows]  # each set's tuning nDCG@10 under bm25s
    for g in grid:
        g["tuning_mean"] = statistics.fmean(c["tuning"] for c in g["cells"])
        g["within"] = all(c["tuning"] >= b - WITHIN for c, b in zip(g["cells"], bm25s, strict=True))
    candidates = [g for g in grid if g["share"] != REFERENCE_SHARE]
    best = max(candidates, key=lambda g: (g["within"], g["tuning_mean"]))  # none within: the best mean, and said
    sets = [
        {"collection": r["collection"], "queries": r["queries"], "count": len(r["off"]), "bm25s_tuning": b}
        for r, b in zip(rows, bm25s, strict=True)
    ]
    long_share = {  # how many queries of each set the chosen rule applies to
        f"{r['collection']} {r['queries']}": sum(w > best["words"] for w in r["words"].values()) for r in rows
    }
    figures = {**stamp("python benchmarks/long_rule.py"), "sets": sets, "grid": grid, "chosen": best}
    figures["long_queries_per_set"] = long_share
    write_results("long_rule", figures, render(figures))


def render(figures: dict[str, Any]) -> list[str]:
    best, sets = figures["chosen"], figures["sets"]
    top = max((g for g in figures["grid"] if g["share"] != REFERENCE_SHARE), key=lambda g: g["tuning_mean"])
    off = next(g for g in figures["grid"] if g["share"] == 0.5 and g["part"] == 0.5 and g["words"] == best["words"])
    lines = [
        *heading("Keyword mode's long-query rule, chosen on tuning splits", figures, "Method: the script's docstring."),
        f"Chosen: past **{best['words']} words**, sentence share **{best['share']:g}**, compound-part weight "
        f"**{best['part']:g}** (mean tuning nDCG@10 {best['tuning_mean']:.4f}; no rule {off['tuning_mean']:.4f}; "
        f"the best mean of all, {top['tuning_mean']:.4f}, at {top['words']} words, {top['share']:g}, {top['part']:g}). "
        + (
            f"Every set's tuning nDCG@10 stays within {WITHIN} of bm25s's."
            if best["within"]
            else f"No setting keeps every set's tuning nDCG@10 within {WITHIN} of bm25s's: this is the best mean."
        ),
        "",
        "## nDCG@10 keyword, no rule → chosen",
        "",
        "| collection | queries | n | queries the rule applies to | tuning | held out | all |",
        "|---|---|---|---|---|---|---|",
    ]
    for s, before, after in zip(sets, off["cells"], best["cells"], strict=True):
        applies = figures["long_queries_per_set"][f"{s['collection']} {s['queries']}"]
        cells = " | ".join(f"{before[k]:.4f} → {after[k]:.4f}" for k in ("tuning", "heldout", "all"))
        lines.append(f"| {s['collection']} | {s['queries']} | {s['count']} | {applies} | {cells} |")
    lines += [
        "",
        "## Mean tuning nDCG@10 over the eight sets, every setting",
        "",
        f"A ✅ marks a setting that keeps every set within {WITHIN} of whole-document bm25s on its tuning queries.",
        "",
        "| words | sentence share | part weight | mean tuning | within | "
        + " | ".join(f"{s['collection']} {s['queries']}" for s in sets)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(sets),
        "| bm25s | | | | | " + " | ".join(f"{s['bm25s_tuning']:.4f}" for s in sets) + " |",
    ]
    for g in sorted(figures["grid"], key=lambda g: -g["tuning_mean"]):
        note = " (reference)" if g["share"] == REFERENCE_SHARE else ""
        cells = " | ".join(f"{c['tuning']:.4f}" for c in g["cells"])
        within = "✅" if g["within"] else "❌"
        lines.append(
            f"| {g['words']} | {g['share']:g}{note} | {g['part']:g} | {g['tuning_mean']:.4f} | {within} | {cells} |"
        )
    return lines


if __name__ == "__main__":
    main()
