"""What every benchmark script shares (bm25s keeps these in ``utils/benchmark.py``): where results
go, the machine line, a timestamped log, percentiles, per-query nDCG@10 and a paired significance test,
and the writer of ``NAME.json`` + ``NAME.md``.

Each script holds only its measurement: ``figures = {...}; write_results("speed", figures, lines)``.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT.parent / "shared" / "datasets"
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` runs from a checkout, installed or not
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    """The machine a figure was measured on: CPU model, cores, memory, Python."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (OSError, ValueError):
        mem = 0.0
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def pct(values: list[float], p: float) -> float:
    """The ``p``-th percentile of ``values`` (numpy's linear interpolation)."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), p))


def interleaved(jobs: dict[str, Callable[[], object]], runs: int = 3) -> dict[str, float]:
    """Each job's median seconds over ``runs`` rounds in which the jobs take turns (a noisy machine then
    slows them alike)."""
    import statistics

    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(runs):
        for k, job in jobs.items():
            t = time.perf_counter()
            job()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def stamp(command: str) -> dict[str, str]:
    """The provenance every results file starts with."""
    return {"command": command, "date": time.strftime("%Y-%m-%d"), "machine": machine()}


def heading(title: str, figures: dict[str, Any], method: str) -> list[str]:
    """A results file's first lines: its title, then the command, date and machine of ``figures``
    (see :func:`stamp`) and how it was measured."""
    return [f"# {title}", "", f"`{figures['command']}` on {figures['date']}, {figures['machine']}. {method}", ""]


def write_results(name: str, figures: dict[str, Any], markdown: list[str] | str) -> None:
    """Save ``figures`` as ``results/NAME.json`` and ``markdown`` as ``results/NAME.md``, and print the latter."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    text = markdown if isinstance(markdown, str) else "\n".join(markdown)
    (RESULTS / f"{name}.md").write_text(text.rstrip("\n") + "\n", encoding="utf-8")
    print(text)


def per_query_ndcg10(qrels: dict, run: dict, only: set[str] | None = None) -> dict[str, float]:
    """Each judged query's nDCG@10 (of ``only``, if given), as search.evaluate.evaluate averages them:
    a query with no result counts 0."""
    import pytrec_eval

    from search.evaluate import _top

    judged = {q: d for q, d in qrels.items() if (only is None or q in only) and any(g > 0 for g in d.values())}
    cut = {q: _top(run.get(q, {}), 10) or {"__no_result__": 0.0} for q in judged}
    scores = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut_10"}).evaluate(cut)
    return {q: s["ndcg_cut_10"] for q, s in scores.items()}


def sign_flip_p(diffs: list[float], weights: list[float] | None = None, flips: int = 10_000) -> float:
    """Two-sided p of a paired sign-flip randomisation test: how often the weighted mean of the per-query
    differences, each sign flipped at random (seed 0), is at least as far from 0 as observed."""
    import numpy as np

    d = np.asarray(diffs, dtype=float)
    w = np.full(len(d), 1 / len(d)) if weights is None else np.asarray(weights, dtype=float)
    observed = abs(float(d @ w))
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(flips, len(d)))
    return float((1 + np.sum(np.abs((signs * d) @ w) >= observed - 1e-12)) / (flips + 1))
