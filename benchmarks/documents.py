"""Issue 14's figures: PDF text extraction, the cost of indexing PDFs beyond extraction, and the latency of
a filter that keeps 1% of a 100,000-sentence index.

1. Extraction: ``search.readers.pdf.extract`` on each PDF fixture of tests/fixtures/documents/ (made by
   Chromium and qpdf, see make.py there), repeated; pages per second on one core (PDFium is
   single-threaded), the median of 7 rounds. Target: 50 pages/s or more.
2. PDFs against .txt: 40 copies of the fixture PDF against 40 .txt files holding exactly the text the
   reader extracted, each indexed by a cold ``build_index`` with the default model and no embedding
   cache, after one warm-up build (the process's first-build costs), interleaved in alternating order,
   median of 5. Target: apart from extraction (measured inside the same builds), no more seconds per
   sentence than the .txt folder.
3. Filters: the 100k benchmark corpus of speed.py, each document given ``meta.bucket`` 0-99; hybrid p50
   over speed.py's 200 queries unfiltered and with ``--where bucket=7`` (1% of the documents), interleaved
   per query. The sentences' vectors here are random unit vectors (embedding 100k sentences would take
   ~35 minutes and does not change what a filter costs); queries are embedded by the default model,
   so each latency holds its real query encoding. Target: filtered p50 ≤ 30 ms.

    python benchmarks/documents.py                # ~15 minutes on 2 cores; writes results/documents.{md,json}
    python benchmarks/documents.py --keep-filter  # 1 and 2 again (~2 minutes); 3 kept from documents.json

Reading in 2 is what the build reports as reading the PDFs: since the readers run in a child process
(search/readers/worker.py), the child's start and each file's trip to it and back are in it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from _common import RESULTS, ROOT, log, pct, stamp, write_results

FIXTURES = ROOT / "tests" / "fixtures" / "documents"
COPIES = 40
ROUNDS = 7


def extraction() -> dict:
    from search.readers import pdf

    files = [p for p in sorted(FIXTURES.glob("*.pdf")) if p.name not in ("kaputt.pdf", "geheim.pdf", "leer.pdf")]
    data = [p.read_bytes() for p in files]
    pages = sum(len(pdf.extract(d)[0].pages) for d in data)
    rates = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        n = 0
        while time.perf_counter() - t < 2.0:
            for d in data:
                pdf.extract(d)
            n += pages
        rates.append(n / (time.perf_counter() - t))
    return {"files": [p.name for p in files], "pages": pages, "pages_per_s": statistics.median(rates), "rounds": rates}


def pdf_vs_txt(tmp: Path, runs: int = 5) -> dict:
    from search import build_index
    from search.readers import pdf

    source = FIXTURES / "bericht.pdf"
    text = pdf.extract(source.read_bytes())[0].text
    folders = {"pdf": tmp / "pdfs", "txt": tmp / "txts"}
    for kind, folder in folders.items():
        folder.mkdir()
        for i in range(COPIES):
            if kind == "pdf":
                shutil.copy(source, folder / f"bericht-{i:02}.pdf")
            else:
                (folder / f"bericht-{i:02}.txt").write_text(f"{text}\n{i}", encoding="utf-8")
    out: dict = {kind: [] for kind in folders}
    build_index(folders["txt"], tmp / "warm-up", embedding_cache=False)  # the process's first-build costs: neither's
    for run in range(runs):
        for kind in ("pdf", "txt") if run % 2 == 0 else ("txt", "pdf"):  # neither always goes first
            folder, index = folders[kind], tmp / f"{kind}-{run}"
            r = build_index(folder, index, embedding_cache=False)
            read = r.formats[kind].seconds
            out[kind].append({"seconds": r.seconds["total"], "read": read, "sentences": r.chunks})
            shutil.rmtree(index)
            log(f"{kind} run {run + 1}: {r.seconds['total']:.1f} s, reading {read:.2f} s, {r.chunks} sentences")
    summary = {}
    for kind, rows in out.items():
        sentences = rows[0]["sentences"]
        summary[kind] = {
            "documents": COPIES,
            "sentences": sentences,
            "seconds": statistics.median(r["seconds"] for r in rows),
            "reading": statistics.median(r["read"] for r in rows),
            "ms_per_sentence_beyond_reading": statistics.median(
                (r["seconds"] - r["read"]) * 1000 / sentences for r in rows
            ),
            "runs": rows,
        }
    return summary


class _RandomPassages:
    """Random unit vectors for passages (what a filter costs does not depend on them); real query vectors."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.name, self.fingerprint = "random-passages", "random-1"
        self.dim = model.dim  # type: ignore[attr-defined]
        self.rng = np.random.default_rng(7)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode_queries(texts)  # type: ignore[attr-defined,no-any-return]

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        v = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        if progress:
            progress(len(texts))
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def filter_latency(tmp: Path) -> dict:
    from speed import build_corpus, load_queries

    from search import Index, build_index
    from search.encoder import load_encoder
    from search.filters import Filters

    corpus, _ = build_corpus(tmp / "big", 100_000)
    tagged = tmp / "tagged" / "corpus.jsonl"
    tagged.parent.mkdir()
    with corpus.open(encoding="utf-8") as f, tagged.open("w", encoding="utf-8") as g:
        for i, line in enumerate(f):
            doc = json.loads(line)
            doc["meta"] = {"bucket": i % 100}
            g.write(json.dumps(doc, ensure_ascii=False) + "\n")
    encoder = _RandomPassages(load_encoder())
    log("building the 100k index with random passage vectors")
    report = build_index(tagged, tmp / "idx", encoder=encoder)
    queries = load_queries()
    one = Filters.parse(["bucket=7"])
    times: dict[str, list[float]] = {"unfiltered": [], "filtered": []}
    counts = []
    with Index.open(tmp / "idx", encoder=encoder) as ix:
        allowed = ix.allowed(one)
        assert allowed is not None
        for q in queries[:10]:
            ix.search(q, mode="hybrid")
            ix.search(q, mode="hybrid", filters=one)
        for q in queries:  # interleaved per query: the machine's noise falls on both alike
            for name, filters in (("unfiltered", Filters()), ("filtered", one)):
                t = time.perf_counter()
                results = ix.search(q, mode="hybrid", k=10, filters=filters)
                times[name].append((time.perf_counter() - t) * 1000)
                if name == "filtered":
                    counts.append(len(results))
        kept = len(allowed.chunks)
    return {
        "sentences": report.chunks,
        "documents": report.documents,
        "kept_sentences": kept,
        "kept_share": kept / report.chunks,
        "queries": len(queries),
        "results_per_filtered_query_min": min(counts),
        **{f"{k}_p50_ms": pct(v, 50) for k, v in times.items()},
        **{f"{k}_p95_ms": pct(v, 95) for k, v in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keep-filter", action="store_true",
        help="measure extraction and PDFs against .txt again; keep the filter figures of results/documents.json",
    )  # fmt: skip
    args = parser.parse_args()
    figures: dict = stamp("python benchmarks/documents.py" + (" --keep-filter" if args.keep_filter else ""))
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        log("PDF extraction")
        figures["extraction"] = extraction()
        log(f"{COPIES} PDFs against {COPIES} .txt files")
        figures["pdf_vs_txt"] = pdf_vs_txt(tmp)
        if args.keep_filter:
            old = json.loads((RESULTS / "documents.json").read_text(encoding="utf-8"))
            kept = {"date": old["date"], "machine": old["machine"]}  # of the run that measured it
            figures["filter"] = {**kept, **old["filter"]}
        else:
            log("a filter keeping 1% of 100k sentences")
            figures["filter"] = {**filter_latency(tmp), "date": figures["date"], "machine": figures["machine"]}
    write_results("documents", figures, render(figures))


def render(f: dict) -> list[str]:
    e, p, t, flt = f["extraction"], f["pdf_vs_txt"]["pdf"], f["pdf_vs_txt"]["txt"], f["filter"]
    ratio = p["ms_per_sentence_beyond_reading"] / t["ms_per_sentence_beyond_reading"]
    return [
        "# Documents: PDF extraction, PDFs against .txt, filters",
        "",
        f"`{f['command']}` on {f['date']}, {f['machine']}. Method: see the script's docstring.",
        "",
        "| figure | value | target |",
        "|---|---|---|",
        f"| PDF text extraction, one core ({e['pages']} pages of {', '.join(e['files'])}, median of {ROUNDS}) "
        f"| {e['pages_per_s']:.0f} pages/s | ≥ 50 {'✅' if e['pages_per_s'] >= 50 else '❌'} |",
        f"| indexing {COPIES} PDFs: ms per sentence beyond reading ({p['sentences']} sentences; reading "
        f"{p['reading']:.2f} s of {p['seconds']:.1f} s) | {p['ms_per_sentence_beyond_reading']:.1f} | "
        f"≤ .txt's {'✅' if ratio <= 1.05 else '❌'} |",
        f"| the same text as {COPIES} .txt files (reading {t['reading']:.2f} s of {t['seconds']:.1f} s) | "
        f"{t['ms_per_sentence_beyond_reading']:.1f} | reference; ratio {ratio:.2f} (within 5% counts as equal) |",
        f"| hybrid p50, 100k sentences, no filter | {flt['unfiltered_p50_ms']:.1f} ms (p95 "
        f"{flt['unfiltered_p95_ms']:.1f}) | reference |",
        f"| hybrid p50, `--where bucket=7` keeping {flt['kept_share']:.1%} ({flt['kept_sentences']:,} sentences) | "
        f"{flt['filtered_p50_ms']:.1f} ms (p95 {flt['filtered_p95_ms']:.1f}) | ≤ 30 ms "
        f"{'✅' if flt['filtered_p50_ms'] <= 30 else '❌'} |",
        "",
        f"The filter rows are from the run of {flt['date']} ({flt['machine']}). "
        f"Every filtered query returned at least {flt['results_per_filtered_query_min']} results (k = 10). "
        "The 100k index holds random passage vectors (see the docstring); each query is embedded by the default "
        "model inside the timing.",
    ]


if __name__ == "__main__":
    main()
