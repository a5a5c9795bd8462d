"""Issue 17's indexing target: the keyword side at 5,000 sentences/s or more, German compounds split.

The keyword stage of ``build_index`` alone (search/components.py: the BM25 term matrices, each sentence
analysed with its compounds' parts; query syntax runs over them since format 8, and whoosh's positional
index, which held the stage to a tenth of bm25s's speed, is gone): the index is built in a new process
with a constant stand-in model (keyword_scoring.py's), so no embedding competes for the two cores. In a
real build the keyword lane runs in a thread beside the embedding, which takes the cores: speed.md's
"keyword /s" is that shared figure, this one is the stage's own.

Corpora:

- German: every document of mlqa-de-dev and xquad-de and the example corpus, where the compound
  splitter works (3,681 sentences, 19,325 distinct words: five new words a sentence);
- German, drawn: 100,000 sentences of German words drawn at random by their frequency in wordfreq's
  German list (seeded), each sentence as long as one of the German corpus's: no grammar, but the word
  mix of German at the scale of the target, new words and compounds arriving as in real text (the
  keyword stage reads words, not grammar). The shared data hold no larger German text. The sentence
  splitter joins some of them (a drawn "2" before the full stop reads as an ordinal), so the index
  holds fewer; the rate counts those it holds;
- speed.py's 100,000-sentence corpus (five collections, then scifact repeated: mostly English).

Reference in the same run: bm25s tokenising (Snowball stemmer and stopwords of the corpus's main
language) and indexing the same sentences. Each figure is the median of 3 interleaved runs.

Then issue 17's other target, keyword p50 ≤ 10 ms at 100,000 sentences: in each round the 100k index
just built answers speed.py's 200 queries in keyword mode (k=10, 10 warm-up queries first), one at a
time, and bm25s retrieves from the same sentences (speed.py's reference); the median of the rounds' p50s.
Query syntax is timed the same way: each query's first two words as a phrase.

    python benchmarks/keyword_indexing.py    # ~10 minutes on 2 cores; writes results/keyword_indexing.{md,json}
    python benchmarks/keyword_indexing.py --render   # the .md again from the .json
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import DATA, ROOT, heading, log, pct, stamp, write_results
from speed import bm25s_reference, build_corpus, load_queries

RUNS = 3
TARGET = 5000  # sentences/s (issue 17)
AT_SCALE = 90_000  # sentences: the targets are stated at 100,000 (the drawn German corpus holds 94,963 after splitting)
P50_TARGET = 10.0  # ms, keyword queries at 100,000 sentences (issue 17)
BUILD = """
import json, sys, time
sys.path.insert(0, sys.argv[3])
from keyword_scoring import ConstantEncoder
from search import build_index
from search.components import BM25Component
parts = {}
def timed(cls):
    write = cls.write
    def run(self, change):
        t = time.perf_counter()
        write(self, change)
        parts[cls.name] = time.perf_counter() - t
    cls.write = run
