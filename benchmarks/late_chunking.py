"""Issue 13, item 3: document vectors from the sentences' own pass ("late chunking"), measured.

Today every sentence is embedded on its own and every document a second time (title and opening
text, DOC_TOKENS tokens) for its document vector. Late chunking (Günther et al., 2024) runs the
model once over the document and takes each sentence's vector as the mean of its own tokens'
output vectors, in the context of the document; the document vector is the pooled output of the
same pass. One pass instead of two: the document vectors come free.

How it is computed here: the default model's int8 export with its last layer's token vectors as a
second output (nothing else of the graph changes). A document's text is tokenised once; its
sentences (the index's own offsets) are packed greedily into windows of at most ``WINDOW`` tokens,
``[CLS] passage: [title\\n] sentences… [SEP]`` (the title in the first window only), a sentence
longer than a window is cut. A sentence's vector: the mean of its tokens, normalised. The document's:
the pooled output of its first window (today's vector reads the same title and opening text, cut at
DOC_TOKENS tokens). Windows run in batches of 16, sorted by length, as the encoder runs sentences.

Relevance: each query of the five collections is scored by the engine once (relevance.py's
candidates: 1,000 sentences per side); with late vectors the semantic side's top 1,000 are taken
again from the late vectors and every new candidate gets its keyword score from the index, then
the engine's formulas rank (relevance.py's ``doc_scores``, the hybrid defaults, μ chosen per way on
the seeded 30% tuning splits). Ways: ``today`` (the index's vectors), ``late`` (both late),
``late sentences`` (late sentence vectors, today's document vectors: what the pass costs
the sentences alone). Cost: the seconds to embed a 300-document scifact sample each way
(today: the sentences, then the document openings; late: the windows), interleaved, median of 3.

    python benchmarks/late_chunking.py            # ~25 minutes on 2 cores with the eval indexes built
    python benchmarks/late_chunking.py --render   # the .md again from the .json
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import numpy as np
from _common import RESULTS, heading, interleaved, log, stamp, write_results
from relevance import (
    COLLECTIONS,
    MUS,
    Candidates,
    Setting,
    defaults,
    doc_scores,
    eval_index,
    ndcg10,
    split,
    stored_vectors,
    top,
)

WINDOW = 256  # today's document vectors read DOC_TOKENS = 256 tokens
HIDDEN = "/encoder/encoder/layer.11/output/LayerNorm/LayerNormalization_output_0"  # the last layer's tokens
WAYS = ("today", "late", "late sentences")
COST_SAMPLE = 300


class LatePass:
    """The default model's export with token vectors as a second output, and its tokenizer untruncated."""

    def __init__(self) -> None:
        import onnx
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from search.encoder import onnx_folder, recipe_of, resolve_model
        from search.onnx_export import ensure_onnx

        ref = resolve_model(None)
        model = onnx.load(str(ensure_onnx(ref.path, onnx_folder(ref), recipe_of(ref))))
        model.graph.output.append(onnx.helper.make_tensor_value_info(HIDDEN, onnx.TensorProto.FLOAT, None))
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(str(ref.path / "tokenizer.json"))
        self.tok.no_padding()
        self.tok.no_truncation()
        probe = self.tok.encode("x").ids
        self.cls, self.sep = probe[0], probe[-1]
        self.prompt = self.tok.encode("passage: ", add_special_tokens=False).ids

    def windows(self, title: str, text: str, spans: list[tuple[int, int, int]]) -> list[tuple[list[int], list]]:
        """(token ids, [(sentence key, first, end) positions in them]) of one document's windows."""
        header = self.tok.encode(f"{title}\n", add_special_tokens=False).ids if title else []
        enc = self.tok.encode(text, add_special_tokens=False)
        starts = np.array([s for s, _ in enc.offsets], dtype=np.int64)
        ranges = [(k, int(np.searchsorted(starts, s)), int(np.searchsorted(starts, e))) for k, s, e in spans]
        out: list[tuple[list[int], list]] = []
        i = 0
        while i < len(ranges):
            head = header if not out else []
            budget = WINDOW - 2 - len(self.prompt) - len(head)
            first = ranges[i][1]
            j = i
            while j < len(ranges) and ranges[j][2] - first <= budget:
                j += 1
            j = max(j, i + 1)  # a sentence longer than the window is cut
            end = min(ranges[j - 1][2], first + budget)
            lead = 1 + len(self.prompt) + len(head)
            ids = [self.cls, *self.prompt, *head, *enc.ids[first:end], self.sep]
            out.append((ids, [(k, lead + a - first, lead + min(b, end) - first) for k, a, b in ranges[i:j]]))
            i = j
        return out

    def run(
        self, docs: list[tuple[str, str, list[tuple[int, int, int]]]]
    ) -> tuple[dict[Any, np.ndarray], np.ndarray, int]:
        """Each sentence key's late vector, each document's (its first window pooled), and the tokens run."""
        windows = [(d, w) for d, doc in enumerate(docs) for w in self.windows(*doc)]
        first = {}
        for n, (d, _) in enumerate(windows):
            first.setdefault(d, n)
        order = sorted(range(len(windows)), key=lambda n: len(windows[n][1][0]))
        sentences: dict[Any, np.ndarray] = {}
        documents: np.ndarray | None = None
        tokens = 0
        for lo in range(0, len(order), 16):
            part = order[lo : lo + 16]
            width = max(len(windows[n][1][0]) for n in part)
            ids = np.ones((len(part), width), dtype=np.int64)
            mask = np.zeros((len(part), width), dtype=np.int64)
            for r, n in enumerate(part):
                row = windows[n][1][0]
                ids[r, : len(row)], mask[r, : len(row)] = row, 1
                tokens += len(row)
            pooled, hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})
            for r, n in enumerate(part):
                d, (_, positions) = windows[n]
                if first[d] == n:
                    if documents is None:
                        documents = np.zeros((len(docs), pooled.shape[1]), dtype=np.float32)
                    documents[d] = pooled[r]
                for key, a, b in positions:
                    if b > a:
                        v = hidden[r, a:b].mean(axis=0)
                        sentences[key] = v / np.linalg.norm(v)
        assert documents is not None
        return sentences, documents, tokens


