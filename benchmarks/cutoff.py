"""Issue 16's calibrated cut-off: which hybrid score predicts a relevant document, and what cutting there trades.

For each of the five shared collections (its eval index cached, as relevance.py builds it) every test
query is run as ``search query`` runs it: default hybrid settings, 100 candidates a side. A document's
score is its best passage's fused score (what the result list shows), and the first 10 documents
are kept with their judgments.

Fit on the tuning split only (relevance.py's seeded 30% of each collection's queries): a logistic
regression of "judged relevant" on the score, pooled over the five collections with each collection
weighing the same, gives P(relevant | score). The cut-off probability is the one of ``PROBABILITIES``
with the best mean F1 of the kept documents over the five tuning splits; the score where the fit
reaches it is ``--cutoff auto`` (``AUTO_CUTOFF`` in search/params.py, checked against this file by
tests/test_readme_figures.py). Reported on the held-out 70%, beside no cut-off: documents kept per
query, their precision, and recall@10 (of all judged relevant documents).

Keyword queries (search.analysis.keyword_query) are fused with their own weights (keyword_queries.md), so
their scores read differently; their cut-off is fitted the same way on the one judged set of them,
queries/compounds.jsonl (sentence-level judgments: the first ten passages of each query over its index),
tuning split and held-out part as above (``KEYWORD_QUERY_CUTOFF`` in search/params.py).

    python benchmarks/cutoff.py        # writes benchmarks/results/cutoff.{md,json} (~12 minutes on 2 cores)
    python benchmarks/cutoff.py --keyword-queries   # that part alone (~2 minutes), the rest kept from the json
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

import numpy as np
from _common import RESULTS, log, stamp, write_results
from relevance import COLLECTIONS, eval_index, split

# 0.01 and 0.02 since keyword queries' best was 0.05 (80 queries then), the lowest tried: an optimum at the edge
# may lie beyond it
PROBABILITIES = [0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
TOP = 10


def collect(name: str) -> list[dict[str, Any]]:
    """Per query: its id, the first ``TOP`` documents' scores, whether each is judged relevant, and how
    many relevant documents the query has."""
    from search import Index, SearchParams
    from search.evaluate import aggregate

    judged, folder = eval_index(name)
    params = SearchParams(mode="hybrid")  # the defaults a user gets, cut-off off
    out = []
    with Index.open(folder) as ix:
        searcher = ix.searcher()
        items = list(judged.queries.items())
        for (qid, text), vec in zip(items, searcher.query_vectors([t for _, t in items]), strict=True):
            relevant = {d for d, g in judged.qrels.get(qid, {}).items() if g > 0}
            if vec is None or not relevant:
                continue
            fused = searcher.score(text, params, query_vector=vec).fused
            docs = aggregate(fused, lambda c: ix.document(ix.chunk(c).doc).id, "max")
            ranked = sorted(docs.items(), key=lambda x: (-x[1], x[0]))[:TOP]
            out.append(
                {
                    "qid": qid,
                    "scores": [s for _, s in ranked],
                    "relevant": [d in relevant for d, _ in ranked],
                    "judged": len(relevant),
                }
            )
    return out


def keyword_query_runs() -> list[dict[str, Any]]:
    """queries/compounds.jsonl over its index, ranked as ``search query`` ranks it (every query is a keyword
    query): per query the first ``TOP`` passages' fused scores and whether each is its relevant sentence."""
    from compounds import compound_set

    from search import SearchParams

    out = []
    with compound_set() as (judged, ix, qrels):
        searcher = ix.searcher()
        for qid, text in judged.queries.items():
            fused = searcher.score(text, SearchParams(mode="hybrid")).fused
            ranked = sorted(fused.items(), key=lambda x: (-x[1], x[0]))[:TOP]
            relevant = set(qrels[qid])
            scores, hits = [s for _, s in ranked], [str(c) in relevant for c, _ in ranked]
            out.append({"qid": qid, "scores": scores, "relevant": hits, "judged": len(relevant)})
    return out


def keyword_query_cutoff() -> dict[str, Any]:
    """The keyword queries' calibration, with the weights they were ranked with."""
    from search.params import KEYWORD_QUERY_ALPHA, KEYWORD_QUERY_DOC_WEIGHT

    weights = {"alpha": KEYWORD_QUERY_ALPHA, "doc_weight": KEYWORD_QUERY_DOC_WEIGHT}
    return {"weights": weights, **calibrate({"compounds.jsonl": keyword_query_runs()})}


