"""Issue 16, item 5: how hybrid mode fuses a long query (a paragraph pasted in), chosen on tuning splits.

Keyword mode already ranks a query of more than 20 words by whole documents (long_rule.py). The
semantic side reads a sentence's cosine plus μ times its document vector's, fused with the keyword
side at weight α; a paragraph says more about a document than about one of its sentences, so a long
query may want more of the document vector, and a different α. Tried: α in {0.5, 0.6, 0.7, 0.8, 0.9}
and μ in {1, 2, 4} for plain queries of more than T words, T in {20 (the index's ``long_words``, where
keyword mode turns to whole documents), 30, 50}: a question of 21 words is not yet a paragraph. The
defaults (α 0.8, μ 1, feedback 1×1) for every other query. Each long query's word count is kept, so one
run per (α, μ) serves every T.

The eight query sets of long_rule.py (the five collections' own queries, whose long queries are few
except on scifact and cranfield, and the long queries built from xquad-en, xquad-de and mlqa-de-dev,
each query's own paragraph removed from its ranking), each with relevance.py's seeded 30% tuning
split. The rule is the setting with the best mean tuning nDCG@10 over the eight (on a tie the lower T);
the other 70% of each set is reported, and so is each long set's whole-document convex fusion of bm25s and e5
(long_queries.py; issue 16's floor for hybrid). Hybrid runs ``search eval``'s code path (run_queries)
on the cached eval indexes, with the setting given explicitly to the long queries.

    python benchmarks/long_fusion.py     # writes benchmarks/results/long_fusion.{md,json} (~20 min)
    python benchmarks/long_fusion.py --render   # the .md again from the .json
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

from _common import RESULTS, heading, log, per_query_ndcg10, stamp, write_results
from long_queries import without_own
from long_rule import mean, query_sets
from relevance import eval_index, split

ALPHAS = [0.5, 0.6, 0.7, 0.8, 0.9]
MUS = [1.0, 2.0, 4.0]
WORDS = [20, 30, 50]  # the rule applies past T words; 20 is the default long_words (tests/test_readme_figures.py)
METHOD = "Method: the script's docstring."


def per_query(name: str, judged: Any, own: dict[str, str]) -> dict[str, Any]:
    """Each query's nDCG@10 with the defaults (as ``search eval`` runs them, before this rule), and each long
    query's under every (α, μ). Every run embeds the whole set, as ``search eval`` does (run_queries' ``only``):
    a query's int8 vector varies slightly with its batch mates."""
    from search import Index, SearchParams
    from search.evaluate import run_queries

    _, folder = eval_index(name)
    with Index.open(folder) as ix:
        long_words = ix.manifest.scoring.long_words
        words = {q: n for q, t in judged.queries.items() if (n := ix.keyword.parse(t).words) > long_words}
        long = set(words)
        short = set(judged.queries) - long
        vectors = ix.searcher().query_vectors(list(judged.queries.values()))  # as run_queries embeds the whole set
        out: dict[str, Any] = {"long": sorted(long), "words": words}
        base = {}
        if short:  # the engine's defaults (a keyword query's own weights included): the rule leaves them alone
            run = run_queries(ix, judged, "hybrid", params=SearchParams(), only=short, vectors=vectors)
            base = {q: v for q, v in per_query_ndcg10(judged.qrels, without_own(run, own)).items() if q in short}
        for alpha, mu in itertools.product(ALPHAS, MUS):
            scores = dict(base)
            if long:
                params = SearchParams(alpha=alpha, doc_weight=mu)
                run = without_own(run_queries(ix, judged, "hybrid", params=params, only=long, vectors=vectors), own)
                scores.update({q: v for q, v in per_query_ndcg10(judged.qrels, run).items() if q in long})
            out[f"{alpha:g}/{mu:g}"] = scores
    return out


def _cells(row: dict[str, Any], words: int, alpha: float, mu: float) -> dict[str, float]:
    """A set's nDCG@10 (tuning, held out, all) with (α, μ) for its plain queries past ``words`` words and the
    defaults for the rest."""
    from search.params import HYBRID_ALPHA, HYBRID_DOC_WEIGHT

    scores = dict(row[f"{HYBRID_ALPHA:g}/{HYBRID_DOC_WEIGHT:g}"])
    scores.update({q: v for q, v in row[f"{alpha:g}/{mu:g}"].items() if row["words"].get(q, 0) > words})
    tune = set(row["tune"])
    return {"tuning": mean(scores, tune), "heldout": mean(scores, set(scores) - tune), "all": mean(scores, set(scores))}


