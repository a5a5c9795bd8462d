"""The ``search`` command: a thin typer layer over :mod:`search.index` and :mod:`search.searcher`.

The search options of ``search query`` and ``search eval`` are generated from
:class:`~search.params.SearchParams` (:func:`with_search_params`), never written out here.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .errors import SearchError
from .index import DEFAULT_INDEX, DEFAULT_WINDOW
from .manifest import Scoring
from .params import MODES, ParamSpec, SearchParams, param_specs
from .types import results_payload

app = typer.Typer(
    help="Hybrid keyword + semantic search over your own documents (German and English), "
    "with highlighted evidence for every match.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


IndexOpt = Annotated[Path, typer.Option("--index", help="Index folder.", show_default=True)]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Embedding model: multilingual-e5-small (default; int8 ONNX), multilingual-e5-small-fp32 "
        "(sentence-transformers, float32), all-MiniLM-L6-v2, or a sentence-transformers folder. "
        "At query time it must match the index's model.",
    ),
]


def spec_option(spec: ParamSpec, *, optional: bool = False, help: str | None = None) -> Any:
    """The typer annotation of one :class:`SearchParams` field: its flag, bounds and help, generated."""
    flags = spec.flag_names
    if spec.type is bool:
        flags = (f"{flags[0]}/--no-{flags[0].removeprefix('--')}",)
    kind = spec.type | None if (spec.optional or optional) else spec.type
    info = typer.Option(*flags, min=spec.lo, max=spec.hi, help=help or spec.help, show_default=not spec.optional)
    return Annotated[kind, info]


def with_search_params(*, exclude: Collection[str] = ()) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Adds every :class:`SearchParams` field (but ``exclude``) to a command as an option, and hands
    the command one checked ``params: SearchParams`` instead."""
    specs = [s for s in param_specs() if s.name not in exclude]

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "params"]
        generated = [
            inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=s.default, annotation=spec_option(s))
            for s in specs
        ]

        @functools.wraps(command)
        def run(**values: Any) -> None:
            given = {s.name: values.pop(s.name) for s in specs}
            try:
                params = SearchParams(**given)
            except SearchError as exc:
                _fail(exc)
                return
            command(params=params, **values)

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + generated
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # typer reads it
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate


class _RichProgress:
    """Adapts rich's progress bar to the library's Progress protocol.

    Until the first counted task starts, a spinner says what is happening (reading, model load).
    """

    def __init__(self, progress: Progress, waiting: str) -> None:
        self.progress = progress
        self.task: Any = progress.add_task(waiting, total=None)

    def start(self, task: str, total: int) -> None:
        self.progress.remove_task(self.task)
        self.task = self.progress.add_task(task, total=total)

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)


def _fail(exc: SearchError) -> None:
    err.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def _bar(quiet: bool) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet,
        transient=True,
    )