timed(BM25Component)
r = build_index(sys.argv[1], sys.argv[2], encoder=ConstantEncoder(), embedding_cache=False, lang="auto")
print(json.dumps({"chunks": r.chunks, "seconds": r.seconds, "parts": parts}))
"""


def german_corpus(out: Path) -> tuple[Path, list[str]]:
    """mlqa-de-dev, xquad-de and the example corpus as one JSONL file, and their sentences."""
    from search.chunking import split_sentences
    from search.evaluate import read_jsonl

    docs = [{**d, "_id": f"{name}/{d['_id']}"} for name in ("mlqa-de-dev", "xquad-de")
            for d in read_jsonl(DATA / name / "corpus.jsonl")]  # fmt: skip
    example = ROOT / "corpus" / "koalition-der-willigen.txt"
    docs.append({"_id": example.name, "title": "", "text": example.read_text(encoding="utf-8")})
    out.mkdir(parents=True, exist_ok=True)
    path = out / "corpus.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    sentences = [d["text"][s.start : s.end] for d in docs for s in split_sentences(d["text"], "de")]
    return path, sentences


def german_drawn(out: Path, lengths: list[int], n: int = 100_000, seed: int = 0) -> tuple[Path, list[str]]:
    """``n`` German-like sentences: words drawn at random by their frequency in wordfreq's German list (so
    new words keep coming as in real text, compounds among them as often as German writes them), each
    sentence as long as one of ``lengths`` (the real German corpus's words per sentence), ten to a document."""
    import numpy as np
    from wordfreq import get_frequency_dict

    from search.chunking import split_sentences

    freq = get_frequency_dict("de", wordlist="large")
    words = np.array(list(freq), dtype=object)
    p = np.array(list(freq.values()))
    rng = np.random.default_rng(seed)
    sizes = rng.choice(np.array(lengths), size=n)
    drawn = iter(words[rng.choice(len(words), size=int(sizes.sum()), p=p / p.sum())].tolist())
    texts = [" ".join(next(drawn) for _ in range(int(k))).capitalize() + "." for k in sizes]
    docs = [{"_id": f"drawn-{i}", "title": "", "text": " ".join(texts[i : i + 10])} for i in range(0, n, 10)]
    out.mkdir(parents=True, exist_ok=True)
    path = out / "corpus.jsonl"
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return path, [d["text"][s.start : s.end] for d in docs for s in split_sentences(d["text"], "de")]


def words_per_sentence(sentences: list[str]) -> list[int]:
    import re

    return [n for s in sentences if (n := len(re.findall(r"\w+", s))) > 0]


def ours(corpus: Path, index: Path) -> dict[str, Any]:
    """A new process builds the index; the keyword stage's seconds and the sentence count."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", BUILD, str(corpus), str(index), str(ROOT / "benchmarks")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return {"sentences": report["chunks"], "keyword_s": report["seconds"]["keyword"], **report["parts"]}


def bm25s_seconds(sentences: list[str], lang: str) -> float:
    import bm25s
    import Stemmer

    t = time.perf_counter()
    tokens = bm25s.tokenize(sentences, stopwords=lang, stemmer=Stemmer.Stemmer(lang), show_progress=False)
    bm25s.BM25(method="lucene").index(tokens, show_progress=False)
    return time.perf_counter() - t


def latency(index: Path, sentences: list[str]) -> dict[str, Any]:
    """Keyword-mode query latency of ``index`` and of bm25s over ``sentences``, speed.py's queries."""
    from keyword_scoring import ConstantEncoder

    from search import Index

    queries = load_queries()
    phrases = ['"' + " ".join(q.split()[:2]) + '"' for q in queries if len(q.split()) > 1]
    times: list[float] = []
    syntax: list[float] = []
    with Index.open(index, encoder=ConstantEncoder()) as ix:
        for q in queries[:10]:
            ix.search(q, mode="keyword", k=10)
        for q in queries:
            t = time.perf_counter()
            ix.search(q, mode="keyword", k=10)
            times.append((time.perf_counter() - t) * 1000)
        for q in phrases:
            t = time.perf_counter()
            ix.search(q, mode="keyword", k=10, syntax="on")
            syntax.append((time.perf_counter() - t) * 1000)
    ref = bm25s_reference(sentences, queries)
    return {"queries": len(queries), "p50_ms": pct(times, 50), "p95_ms": pct(times, 95),
            "bm25s_p50_ms": ref["p50_ms"], "bm25s_p95_ms": ref["p95_ms"], "phrases": len(phrases),
            "phrase_p50_ms": pct(syntax, 50), "phrase_p95_ms": pct(syntax, 95)}  # fmt: skip


def main() -> None:
    figures: dict[str, Any] = {**stamp("python benchmarks/keyword_indexing.py"), "runs": RUNS, "target": TARGET}
    with tempfile.TemporaryDirectory() as tmp:
        corpora = {"German": (*german_corpus(Path(tmp) / "de"), "german")}
        lengths = words_per_sentence(corpora["German"][1])
        corpora["German, drawn"] = (*german_drawn(Path(tmp) / "drawn", lengths), "german")
        corpora["100k"] = (*build_corpus(Path(tmp) / "big", 100_000), "english")
        sides = ("ours", "bm25 matrices", "bm25s")
        runs: dict[str, dict[str, list[float]]] = {name: {side: [] for side in sides} for name in corpora}
        rounds: list[dict[str, Any]] = []
        for r in range(RUNS):
            for name, (path, sentences, lang) in corpora.items():
                built = ours(path, Path(tmp) / f"ix-{name}-{r}")
                runs[name]["ours"].append(built["sentences"] / built["keyword_s"])
                runs[name]["bm25 matrices"].append(built["sentences"] / built["bm25"])
                runs[name]["bm25s"].append(len(sentences) / bm25s_seconds(sentences, lang))
                figures.setdefault("sentences", {})[name] = built["sentences"]
                log(f"{name} run {r + 1}: ours {runs[name]['ours'][-1]:.0f}/s, bm25s {runs[name]['bm25s'][-1]:.0f}/s")
            rounds.append(latency(Path(tmp) / f"ix-100k-{r}", corpora["100k"][1]))
            log(f"keyword queries at 100k, run {r + 1}: {rounds[-1]}")
    figures["latency"] = {
        key: statistics.median(x[key] for x in rounds) if key != "queries" else rounds[0][key] for key in rounds[0]
    } | {"p50_each_ms": [round(x["p50_ms"], 1) for x in rounds]}
    figures["corpora"] = {
        name: {side: {"median": statistics.median(v), "each": [round(x) for x in v]} for side, v in per_side.items()}
        for name, per_side in runs.items()
    }
    write_results("keyword_indexing", figures, render(figures))


def render(f: dict[str, Any]) -> list[str]:
    lines = heading("Keyword indexing on two cores", f, "Method: see the script's docstring.")
    lines += [
        "| corpus | sentences | ours, keyword stage /s | of it: BM25 matrices /s | bm25s /s | "
        f"ours / bm25s | target ≥ {f['target']:,} /s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in f["corpora"].items():
        o, b = c["ours"]["median"], c["bm25s"]["median"]
        ok = "✅" if o >= f["target"] else "❌"
        if f["sentences"][name] < AT_SCALE:  # issue 17 states its targets at 100,000 sentences
            ok = f"{'≥' if o >= f['target'] else 'below'} {f['target']:,}: not the target's scale"
        each = ", ".join(f"{x:,}" for x in c["ours"]["each"])
        lines.append(f"| {name} | {f['sentences'][name]:,} | {o:,.0f} (runs {each}) | "
                     f"{c['bm25 matrices']['median']:,.0f} | {b:,.0f} | "
                     f"{o / b:.2f} | {ok} |")  # fmt: skip
    if "latency" in f:
        lat = f["latency"]
        ok = "✅" if lat["p50_ms"] <= P50_TARGET else "❌"
        lines += [
            "",
            f"Keyword queries at {f['sentences']['100k']:,} sentences ({lat['queries']}, one at a time; medians of "
            f"the rounds): p50 **{lat['p50_ms']:.2f} ms** (rounds {lat.get('p50_each_ms', '–')}), p95 "
            f"{lat['p95_ms']:.1f} ms (target p50 ≤ {P50_TARGET:g} ms {ok}); bm25s on the same sentences: p50 "
            f"{lat['bm25s_p50_ms']:.1f} ms, p95 {lat['bm25s_p95_ms']:.1f} ms.",
        ]
        if "phrase_p50_ms" in lat:
            lines += [
                "",
                f"Query syntax, {lat['phrases']} phrases (each query's first two words): p50 "
                f"{lat['phrase_p50_ms']:.1f} ms, p95 {lat['phrase_p95_ms']:.1f} ms.",
            ]
    lines += [
        "",
        "The keyword stage is the BM25 term matrices: the analyser and the compound splitter over every "
        "sentence (in the writer's keyword lane), then the sparse matrices in numpy. bm25s tokenises with one "
        "regular expression and builds its sparse matrix in numpy: the reference for what a keyword index "
        "costs at least, and the yardstick for this noisy machine (compare the ratios). Each column is its own "
        "median over the runs, so the stage's rate need not equal its parts'. Small corpora pay the compound "
        "splitter's first look at each new word and its word list's loading as well: about one word in four "
        "of the German corpus is new to it; of the drawn corpus, at its size, one in sixteen.",
        "",
        "Issue 17 states both targets at 100,000 sentences, the scale of speed.md's corpus, and the two corpora "
        "of that size are judged against them. The small German corpus (a second of work) is shown for what a "
        "small corpus pays: its word list's loading and each new word's first look, which a larger corpus "
        "spreads over more sentences.",
    ]
    return lines


if __name__ == "__main__":
    if sys.argv[1:] == ["--render"]:
        from _common import RESULTS

        figures = json.loads((RESULTS / "keyword_indexing.json").read_text(encoding="utf-8"))
        write_results("keyword_indexing", figures, render(figures))
    else:
        main()