def convex_reference() -> dict[tuple[str, str], dict[str, float]]:
    """long_queries.json's whole-document convex fusion of bm25s and e5: tuning, held out and all."""
    import json

    rows = json.loads((RESULTS / "long_queries.json").read_text(encoding="utf-8"))["rows"]
    return {(r["collection"], r["queries"]): r["convex"] for r in rows}


def main() -> None:
    from search.params import HYBRID_ALPHA, HYBRID_DOC_WEIGHT

    rows = []
    for name, kind, judged, own in query_sets():
        log(f"{name} {kind}: {len(judged.queries)} queries")
        tune = sorted(split(list(judged.queries)))
        rows.append({"collection": name, "queries": kind, "count": len(judged.queries), "tune": tune,
                     **per_query(name, judged, own)})  # fmt: skip
    grid = [
        {"words": t, "alpha": alpha, "mu": mu, "cells": [_cells(row, t, alpha, mu) for row in rows]}
        for t, alpha, mu in itertools.product(WORDS, ALPHAS, MUS)
    ]
    for g in grid:
        g["tuning_mean"] = statistics.fmean(c["tuning"] for c in g["cells"])
    best = max(grid, key=lambda g: g["tuning_mean"])
    off = next(g for g in grid if (g["words"], g["alpha"], g["mu"]) == (WORDS[0], HYBRID_ALPHA, HYBRID_DOC_WEIGHT))
    convex = convex_reference()
    sets = [
        {"collection": r["collection"], "queries": r["queries"], "count": r["count"], "long": len(r["long"]),
         "past": {str(t): sum(w > t for w in r["words"].values()) for t in WORDS},  # str: as json reads it
         "convex": convex.get((r["collection"], r["queries"]))}
        for r in rows
    ]  # fmt: skip
    figures = {**stamp("python benchmarks/long_fusion.py"), "sets": sets, "grid": grid, "chosen": best, "off": off}
    write_results("long_fusion", figures, render(figures))


def render(figures: dict[str, Any]) -> list[str]:
    best, off, sets = figures["chosen"], figures["off"], figures["sets"]
    lines = [
        *heading("Hybrid mode's long-query fusion, chosen on tuning splits", figures, METHOD),
        f"Chosen: **α {best['alpha']:g}, μ {best['mu']:g} for plain queries of more than {best['words']} words** "
        f"(mean tuning nDCG@10 {best['tuning_mean']:.4f}; the defaults α {off['alpha']:g}, μ {off['mu']:g} for "
        f"every query: {off['tuning_mean']:.4f})." + _edge(best),
        "",
        "## nDCG@10 hybrid, defaults → chosen (whole-document convex fusion of bm25s and e5 beside it)",
        "",
        f"| collection | queries | n | queries past {best['words']} words | tuning | held out | all | "
        "convex: tuning / held out / all |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s, before, after in zip(sets, off["cells"], best["cells"], strict=True):
        cells = " | ".join(f"{before[k]:.4f} → {after[k]:.4f}" for k in ("tuning", "heldout", "all"))
        c = s["convex"]
        ref = f"{c['tuning']:.4f} / {c['heldout']:.4f} / {c['all']:.4f}" if c else "–"
        past = s["past"][str(best["words"])]
        lines.append(f"| {s['collection']} | {s['queries']} | {s['count']} | {past} | {cells} | {ref} |")
    lines += [
        "",
        "## Mean tuning nDCG@10 over the eight sets, every setting",
        "",
        "| T | α | μ | mean tuning | " + " | ".join(f"{s['collection']} {s['queries']}" for s in sets) + " |",
        "|---|---|---|---|" + "---|" * len(sets),
    ]
    for g in sorted(figures["grid"], key=lambda g: -g["tuning_mean"]):
        cells = " | ".join(f"{c['tuning']:.4f}" for c in g["cells"])
        lines.append(f"| {g['words']} | {g['alpha']:g} | {g['mu']:g} | {g['tuning_mean']:.4f} | {cells} |")
    return lines


def _edge(best: dict[str, Any]) -> str:
    """Says so where the choice lies on the grid's edge (the optimum may lie beyond what was tried)."""
    edges = [f"{name} {value:g} is the {'lowest' if value == min(grid) else 'highest'} tried"
             for name, value, grid in (("α", best["alpha"], ALPHAS), ("μ", best["mu"], MUS))
             if value in (min(grid), max(grid))]  # fmt: skip
    if best["words"] == max(WORDS):  # T's lowest, 20, is where keyword mode's long queries begin
        edges.append(f"T {best['words']} is the highest tried")
    return f" On the grid's edge: {' and '.join(edges)}." if edges else ""


if __name__ == "__main__":
    import json
    import sys

    if sys.argv[1:] == ["--render"]:
        figures = json.loads((RESULTS / "long_fusion.json").read_text(encoding="utf-8"))
        write_results("long_fusion", figures, render(figures))
    else:
        main()