@app.command()
def index(
    corpus: Annotated[Path, typer.Argument(help="A file or folder of .txt, .md, .html or .jsonl (BEIR) documents.")],
    index_dir: IndexOpt = DEFAULT_INDEX,
    model: ModelOpt = None,
    lang: Annotated[str, typer.Option(help="Document language: de, en, … or auto (detected per document).")] = "auto",
    window: Annotated[
        int, typer.Option(min=0, max=10, help="Neighbouring sentences shown on each side of a match.")
    ] = DEFAULT_WINDOW,
    prune: Annotated[
        bool, typer.Option("--prune", help="Remove indexed documents that are no longer in CORPUS.")
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option("--rebuild", help="Start from nothing: re-read and re-embed everything (new model, old format)."),
    ] = False,
    cache: Annotated[
        bool, typer.Option(help="Reuse embeddings of sentences this model embedded before (cache folder).")
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Build the index from CORPUS, or update it: new and changed documents are indexed, unchanged ones cost nothing.

    Each run commits atomically; an interrupted run leaves the previous index as it was.
    """
    from .index import build_index

    try:
        with _bar(quiet) as bar:
            progress = _RichProgress(bar, "reading corpus")
            report = build_index(
                corpus,
                index_dir,
                model=model,
                lang=lang,
                window=window,
                progress=progress,
                prune=prune,
                rebuild=rebuild,
                embedding_cache=cache,
            )
    except SearchError as exc:
        _fail(exc)
        return
    for s in report.skipped:
        err.print(f"[yellow]skipped[/] {s.source}: {s.reason}", soft_wrap=True)
    if not quiet:
        langs = ", ".join(f"{k} {v}" for k, v in report.languages.items())
        changes = (
            f"{report.added} added, {report.updated} updated, {report.removed} removed, {report.unchanged} unchanged"
        )
        verb = "[green]indexed[/]" if report.committed else "[green]up to date:[/]"
        err.print(
            f"{verb} {report.documents} documents, {report.chunks} sentences ({langs}) "
            f"into {report.folder} in {report.seconds['total']:.1f} s; {changes}"
            + (f"; {report.cache_hits} of {report.embedded} sentences from the cache" if report.cache_hits else "")
            + (f"; skipped {len(report.skipped)}" if report.skipped else ""),
            soft_wrap=True,
        )


@app.command()
def remove(
    doc_ids: Annotated[list[str], typer.Argument(help="Ids of documents to remove (as `search query` shows them).")],
    index_dir: IndexOpt = DEFAULT_INDEX,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Remove documents from the index (both halves, atomically)."""
    from .writer import remove_documents

    try:
        report, missing = remove_documents(index_dir, doc_ids)
    except SearchError as exc:
        _fail(exc)
        return
    for doc_id in missing:
        err.print(f"[yellow]not in the index:[/] {doc_id}", soft_wrap=True)
    if not quiet:
        err.print(f"removed {report.removed} documents; {report.documents} documents, {report.chunks} sentences left")
    if missing and not report.removed:
        raise typer.Exit(2)


@app.command()
def compact(
    index_dir: IndexOpt = DEFAULT_INDEX,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Reclaim space after many updates and removals: merge keyword segments, drop old generations."""
    from .writer import compact_index

    try:
        before, after = compact_index(index_dir)
    except SearchError as exc:
        _fail(exc)
        return
    if not quiet:
        err.print(f"compacted {index_dir}: {before / 2**20:.1f} MiB → {after / 2**20:.1f} MiB")


def _render(result: Any) -> Text:
    text = Text(result.passage)
    ev = result.evidence
    if ev.sentence:
        text.stylize("italic on grey15", *ev.sentence)
    for start, end in result.highlights:
        text.stylize("bold black on yellow", start, end)
    return text


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _score(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


@app.command()
@with_search_params()
def query(
    text: Annotated[
        str, typer.Argument(help='Words, a question, or query syntax: "phrase", AND/OR/NOT, field:term, term~.')
    ],
    index_dir: IndexOpt = DEFAULT_INDEX,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    *,
    params: SearchParams,
) -> None:
    """Search the index and show passages with highlighted evidence."""
    from .index import Index

    try:
        with Index.open(index_dir, model=model) as ix:
            results = ix.search(text, params)
    except SearchError as exc:
        _fail(exc)
        return
    mode = params.mode
    if as_json:
        payload = results_payload(text, mode.value, results)
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return
    if not results:
        out.print(f"no passages match {text!r} in {mode.value} mode")
        return
    for r in results:
        head = Text.assemble(
            (f"{r.rank:>2}. ", "bold"),
            (r.doc, "bold cyan"),
            f"  chars {r.start}–{r.end}   ",
            ("score ", "dim"),
            f"{r.score:.3f}   ",
            ("keyword ", "dim"),
            _score(r.keyword_score),
            ("   semantic ", "dim"),
            _score(r.semantic_score),
        )
        out.print(head)
        out.print(_render(r), soft_wrap=False)
        if r.evidence.terms:
            out.print(Text.assemble(("    matched: ", "dim"), ", ".join(r.evidence.terms)))
        out.print()


@app.command()
def serve(
    index_dir: IndexOpt = DEFAULT_INDEX,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    model: ModelOpt = None,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level: critical, error, warning, info, debug (with access log).")
    ] = "info",
) -> None:
    """Serve the index over HTTP: a search page at /, the JSON API at /api (OpenAPI at /docs).

    The index is opened and the model loaded once; `search index` updates are picked up without a restart.
    """
    from .serve import serve as run_server

    def ready(url: str, holder: Any) -> None:
        ix = holder.index
        err.print(
            f"[green]serving[/] {index_dir} ({_count(len(ix.documents), 'document')}, "
            f"{_count(len(ix.chunks), 'sentence')}, "
            f"{ix.manifest.model.name}) at [bold]{url}[/]  ·  API docs {url}docs  ·  Ctrl+C stops",
            soft_wrap=True,
        )

    err.print(f"opening {index_dir} and loading the model …", soft_wrap=True)
    try:
        run_server(index_dir, host=host, port=port, model=model, log_level=log_level, ready=ready)
    except SearchError as exc:
        _fail(exc)


@app.command()
def info(
    index_dir: IndexOpt = DEFAULT_INDEX,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Verify that keyword index, vectors, chunk table and manifest agree (exit 3 if not)."
        ),
    ] = False,
) -> None:
    """Show what is in the index: documents, sentences, model, analyzer and sizes."""
    from .index import Index

    if check:
        _check(index_dir, as_json)
        return
    try:
        with Index.open(index_dir) as ix:
            report = ix.info()
    except SearchError as exc:
        _fail(exc)
        return
    if as_json:
        sys.stdout.write(json.dumps(report, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table(show_header=False, box=None)
    counts, model, analyzer = report["counts"], report["model"], report["analyzer"]
    rows = [
        ("index", report["folder"]),
        ("created", report["created"]),
        ("updated", f"{report['updated']} (generation {report['generation']})"),
        ("documents", str(counts["documents"])),
        ("sentences", str(counts["chunks"])),
        ("languages", ", ".join(f"{k}: {v}" for k, v in report["languages"].items())),
        ("model", f"{model['name']} ({model['dim']} dims, fingerprint {model['fingerprint']})"),
        ("analyzer", analyzer["pipeline"]),
        ("scoring", Scoring(**report["scoring"]).describe()),
        (
            "chunking",
            f"{report['chunking']['unit']} ({report['chunking']['splitter']}), window {report['chunking']['window']}",
        ),
        (
            "size",
            ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in report["sizes"].items())
            + f"; total {report['total_bytes'] / 1024:.0f} KiB"
            + f"; folder {report['folder_bytes'] / 1024:.0f} KiB",
        ),
    ]
    for key, value in rows:
        table.add_row(Text(key, style="bold"), value)
    out.print(table)


_CANDIDATES = next(s for s in param_specs() if s.name == "candidates")
EvalMode = Literal[(*MODES, "all")]  # typer offers a Literal's values as the choices
EVAL_EXCLUDE = ("mode", "k", "window", "dedupe", "candidates")  # a run keeps 100 documents; modes: all at once


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
        EvalMode,  # type: ignore[valid-type]  # generated from ModeName, plus "all"
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
    from .evaluate import run_eval, write_qrels, write_run

    modes = list(MODES) if mode == "all" else [mode]
    chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    try:
        with _bar(as_json) as bar:
            report = run_eval(
                target, index=index_dir, modes=modes, metrics=chosen, split=split, qrels_file=qrels, model=model,
                aggregation=aggregate, params=params, candidates=candidates, limit=limit,
                progress=_RichProgress(bar, "preparing"),
            )  # fmt: skip
    except SearchError as exc:
        _fail(exc)
        return
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
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n")
    else:
        table = Table(title=f"{report.dataset}: {report.queries} queries, judged per {report.level}")
        table.add_column("mode")
        for name in chosen:
            table.add_column(name, justify="right")
        for m, values in report.modes.items():
            best = {k: max(v[k] for v in report.modes.values()) for k in chosen}
            table.add_row(m, *[Text(f"{values[k]:.3f}", style="bold" if values[k] == best[k] else "") for k in chosen])
        out.print(table)
    for path in outputs:
        err.print(f"wrote {path}")


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
    ax.set_title(f"{report.dataset} ({report.queries} queries)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=len(modes), fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _check(index_dir: Path, as_json: bool) -> None:
    from .check import check_index
    from .errors import IndexFormatError

    checks = check_index(index_dir)
    ok = all(c.ok for c in checks)
    if as_json:
        payload = {"index": str(index_dir), "ok": ok, "checks": [c.__dict__ for c in checks]}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    else:
        table = Table(show_header=False, box=None)
        for c in checks:
            table.add_row(Text("ok" if c.ok else "FAIL", style="green" if c.ok else "bold red"), c.name, c.detail)
        out.print(table)
        out.print(f"{index_dir}: " + ("consistent" if ok else f"{sum(not c.ok for c in checks)} checks failed"))
    if not ok:
        raise typer.Exit(IndexFormatError.exit_code)


def main() -> None:
    """Entry point: runs the app and turns unexpected failures into one line."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SearchError as exc:  # raised outside a command body
        err.print(f"error: {exc}")
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("SEARCH_DEBUG"):
            raise
        err.print(f"internal error: {type(exc).__name__}: {exc} (set SEARCH_DEBUG=1 for a traceback)")
        sys.exit(70)
