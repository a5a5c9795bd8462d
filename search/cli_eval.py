"""``search eval``: relevance of the three modes on judged queries, as a table, JSON, TREC runs and a chart."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.table import Table
from rich.text import Text

from .cli_common import ModelOpt, RichProgress, app, err, fail, out, progress_bar, spec_option, with_search_params
from .cli_render import count, shown
from .errors import CorpusError, SearchError
from .params import MODES, SearchParams, param_specs

_CANDIDATES = next(s for s in param_specs() if s.name == "candidates")
EvalMode = Literal[(*MODES, "all")]  # type: ignore[valid-type]  # from ModeName at run time; typer offers the values
# a run keeps 100 documents, in every mode at once; passages, pages, floors and explanations are for reading
EVAL_EXCLUDE = ("mode", "k", "offset", "window", "dedupe", "min_score", "cutoff", "explain", "candidates")


@app.command("eval")
@with_search_params(exclude=EVAL_EXCLUDE)
def eval_(
    target: Annotated[
        Path,
        typer.Argument(
            help="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv; indexed once into the cache), "
            "or a JSONL query file with judgments for --index."
        ),
    ],
    index_dir: Annotated[
        Path | None,
        typer.Option("--index", help="Index for a query file (default indexes/default); a BEIR folder gets its own."),
    ] = None,
    mode: Annotated[
        EvalMode,  # generated from ModeName, plus "all"
        typer.Option(help="Mode to evaluate, or all side by side."),
    ] = "all",
    candidates: spec_option(  # type: ignore[valid-type]  # generated from SearchParams.candidates
        _CANDIDATES,
        optional=True,
        help="Sentences each side contributes (default 1000 for documents, 100 for sentences).",
    ) = None,
    aggregate: Annotated[
        str, typer.Option(help="Sentence → document scores: max, or max+ (best plus a tenth of the next two).")
    ] = "max",
    metrics: Annotated[
        str, typer.Option(help="Comma-separated: ndcg@10, mrr@10, recall@100, map, ndcg@100, recall@10, p@10.")
    ] = "ndcg@10,mrr@10,recall@100,map",
    split: Annotated[str, typer.Option(help="BEIR qrels split (qrels/SPLIT.tsv).")] = "test",
    qrels: Annotated[Path | None, typer.Option(help="TREC or BEIR qrels file replacing the judgments.")] = None,
    model: ModelOpt = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N queries.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    run_out: Annotated[
        Path | None, typer.Option("--run-out", help="Write the run in TREC format (one file per mode if several).")
    ] = None,
    save: Annotated[
        Path | None, typer.Option(help="Folder for eval.json, TREC runs and qrels, and a PNG chart of modes × metrics.")
    ] = None,
    *,
    params: SearchParams,
) -> None:
    """Measure relevance (nDCG@10, MRR@10, Recall@100, MAP) of keyword, semantic and hybrid ranking."""
    from .evaluate import run_eval

    modes = list(MODES) if mode == "all" else [mode]
    chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    try:
        _check_outputs(run_out, save)  # before the queries run, not after
        with progress_bar(as_json) as bar:
            report = run_eval(
                target, index=index_dir, modes=modes, metrics=chosen, split=split, qrels_file=qrels, model=model,
                aggregation=aggregate, params=params, candidates=candidates, limit=limit,
                progress=RichProgress(bar, "preparing"),
            )  # fmt: skip
    except SearchError as exc:
        fail(exc)
        return
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n")
    else:
        out.print(_table(report, chosen))
    try:  # after the report is out: a long evaluation is not lost to a full disk
        outputs = _write_outputs(report, modes, run_out, save)
    except OSError as exc:
        fail(CorpusError(f"cannot write {exc.filename}: {exc.strerror}"))
        return
    for path in outputs:
        err.print(f"wrote {shown(path)}")


def _check_outputs(run_out: Path | None, save: Path | None) -> None:
    if run_out and (run_out.is_dir() or not run_out.parent.is_dir()):
        problem = "is a folder" if run_out.is_dir() else "is in no existing folder"
        raise CorpusError(f"--run-out {run_out} {problem}; give a file path")
    if save and save.exists() and not save.is_dir():
        raise CorpusError(f"--save {save} is a file; give a folder")


def _write_outputs(report: Any, modes: list[str], run_out: Path | None, save: Path | None) -> list[Path]:
    """TREC runs (``--run-out``) and the ``--save`` folder; returns what was written."""
    from .evaluate import write_qrels, write_run

    outputs: list[Path] = []
    if run_out:
        for m in modes:
            path = run_out if len(modes) == 1 else run_out.with_name(f"{run_out.stem}.{m}{run_out.suffix}")
            write_run(path, report.runs[m], f"search-{m}")
            outputs.append(path)
    if save:
        save.mkdir(parents=True, exist_ok=True)
        (save / "eval.json").write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
        write_qrels(save / "qrels.trec", report.qrels)
        for m in modes:
            write_run(save / f"run.{m}.trec", report.runs[m], f"search-{m}")
        _chart(report, save / "eval.png")
        outputs.append(save)
    return outputs


def _table(report: Any, chosen: list[str]) -> Table:
    table = Table(title=f"{report.dataset}: {count(report.queries, 'query', 'queries')}, judged per {report.level}")
    table.add_column("mode")
    for name in chosen:
        table.add_column(name, justify="right")
    best = {k: max(v[k] for v in report.modes.values()) for k in chosen}
    for m, values in report.modes.items():
        table.add_row(m, *[Text(f"{values[k]:.3f}", style="bold" if values[k] == best[k] else "") for k in chosen])
    return table


def _chart(report: Any, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(report.modes)
    metrics = list(next(iter(report.modes.values())))
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(metrics), 3.6))
    width = 0.8 / len(modes)
    for i, m in enumerate(modes):
        xs = [j + (i - (len(modes) - 1) / 2) * width for j in range(len(metrics))]
        bars = ax.bar(xs, [report.modes[m][k] for k in metrics], width, label=m)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks(range(len(metrics)), metrics)
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{report.dataset} ({count(report.queries, 'query', 'queries')})")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(modes), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