def collection(name: str, late: LatePass) -> dict[str, Any]:
    """Every way's nDCG@10 (all queries and the tuning split) at every μ, and what the late pass ran."""
    from search import Index, SearchParams
    from search.evaluate import CHUNK_DEPTH

    judged, folder = eval_index(name)
    base, _ = defaults()
    with Index.open(folder) as ix:
        drow, today_docs = stored_vectors(ix.doc_vectors)
        srow, today = stored_vectors(ix.vectors)
        nums = sorted(drow, key=drow.__getitem__)
        by_doc: dict[int, list[tuple[int, int, int, int]]] = {n: [] for n in nums}
        for c in ix.chunks.records():
            by_doc[c.doc].append((c.position, c.id, c.start, c.end))
        docs = [
            (ix.document(n).title, ix.document(n).text, [(k, s, e) for _, k, s, e in sorted(by_doc[n])]) for n in nums
        ]
        t = time.perf_counter()
        vecs, late_docs, tokens = late.run(docs)
        seconds = time.perf_counter() - t
        late_sents = today.copy()  # a sentence with no token of its own (cut off) keeps today's vector
        chunk_of_row = np.empty(len(srow), dtype=np.int64)
        for cid, r in srow.items():
            chunk_of_row[r] = cid
            if cid in vecs:
                late_sents[r] = vecs[cid]
        matrices = {
            "today": (today, today_docs),
            "late": (late_sents, late_docs),
            "late sentences": (late_sents, today_docs),
        }
        cands: dict[str, list[Candidates]] = {w: [] for w in WAYS}
        qids: list[str] = []
        searcher = ix.searcher()
        items = list(judged.queries.items())
        params = SearchParams(mode="hybrid", candidates=CHUNK_DEPTH, feedback=0)
        for (qid, text), q in zip(items, searcher.query_vectors([t for _, t in items]), strict=True):
            if q is None:
                continue
            s = searcher.score(text, params, query_vector=q)
            keyword_top = {h.chunk_id for h in ix.keyword.search(s.parsed, CHUNK_DEPTH, None)}
            sims = late_sents @ q
            best = np.argpartition(-sims, min(CHUNK_DEPTH, len(sims) - 1))[:CHUNK_DEPTH]
            late_ids = sorted(keyword_top | {int(c) for c in chunk_of_row[best]})
            kw = dict(s.keyword) | ix.keyword.scores_for(s.parsed, [c for c in late_ids if c not in s.keyword])
            for way in WAYS:
                ids = sorted(s.cosine) if way == "today" else late_ids
                sents, documents = matrices[way]
                dnums = [ix.chunk(c).doc for c in ids]
                local = {n: i for i, n in enumerate(dict.fromkeys(dnums))}
                rows = np.array([drow[n] for n in local])
                cands[way].append(
                    Candidates(
                        np.array([local[n] for n in dnums]),
                        [ix.document(n).id for n in local],
                        rows,
                        np.array([kw.get(c, 0.0) for c in ids], dtype=np.float64),
                        (sents[[srow[c] for c in ids]] @ q).astype(np.float64),
                        (documents[rows] @ q).astype(np.float64),
                        q,
                    )
                )
            qids.append(qid)
        agree = float(np.mean(np.sum(late_sents * today, axis=1)))
    tune = split(qids)
    out: dict[str, Any] = {"sentences": len(srow), "documents": len(nums), "tokens": tokens, "seconds": seconds}
    out["mean_cosine_late_to_today"] = agree
    for way in WAYS:
        documents = matrices[way][1]
        for mu in MUS:
            for mode, st in (("hybrid", replace(base, mu=mu)), ("semantic", Setting("semantic", mu=mu))):
                run = {q: top(doc_scores(st, c, documents), c.docs, 100) for q, c in zip(qids, cands[way], strict=True)}
                out.setdefault(way, {})[f"{mode} μ={mu:g}"] = {
                    "all": ndcg10(judged.qrels, run),
                    "tune": ndcg10(judged.qrels, run, tune),
                }
    log(f"{name}: {len(srow)} sentences, {tokens} tokens in {seconds:.0f} s; mean cosine late/today {agree:.3f}")
    return out


