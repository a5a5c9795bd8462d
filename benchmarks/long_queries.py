"""Issue 16, item 5: does keyword ranking hold for long queries, and does hybrid reach a plain
whole-document fusion?

References, both over whole documents (title and text):
- bm25s, Lucene BM25 (k1 1.2, b 0.75), its own tokeniser with the language's stopwords and
  Snowball stemmer;
- a convex fusion of that BM25 and multilingual-e5-small (the engine's int8 model; documents as
  ``passage:`` up to 512 tokens, queries as ``query:``), each side min-max normalised over the
  collection, α (the e5 side's weight, 0 to 1 by 0.05) chosen on the tuning split (relevance.py's
  seeded 30%) and reported on the rest and on all queries.

Query sets:
- the five shared collections' own queries (short: a median of 7 to 17 words);
- long queries, built from what we have, as ArguAna is built (an argument finds its counter-argument
  in the same debate): each paragraph of an article with two or more paragraphs becomes a query, and
  the article's other paragraphs are its relevant documents (xquad-en and xquad-de: the article is
  the id's middle part, 48 articles of 5 paragraphs; mlqa-de-dev: the title, articles with two or
  more paragraphs). The query's own paragraph is removed from every ranking before scoring, ours and
  the references'. A median of 73 to 110 words, up to 300 and more.

The engine's keyword and hybrid figures are ``search eval``'s code path with the defaults (run_queries).

    python benchmarks/long_queries.py     # writes benchmarks/results/long_queries.{md,json} (~15 min)
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from _common import DATA, heading, log, per_query_ndcg10, sign_flip_p, stamp, write_results
from relevance import COLLECTIONS, eval_index, split, top
from relevance import ndcg10 as ndcg

PAIRS = (("keyword", "bm25s"), ("hybrid", "convex"))
LANGUAGES = {"mlqa-de-dev": "de", "xquad-de": "de", "xquad-en": "en", "scifact": "en", "cranfield": "en"}
LONG = ["xquad-en", "xquad-de", "mlqa-de-dev"]
ALPHAS = [round(a * 0.05, 2) for a in range(21)]
DEPTH = 100
WITHIN = 0.01  # the bar for keyword against bm25s


def article_of(name: str, doc: dict[str, Any]) -> str:
    return doc["_id"].rsplit("-", 1)[0] if name.startswith("xquad") else doc["title"]


Qrels = dict[str, dict[str, int]]


def long_set(name: str, corpus: list[dict[str, Any]]) -> tuple[dict[str, str], Qrels, dict[str, str]]:
    """Queries, judgments and each query's own document: paragraph → the article's other paragraphs."""
    articles: dict[str, list[str]] = defaultdict(list)
    for doc in corpus:
        articles[article_of(name, doc)].append(doc["_id"])
    text = {d["_id"]: d["text"] for d in corpus}
    queries, qrels, own = {}, {}, {}
    for ids in articles.values():
        if len(ids) < 2:
            continue
        for doc_id in ids:
            qid = f"long-{doc_id}"
            queries[qid], own[qid] = text[doc_id], doc_id
            qrels[qid] = {other: 1 for other in ids if other != doc_id}
    return queries, qrels, own


def without_own(run: dict[str, dict[str, float]], own: dict[str, str]) -> dict[str, dict[str, float]]:
    return {q: {d: s for d, s in docs.items() if d != own.get(q)} for q, docs in run.items()}


class Reference:
    """Whole-document bm25s and e5 scores of every document for a collection's queries."""

    def __init__(self, name: str, corpus: list[dict[str, Any]], encoder: Any = None) -> None:
        """Without an encoder, bm25s alone (:meth:`bm25_scores`)."""
        import bm25s
        import Stemmer

        lang = LANGUAGES[name]
        self.stopwords = "german" if lang == "de" else "english"
        self.stemmer = Stemmer.Stemmer(self.stopwords)
        self.ids = [d["_id"] for d in corpus]
        texts = [f"{d['title']} {d['text']}".strip() for d in corpus]
        self.bm25 = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
        self.bm25.index(self._tokens(texts), show_progress=False)
        self.encoder = encoder
        self.vectors = self._doc_vectors(name, texts) if encoder is not None else np.zeros((0, 0))

    def _tokens(self, texts: list[str]) -> Any:
        import bm25s

        return bm25s.tokenize(texts, stopwords=self.stopwords, stemmer=self.stemmer, show_progress=False)

    def _doc_vectors(self, name: str, texts: list[str]) -> np.ndarray:
        from search.encoder import cache_dir

        path = cache_dir() / "eval" / f"whole-documents-{name}-{self.encoder.fingerprint[:12]}.npy"
        if path.exists():
            vectors = np.load(path)
            if len(vectors) == len(texts):
                return vectors
        log(f"{name}: embedding {len(texts)} whole documents (cached afterwards)")
        vectors = self.encoder.encode_passages(texts)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
        return vectors

    def bm25_scores(self, queries: dict[str, str]) -> tuple[list[str], np.ndarray]:
        """Query ids and BM25 (queries × documents)."""
        qids = list(queries)
        tokenized = self._tokens([queries[q] for q in qids])
        vocab = {i: w for w, i in tokenized.vocab.items()}
        return qids, np.stack([self.bm25.get_scores([vocab[i] for i in ids]) for ids in tokenized.ids])

    def scores(self, queries: dict[str, str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """Query ids, BM25 (queries × documents) and cosines (queries × documents)."""
        qids, bm25 = self.bm25_scores(queries)
        cosines = self.encoder.encode_queries([queries[q] for q in qids]) @ self.vectors.T
        return qids, bm25, cosines


def ranked(qids: list[str], ids: list[str], scores: np.ndarray, own: dict[str, str]) -> dict[str, dict[str, float]]:
    """Each query's best ``DEPTH`` documents (relevance.py's ``top``), its own paragraph left out."""
    position = {d: i for i, d in enumerate(ids)}
    run = {}
    for row, qid in enumerate(qids):
        s = scores[row].astype(np.float64)
        if qid in own:
            s[position[own[qid]]] = -np.inf
        run[qid] = top(s, ids, DEPTH)
    return run


def convex(bm25: np.ndarray, cosines: np.ndarray, alpha: float, mask: np.ndarray) -> np.ndarray:
    """Min-max each side per query over the documents that may be ranked, then (1-α)·BM25 + α·e5."""

    def norm(x: np.ndarray) -> np.ndarray:
        lo = np.where(mask, x, np.inf).min(axis=1, keepdims=True)
        hi = np.where(mask, x, -np.inf).max(axis=1, keepdims=True)
        return (x - lo) / np.maximum(hi - lo, 1e-12)

    return (1 - alpha) * norm(bm25) + alpha * norm(cosines)


def references(ref: Reference, queries: dict, qrels: dict, own: dict, tune: set[str]) -> dict[str, Any]:
    qids, bm25, cosines = ref.scores(queries)
    mask = np.array([[d != own.get(q) for d in ref.ids] for q in qids])
    runs = {"bm25s": ranked(qids, ref.ids, bm25, own), "e5": ranked(qids, ref.ids, cosines, own)}
    tuning = {a: ndcg(qrels, ranked(qids, ref.ids, convex(bm25, cosines, a, mask), own), tune) for a in ALPHAS}
    alpha = max(ALPHAS, key=lambda a: (round(tuning[a], 6), -abs(a - 0.5)))
    runs["convex"] = ranked(qids, ref.ids, convex(bm25, cosines, alpha, mask), own)
    return {"runs": runs, "alpha": alpha, "tuning": {str(a): v for a, v in tuning.items()}}


def engine_runs(name: str, queries: dict, qrels: dict, own: dict) -> dict[str, dict]:
    from search import Index
    from search.evaluate import Judged, run_queries

    judged_all, folder = eval_index(name)
    judged = Judged(name, queries, qrels, "document", corpus=judged_all.corpus)
    with Index.open(folder) as ix:
        return {mode: without_own(run_queries(ix, judged, mode), own) for mode in ("keyword", "hybrid")}


def measure(name: str, kind: str, ref: Reference, queries: dict, qrels: dict, own: dict) -> dict[str, Any]:
    tune = split(list(queries))
    held = set(queries) - tune
    refs = references(ref, queries, qrels, own, tune)
    runs = {**engine_runs(name, queries, qrels, own), **refs["runs"]}
    words = [len(t.split()) for t in queries.values()]
    out: dict[str, Any] = {
        "collection": name,
        "queries": kind,
        "count": len(queries),
        "words_median": statistics.median(words),
        "words_max": max(words),
        "alpha": refs["alpha"],
        "alpha_tuning": refs["tuning"],
    }
    for label, run in runs.items():
        out[label] = {"all": ndcg(qrels, run), "heldout": ndcg(qrels, run, held), "tuning": ndcg(qrels, run, tune)}
    per = {label: per_query_ndcg10(qrels, run) for label, run in runs.items()}
    for ours, theirs in PAIRS:  # is the difference on all queries more than chance? (paired sign-flip test)
        qids = sorted(per[ours])
        out[f"p_{ours}_{theirs}"] = sign_flip_p([per[ours][q] - per[theirs][q] for q in qids])
    log(
        f"{name} {kind}: keyword {out['keyword']['all']:.4f} bm25s {out['bm25s']['all']:.4f}  "
        f"hybrid {out['hybrid']['all']:.4f} convex(α={refs['alpha']}) {out['convex']['all']:.4f}"
    )
    return out


def main() -> None:
    from search.encoder import load_encoder
    from search.evaluate import load_beir, read_jsonl

    only = sys.argv[1:] or COLLECTIONS
    encoder = load_encoder()
    rows = []
    for name in only:
        corpus = read_jsonl(DATA / name / "corpus.jsonl")
        ref = Reference(name, corpus, encoder)
        judged = load_beir(DATA / name)
        rows.append(measure(name, "own", ref, judged.queries, judged.qrels, {}))
        if name in LONG:
            rows.append(measure(name, "long", ref, *long_set(name, corpus)))
    figures = {**stamp("python benchmarks/long_queries.py"), "rows": rows}
    write_results("long_queries", figures, render(figures))


def render(figures: dict[str, Any]) -> list[str]:
    title = "Long queries: keyword against whole-document BM25, hybrid against a whole-document fusion"
    lines = [
        *heading(title, figures, "How the long queries are built, and the references: see the script's docstring."),
        "## nDCG@10, all queries (the query's own paragraph removed from every ranking of the long sets)",
        "",
        "| collection | queries | n | words median / max | keyword | bm25s | keyword − bm25s (p) | hybrid"
        " | convex bm25s+e5 (α) | hybrid − convex (p) | e5 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in figures["rows"]:
        kw, bm, hy, cv = (r[k]["all"] for k in ("keyword", "bm25s", "hybrid", "convex"))
        p_kw, p_hy = (f" ({r[f'p_{a}_{b}']:.2f})" if f"p_{a}_{b}" in r else "" for a, b in PAIRS)
        lines.append(
            f"| {r['collection']} | {r['queries']} | {r['count']} | {r['words_median']:g} / {r['words_max']} | "
            f"{kw:.4f} | {bm:.4f} | {kw - bm:+.4f}{p_kw} {'✅' if kw >= bm - WITHIN else '❌'} | {hy:.4f} | "
            f"{cv:.4f} ({r['alpha']:g}) | {hy - cv:+.4f}{p_hy} {'✅' if hy >= cv else '❌'} | {r['e5']['all']:.4f} |"
        )
    lines += [
        "",
        "Targets (issue 16): keyword within 0.01 of bm25s, and hybrid at least the convex fusion, on every row.",
        "p: a paired sign-flip randomisation test of the difference on all queries (10,000 flips, seed 0,"
        " two-sided): how often a difference this large arises when each query's two scores are swapped at"
        " random. A small p says the difference is more than chance; a large one that these queries cannot"
        " tell the two apart.",
        "",
        "## Held out from the α tuning (70% of each set)",
        "",
        "| collection | queries | keyword | bm25s | hybrid | convex |",
        "|---|---|---|---|---|---|",
    ]
    for r in figures["rows"]:
        cells = " | ".join(f"{r[k]['heldout']:.4f}" for k in ("keyword", "bm25s", "hybrid", "convex"))
        lines.append(f"| {r['collection']} | {r['queries']} | {cells} |")
    return lines


if __name__ == "__main__":
    if "--render" in sys.argv:
        from _common import RESULTS

        state = json.loads((Path(RESULTS) / "long_queries.json").read_text())
        write_results("long_queries", state, render(state))
    else:
        main()
