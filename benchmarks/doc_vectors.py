"""Issue 13, item 3: what a document vector costs, and what each cheaper way of making one keeps.

Today's document vector embeds the title and the opening text of every document a second time, up
to 512 tokens (the sentences were embedded already). Ways to make one, each measured here:
- ``full-512``: the way before (title and opening text, up to 512 tokens);
- ``cap-N``: the same text cut at N tokens;
- ``mean``: the mean of the document's sentence vectors (no embedding at all);
- ``mean-len``: the same, each sentence weighted by its length in characters;
- ``first-N``: the mean of its first N sentence vectors;
- ``title+mean``: the title embedded alone (a few tokens) plus the mean of the sentence vectors
  (``title+2·mean``: the mean counted twice);
- ``title+first-N``: the title plus the first N sentence vectors;
- ``as built``: the eval index's own document vectors, as the engine made them (its token share
  is printed as the titles').

Relevance: hybrid and semantic nDCG@10 with the defaults, by the engine's own scoring replayed over
each query's candidates (benchmarks/relevance.py's ``collect``; the candidates come from the sentence
vectors alone, so only the document cosines change). The document weight μ is chosen again per way
on the tuning splits (the seeded 30%); figures are given on all test queries and on the held-out 70%.
Cost: the tokens each way embeds, as a share of the tokens of the sentences (exact), and the time to
embed them against the time to embed the sentences of the same documents (a 300-document sample of
scifact, interleaved, median of 3).

    python benchmarks/doc_vectors.py     # ~20 minutes on 2 cores with cold eval indexes
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable
from typing import Any

import numpy as np
from _common import interleaved, log, stamp, write_results
from relevance import MUS, TARGETS, collect, defaults, doc_scores, ndcg10, split, top

SETS = list(TARGETS)

CAPS = (256, 128, 64)
FIRST = (1, 3)
COST_SAMPLE = 300


def _normalise(m: np.ndarray) -> np.ndarray:
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


class Collection:
    """One eval index, its documents in document-vector row order, and their sentence vectors."""

    def __init__(self, name: str) -> None:
        from relevance import stored_vectors

        from search import Index

        self.name = name
        self.qids, self.cands, self.full, self.qrels, self.size, context = collect(name)
        self.judged, folder = context
        with Index.open(folder) as ix:
            drow, _ = stored_vectors(ix.doc_vectors)
            srow, sentences = stored_vectors(ix.vectors)
            nums = sorted(drow, key=drow.__getitem__)
            self.docs = [ix.document(n) for n in nums]
            by_doc: dict[int, list[tuple[int, int, int, str]]] = {n: [] for n in nums}
            for c in ix.chunks.records():
                text = ix.document(c.doc).text[c.start : c.end]
                by_doc[c.doc].append((c.position, srow[c.id], len(text), text))
        rows = [sorted(by_doc[n]) for n in nums]
        self.rows = [[(p, s, n) for p, s, n, _ in r] for r in rows]  # (position, sentence row, length) per document
        self.sentence_texts = [[t for *_, t in r] for r in rows]
        self.sentences = sentences

    def pooled(self, first: int | None = None, by_length: bool = False) -> np.ndarray:
        out = np.zeros_like(self.full)
        for r, rows in enumerate(self.rows):
            rows = rows[:first] if first else rows
            w = np.array([n if by_length else 1 for _, _, n in rows], dtype=np.float32)
            out[r] = (w[:, None] * self.sentences[[s for _, s, _ in rows]]).sum(axis=0) / w.sum()
        return _normalise(out)


def document_texts(c: Collection) -> list[str]:
    from search.components import document_text

    return [document_text(d) for d in c.docs]


def embed(enc: Any, texts: list[str], cap: int | None) -> np.ndarray:
    enc.tokenizer.enable_truncation(cap or 512)
    try:
        return np.asarray(enc.encode_passages(texts))
    finally:
        enc.tokenizer.enable_truncation(512)


def tokens(enc: Any, texts: list[str], cap: int | None) -> int:
    prefix = enc.passage_prompt
    return sum(min(len(e.ids), cap or 512) for e in enc.tokenizer.encode_batch([prefix + t for t in texts]))


def variants(c: Collection, enc: Any) -> dict[str, tuple[np.ndarray, int]]:
    """Each way's document vectors and the tokens it embeds."""
    texts = document_texts(c)
    titles = [d.title for d in c.docs]
    titled = [i for i, t in enumerate(titles) if t.strip()]
    title_vecs = np.zeros_like(c.full)
    if titled:
        title_vecs[titled] = embed(enc, [titles[i] for i in titled], 64)
    title_tokens = tokens(enc, [titles[i] for i in titled], 64)
    out: dict[str, tuple[np.ndarray, int]] = {}
    for cap in (512, *CAPS):
        out["full-512" if cap == 512 else f"cap-{cap}"] = (_normalise(embed(enc, texts, cap)), tokens(enc, texts, cap))
    mean = c.pooled()
    out["mean"] = (mean, 0)
    out["mean-len"] = (c.pooled(by_length=True), 0)
    out["title+mean"] = (_normalise(title_vecs + mean), title_tokens)
    out["title+2·mean"] = (_normalise(title_vecs + 2 * mean), title_tokens)
    out["as built"] = (c.full, title_tokens)  # the eval index's own, as the engine made them
    for n in FIRST:
        first = c.pooled(first=n)
        out[f"first-{n}"] = (first, 0)
        out[f"title+first-{n}"] = (_normalise(title_vecs + first), title_tokens)
    return out