def calibrate(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Fit P(relevant | score) on the tuning splits of ``runs`` (collection → queries), choose the probability
    with the best mean tuning F1, and report what cutting there trades on the held-out queries."""
    tune = {n: split([q["qid"] for q in qs]) for n, qs in runs.items()}
    xs, ys, ws = [], [], []
    for name, qs in runs.items():
        pairs = [(s, r) for q in qs if q["qid"] in tune[name] for s, r in zip(q["scores"], q["relevant"], strict=True)]
        xs += [s for s, _ in pairs]
        ys += [float(r) for _, r in pairs]
        ws += [1.0 / len(pairs)] * len(pairs)  # each collection weighs the same
    a, b = fit(np.array(xs), np.array(ys), np.array(ws) / np.sum(ws) * len(ws))
    log(f"P(relevant | score) = logistic({a:.3f} + {b:.3f} · score)")

    def tuning_f1(p: float) -> float:
        t = score_at(p, a, b)
        return statistics.mean(trade([q for q in qs if q["qid"] in tune[n]], t)["f1"] for n, qs in runs.items())

    by_p = {p: tuning_f1(p) for p in PROBABILITIES}
    chosen = max(PROBABILITIES, key=lambda p: by_p[p])
    table: dict[str, Any] = {}
    for name, qs in runs.items():
        held = [q for q in qs if q["qid"] not in tune[name]]
        table[name] = {
            "queries": len(held),
            "none": trade(held, None),
            **{f"p={p:g}": trade(held, score_at(p, a, b)) for p in PROBABILITIES},
        }
    return {
        "fit": {"intercept": a, "slope": b, "pairs": len(xs)},
        "tuning_f1": {f"{p:g}": v for p, v in by_p.items()},
        "chosen": {"probability": chosen, "score": score_at(chosen, a, b)},
        "heldout": table,
    }


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, steps: int = 50) -> tuple[float, float]:
    """Weighted logistic regression of ``y`` on ``x`` by Newton's method: (intercept, slope)."""
    beta = np.zeros(2)
    X = np.column_stack([np.ones_like(x), x])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        grad = X.T @ (w * (y - p))
        hess = X.T @ (X * (w * p * (1 - p))[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        beta += step
        if np.abs(step).max() < 1e-10:
            break
    return float(beta[0]), float(beta[1])


def score_at(p: float, a: float, b: float) -> float:
    """The score where P(relevant) = a logistic(a + b·score) reaches ``p``."""
    return (np.log(p / (1 - p)) - a) / b


def trade(queries: list[dict[str, Any]], threshold: float | None) -> dict[str, float]:
    """Mean over queries of documents kept, their precision (1 when none is kept and none was relevant in
    the first ten), recall@10 and F1 of the kept documents."""
    kept_n, prec, rec, f1 = [], [], [], []
    for q in queries:
        keep = [r for s, r in zip(q["scores"], q["relevant"], strict=True) if threshold is None or s >= threshold]
        hits = sum(keep)
        p = hits / len(keep) if keep else float(not any(q["relevant"]))
        r = hits / q["judged"]
        kept_n.append(len(keep))
        prec.append(p)
        rec.append(r)
        f1.append(2 * p * r / (p + r) if p + r else 0.0)
    mean = statistics.mean
    return {"kept": mean(kept_n), "precision": mean(prec), "recall@10": mean(rec), "f1": mean(f1)}


def main() -> None:
    if sys.argv[1:] == ["--keyword-queries"]:
        figures = json.loads((RESULTS / "cutoff.json").read_text(encoding="utf-8"))
        figures.update(stamp("python benchmarks/cutoff.py --keyword-queries"), questions_date=figures["date"])
        figures["keyword_queries"] = keyword_query_cutoff()
        write_results("cutoff", figures, render(figures))
        return
    runs: dict[str, list[dict[str, Any]]] = {}
    for name in COLLECTIONS:
        log(f"{name}: hybrid runs")
        runs[name] = collect(name)
    from search import SearchParams

    p = SearchParams()
    figures = {
        **stamp("python benchmarks/cutoff.py"),
        "defaults": {
            "alpha": p.effective_alpha,
            "doc_weight": p.effective_doc_weight,
            "feedback": p.feedback,
            "feedback_weight": p.feedback_weight,
            "candidates": p.candidates,
        },
        **calibrate(runs),
        "keyword_queries": keyword_query_cutoff(),
    }
    write_results("cutoff", figures, render(figures))


def render(f: dict[str, Any]) -> list[str]:
    since = f" The questions' part is from the full run of {f['questions_date']}." if "questions_date" in f else ""
    lines = [
        "# A calibrated cut-off for hybrid results (`--cutoff auto`)",
        "",
        f"`{f['command']}` on {f['date']}, {f['machine']}. Method: see the script's docstring.{since}",
        "",
        *calibration(f, "judged first-ten documents", "documents"),
    ]
    if "keyword_queries" in f:
        lines += [
            "",
            "## Keyword queries",
            "",
            "Fused with their own weights (keyword_queries.md), so fitted apart, on queries/compounds.jsonl:",
            "",
            *calibration(f["keyword_queries"], "first-ten passages, sentence-level judgments", "passages"),
        ]
    lines += [
        "",
        "The cut-off is off unless asked for (`--cutoff auto`, or `--min-score S` for a floor of one's own); "
        "it is calibrated for hybrid mode with convex fusion, the default, and refused elsewhere.",
    ]
    return lines


def calibration(f: dict[str, Any], pairs: str, what: str) -> list[str]:
    """One fit's lines: the fit, the chosen probability and score, and the held-out trade."""
    fit_, chosen = f["fit"], f["chosen"]
    lines = [
        f"Fit on the tuning splits ({fit_['pairs']:,} {pairs}): P(relevant | score) = "
        f"logistic({fit_['intercept']:.3f} + {fit_['slope']:.3f} · score). The probability with the best mean "
        f"tuning F1 is **{chosen['probability']:g}**, reached at fused score **{chosen['score']:.4f}**: "
        "`--cutoff auto` drops every passage scoring below it.",
        "",
        "Mean tuning F1 by probability: " + ", ".join(f"{p}: {v:.3f}" for p, v in f["tuning_f1"].items()) + ".",
        "",
        "Held-out queries (70%): what the cut-off keeps and loses",
        "",
        f"| collection | queries | cut-off | {what} kept (of 10) | precision | recall@10 | F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    auto = f"p={chosen['probability']:g}"
    keys = ["none", auto, *(k for k in ("p=0.1", "p=0.5") if k != auto)]
    for name, row in f["heldout"].items():
        for key in keys:
            t = row[key]
            label = f"{key} (auto)" if key == auto else key
            lines.append(
                f"| {name} | {row['queries']} | {label} | {t['kept']:.2f} | {t['precision']:.3f} | "
                f"{t['recall@10']:.3f} | {t['f1']:.3f} |"
            )
    return lines


if __name__ == "__main__":
    main()