def cost(late: LatePass) -> dict[str, Any]:
    """Seconds to embed a scifact sample today's way (sentences, then document openings) and the late way."""
    from doc_vectors import embed

    from search import Index
    from search.chunking import DOC_TOKENS
    from search.components import document_text
    from search.encoder import load_encoder

    enc = load_encoder()
    _, folder = eval_index("scifact")
    with Index.open(folder) as ix:
        nums = sorted(random.Random(7).sample(sorted(ix.docs_by_num), COST_SAMPLE))
        docs = [ix.document(n) for n in nums]
        spans = [[(s.start, s.start, s.end) for s in ix.sentences(n)] for n in nums]
    sentences = [d.text[s:e] for d, sp in zip(docs, spans, strict=True) for _, s, e in sp]
    jobs = {
        "sentences": lambda: enc.encode_passages(sentences),
        "documents": lambda: embed(enc, [document_text(d) for d in docs], DOC_TOKENS),
        "late": lambda: late.run([(d.title, d.text, sp) for d, sp in zip(docs, spans, strict=True)]),
    }
    return {"n_documents": len(docs), "n_sentences": len(sentences)} | interleaved(jobs)


def main() -> None:
    if "--render" in sys.argv:
        figures = json.loads((RESULTS / "late_chunking.json").read_text(encoding="utf-8"))
        write_results("late_chunking", figures, report(figures))
        return
    figures: dict[str, Any] = stamp("python benchmarks/late_chunking.py") | {"window": WINDOW}
    late = LatePass()
    figures["collections"] = {}
    for name in COLLECTIONS:
        log(f"{name}: late pass and candidates")
        figures["collections"][name] = collection(name, late)
    log("cost on a scifact sample")
    figures["cost"] = cost(late)
    hybrid, semantic_mu = defaults()
    figures["defaults"] = {"hybrid_mu": hybrid.mu, "semantic_mu": semantic_mu}
    write_results("late_chunking", figures, report(figures))


def _choose(f: dict[str, Any], way: str, mode: str) -> float:
    """μ with the best mean tuning nDCG@10 over the collections."""
    cols = f["collections"].values()
    return max(MUS, key=lambda mu: statistics.mean(c[way][f"{mode} μ={mu:g}"]["tune"] for c in cols))


def report(f: dict[str, Any]) -> list[str]:
    cols = list(f["collections"])
    c = f["cost"]
    today_s = c["sentences"] + c["documents"]
    lines = heading(
        "Late chunking: document vectors from the sentences' own pass", f, "Method: see the script's docstring."
    )
    lines += [
        f"## Cost ({c['n_documents']} scifact documents, {c['n_sentences']} sentences,"
        f" {f['window']}-token windows; median of 3 interleaved)",
        "",
        f"Today: sentences {c['sentences']:.1f} s + document openings {c['documents']:.1f} s = {today_s:.1f} s "
        f"(documents {c['documents'] / today_s:.0%} of it). Late: one pass, {c['late']:.1f} s "
        f"(**{c['late'] / today_s:.2f}×** today's two).",
        "",
    ]
    mu_h, mu_s = f["defaults"]["hybrid_mu"], f["defaults"]["semantic_mu"]
    for mode, default in (("hybrid", mu_h), ("semantic", mu_s)):
        lines += [
            f"## {mode.capitalize()} nDCG@10, all test queries"
            f" (μ chosen per way on the tuning splits; today's default μ={default:g})",
            "",
            "| way | μ | " + " | ".join(cols) + " | worst Δ vs today |",
            "|---|---|" + "---|" * len(cols) + "---|",
        ]
        ref = [f["collections"][n]["today"][f"{mode} μ={default:g}"]["all"] for n in cols]
        for way in WAYS:
            mu = default if way == "today" else _choose(f, way, mode)
            vals = [f["collections"][n][way][f"{mode} μ={mu:g}"]["all"] for n in cols]
            worst = min(v - r for v, r in zip(vals, ref, strict=True))
            lines.append(f"| {way} | {mu:g} | " + " | ".join(f"{v:.4f}" for v in vals) + f" | {worst:+.4f} |")
        lines.append("")
    worst = min(
        f["collections"][n]["late"][f"hybrid μ={_choose(f, 'late', 'hybrid'):g}"]["all"]
        - f["collections"][n]["today"][f"hybrid μ={mu_h:g}"]["all"]
        for n in cols
    )
    verdict = "met" if worst >= -0.005 else "not met: today's two passes stay"
    lines += [
        f"Issue 13's bar, hybrid within 0.005 of today on every collection: late {worst:+.4f}, **{verdict}**.",
        "",
    ]
    agree = ", ".join(f"{n} {f['collections'][n]['mean_cosine_late_to_today']:.3f}" for n in cols)
    lines.append(f"Mean cosine of a sentence's late vector to today's: {agree}.")
    return lines


if __name__ == "__main__":
    main()