def score(c: Collection, documents: np.ndarray, mode: str, mu: float) -> dict[str, dict[str, float]]:
    """A run of ``mode`` (hybrid with the defaults, or semantic) with these document vectors and weight μ."""
    from dataclasses import replace

    hybrid, _ = defaults()
    from relevance import Setting

    st = replace(hybrid, mu=mu) if mode == "hybrid" else Setting("semantic", mu=mu)
    run = {}
    for qid, cand in zip(c.qids, c.cands, strict=True):
        cand.doc_cosine = documents[cand.doc_rows] @ cand.query
        run[qid] = top(doc_scores(st, cand, documents), cand.docs, 100)
    return run


def costs(c: Collection, enc: Any) -> dict[str, float]:
    """Seconds to embed each way's text for a sample of documents, against their sentences (median of 3)."""
    rng = random.Random(7)
    pick = sorted(rng.sample(range(len(c.docs)), min(COST_SAMPLE, len(c.docs))))
    sents = [s for i in pick for s in c.sentence_texts[i]]
    every = document_texts(c)
    texts = [every[i] for i in pick]
    titles = [c.docs[i].title for i in pick if c.docs[i].title.strip()]
    jobs: dict[str, Callable[[], object]] = {
        "sentences": lambda: enc.encode_passages(sents),
        **{f"cap-{cap}": (lambda cap=cap: embed(enc, texts, cap)) for cap in (512, *CAPS)},
        "title": lambda: embed(enc, titles, 64),
    }
    med = interleaved(jobs)
    return {"sentences_s": med["sentences"], "sentences": len(sents), "documents": len(pick)} | {
        k: med[k] / med["sentences"] for k in jobs if k != "sentences"
    }


def main() -> None:
    from search.encoder import load_encoder

    figures: dict[str, Any] = stamp("python benchmarks/doc_vectors.py")
    enc = load_encoder()
    collections = []
    for name in SETS:
        log(f"{name}: eval index and candidates")
        collections.append(Collection(name))
    table: dict[str, dict[str, Any]] = {}
    for c in collections:
        log(f"{c.name}: document vectors each way")
        sentence_tokens = tokens(enc, [s for d in c.sentence_texts for s in d], 512)
        tune = split(c.qids)
        for way, (docs, n) in variants(c, enc).items():
            row = table.setdefault(way, {})
            entry: dict[str, Any] = {"token_share": n / sentence_tokens}
            for mode in ("hybrid", "semantic"):
                for mu in MUS:
                    run = score(c, docs, mode, mu)
                    entry[f"{mode} μ={mu:g}"] = {
                        "all": ndcg10(c.qrels, run),
                        "tune": ndcg10(c.qrels, run, tune),
                        "heldout": ndcg10(c.qrels, run, set(c.qrels) - tune),
                    }
            row[c.name] = entry
    figures["ways"] = table
    log("cost on a scifact sample")
    figures["cost"] = costs(collections[SETS.index("scifact")], enc)
    hybrid, semantic_mu = defaults()
    figures["defaults"] = {"hybrid_mu": hybrid.mu, "semantic_mu": semantic_mu}
    write_results("doc_vectors", figures, report(figures))


def _choose(entry: dict[str, dict[str, Any]], mode: str) -> float:
    """μ with the best mean tuning nDCG@10 over the collections."""
    return max(MUS, key=lambda mu: statistics.mean(e[f"{mode} μ={mu:g}"]["tune"] for e in entry.values()))


def report(f: dict[str, Any]) -> list[str]:
    lines = [
        "# Document vectors: what each way costs and keeps",
        "",
        f"`{f['command']}` on {f['date']}, {f['machine']}. Method: see the script's docstring.",
        "",
    ]
    base = f["ways"]["full-512"]
    mu_h, mu_s = f["defaults"]["hybrid_mu"], f["defaults"]["semantic_mu"]
    cols = list(base)
    lines += [
        f"## Hybrid nDCG@10, all test queries (μ chosen per way on the tuning splits; today's: μ={mu_h:g})",
        "",
        "| way | tokens / sentence tokens | μ | " + " | ".join(cols) + " | worst Δ vs full-512 | held-out mean |",
        "|---|---|---|" + "---|" * len(cols) + "---|---|",
    ]
    for way, entry in f["ways"].items():
        mu = mu_h if way == "full-512" else _choose(entry, "hybrid")
        key = f"hybrid μ={mu:g}"
        ref = f"hybrid μ={mu_h:g}"
        vals = [entry[c][key]["all"] for c in cols]
        delta = min(v - base[c][ref]["all"] for v, c in zip(vals, cols, strict=True))
        held = statistics.mean(entry[c][key]["heldout"] for c in cols)
        share = statistics.mean(entry[c]["token_share"] for c in cols)
        lines.append(
            f"| {way} | {share:.2f} | {mu:g} | "
            + " | ".join(f"{v:.4f}" for v in vals)
            + f" | {delta:+.4f} | {held:.4f} |"
        )
    lines += [
        "",
        f"## Semantic nDCG@10, all test queries (μ chosen per way; today's: μ={mu_s:g})",
        "",
        "| way | μ | " + " | ".join(cols) + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for way, entry in f["ways"].items():
        mu = mu_s if way == "full-512" else _choose(entry, "semantic")
        lines.append(
            f"| {way} | {mu:g} | " + " | ".join(f"{entry[c][f'semantic μ={mu:g}']['all']:.4f}" for c in cols) + " |"
        )
    cost = f["cost"]
    lines += [
        "",
        f"## Time to embed, against the sentences of the same {cost['documents']} scifact documents "
        f"({cost['sentences']} sentences, {cost['sentences_s']:.1f} s; median of 3 interleaved)",
        "",
        "| text | time / sentences' time |",
        "|---|---|",
        *(f"| {k} | {v:.2f} |" for k, v in cost.items() if k not in ("sentences_s", "sentences", "documents")),
    ]
    return lines


if __name__ == "__main__":
    main()
