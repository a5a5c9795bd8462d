"""The ``search`` command: a thin typer layer over :mod:`search.index` and :mod:`search.searcher`.

The search options of ``search query`` and ``search eval`` are generated from
:class:`~search.params.SearchParams` (:func:`with_search_params`), never written out here.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from . import cli_eval  # noqa: F401 -- registers `search eval`
from .analysis import keyword_query
from .cli_common import (
    AfterOpt,
    BeforeOpt,
    FacetsOpt,
    IndexOpt,
    ModelOpt,
    PathOpt,
    RichProgress,
    WhereOpt,
    app,
    err,
    fail,
    out,
    progress_bar,
    with_search_params,
)
from .cli_render import count, print_facets, print_results, shown
from .errors import CorpusError, SearchError
from .index import DEFAULT_INDEX, DEFAULT_WINDOW
from .manifest import Scoring
from .params import SearchParams
from .types import results_payload


@app.command()
def index(
    corpus: Annotated[
        Path,
        typer.Argument(
            help="A file or folder of .txt, .md, .html, .pdf, .docx, .odt, .epub, .eml or .jsonl (BEIR) documents."
        ),
    ],
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
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report (counts, changes, seconds per stage) as JSON.")
    ] = False,
    shards: Annotated[
        int | None,
        typer.Option(
            help="Split the index into N shards (documents hashed by id), searched as one; an existing "
            "sharded index keeps its number."
        ),
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            help="Embed and write the shards on a Ray cluster: its address (ray://… or host:port), or 'local' "
            "for a cluster on 127.0.0.1 started and stopped here. Needs pip install -e '.\\[distributed]'."
        ),
    ] = None,
) -> None:
    """Build the index from CORPUS, or update it: new and changed documents are indexed, unchanged ones cost nothing.

    Each run commits atomically; an interrupted run leaves the previous index as it was.
    """
    from .index import build_index
    from .sharding import build_sharded
    from .shards import is_sharded, shard_count

    try:
        sharded = shards is not None or is_sharded(index_dir)
        if ray is not None and not sharded:
            raise SearchError("--ray builds a sharded index: add --shards N")
        with progress_bar(quiet) as bar:
            progress = RichProgress(bar, "reading corpus")
            options: dict[str, Any] = dict(
                model=model, lang=lang, window=window, progress=progress, prune=prune, rebuild=rebuild,
                embedding_cache=cache,
            )  # fmt: skip
            if sharded:
                report = build_sharded(corpus, index_dir, shard_count(index_dir, shards), ray=ray, **options)
            else:
                report = build_index(corpus, index_dir, **options)
    except SearchError as exc:
        fail(exc)
        return
    _print_report(report, quiet, as_json)


def _print_report(report: Any, quiet: bool, as_json: bool) -> None:
    for s in report.skipped:
        label = "[cyan]note[/]" if s.indexed else "[yellow]skipped[/]"
        err.print(f"{label} {shown(s.source)}: {shown(s.reason)}", soft_wrap=True)
    if not as_json and not quiet:
        for kind, f in sorted(report.formats.items()):
            pages = f", {count(f.pages, 'page')}" if f.pages else ""
            err.print(f"  {kind}: {count(f.documents, 'document')}{pages} read in {f.seconds:.1f} s", soft_wrap=True)
    if as_json:
        out.print_json(data=_report_json(report))
    elif not quiet:
        langs = ", ".join(f"{k} {v}" for k, v in report.languages.items())
        changes = (
            f"{report.added} added, {report.updated} updated, {report.removed} removed, {report.unchanged} unchanged"
        )
        verb = "[green]indexed[/]" if report.committed else "[green]up to date:[/]"
        err.print(
            f"{verb} {count(report.documents, 'document')}, {count(report.chunks, 'sentence')} ({langs}) "
            f"into {shown(report.folder)} in {report.seconds['total']:.1f} s; {changes}"
            + (f"; {report.cache_hits} of {report.embedded} sentences from the cache" if report.cache_hits else "")
            + (f"; {report.meta_updated} with new metadata" if report.meta_updated else "")
            + (f"; skipped {len(report.not_indexed)}" if report.not_indexed else ""),
            soft_wrap=True,
        )


def _report_json(report: Any) -> dict[str, Any]:
    fields = ("documents", "chunks", "languages", "added", "updated", "removed", "unchanged", "embedded")
    return {
        "index": str(report.folder),
        "generation": report.generation,
        "committed": report.committed,
        **{f: getattr(report, f) for f in fields},
        "cache_hits": report.cache_hits,
        "meta_updated": report.meta_updated,
        "skipped": [{"source": str(s.source), "reason": s.reason} for s in report.not_indexed],
        "notes": [{"source": str(s.source), "reason": s.reason} for s in report.notes],
        "formats": {
            k: {"documents": f.documents, "pages": f.pages, "seconds": round(f.seconds, 3)}
            for k, f in sorted(report.formats.items())
        },
        "seconds": {k: round(v, 3) for k, v in report.seconds.items()},
    }


@app.command()
def remove(
    doc_ids: Annotated[list[str], typer.Argument(help="Ids of documents to remove (as `search query` shows them).")],
    index_dir: IndexOpt = DEFAULT_INDEX,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Remove documents from the index (both halves, atomically)."""
    from .sharding import remove_sharded
    from .shards import is_sharded
    from .writer import remove_documents

    try:
        remover = remove_sharded if is_sharded(index_dir) else remove_documents
        report, missing = remover(index_dir, doc_ids)
    except SearchError as exc:
        fail(exc)
        return
    if missing and not report.removed:  # nothing done: one error line, as every command fails
        fail(CorpusError(f"not in the index: {', '.join(missing)}"))  # exit 2, as before
    for doc_id in missing:
        err.print(f"[yellow]not in the index:[/] {shown(doc_id)}", soft_wrap=True)
    if not quiet:
        left = f"{count(report.documents, 'document')}, {count(report.chunks, 'sentence')} left"
        err.print(f"removed {count(report.removed, 'document')}; {left}")


@app.command()
def compact(
    index_dir: IndexOpt = DEFAULT_INDEX,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    """Reclaim space after many updates and removals: write one generation, drop the old ones."""
    from .sharding import compact_sharded
    from .shards import is_sharded
    from .writer import compact_index

    try:
        before, after = (compact_sharded if is_sharded(index_dir) else compact_index)(index_dir)
    except SearchError as exc:
        fail(exc)
        return
    if not quiet:
        err.print(f"compacted {shown(index_dir)}: {before / 2**20:.1f} MiB → {after / 2**20:.1f} MiB")


@app.command()
@with_search_params()
def query(
    text: Annotated[
        str, typer.Argument(help='Words, a question, or query syntax: "phrase", AND/OR/NOT, field:term, term~.')
    ],
    index_dir: IndexOpt = DEFAULT_INDEX,
    model: ModelOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON.")] = False,
    where: WhereOpt = None,
    path: PathOpt = None,
    after: AfterOpt = None,
    before: BeforeOpt = None,
    facets: FacetsOpt = None,
    *,
    params: SearchParams,
) -> None:
    """Search the index and show passages with highlighted evidence."""
    from .filters import Filters, parse_facets
    from .sharded import open_index

    try:
        params = params.replace(filters=Filters.parse(where or (), path or (), after, before))
        params = params.replace(facets=parse_facets(facets))
        with open_index(index_dir, model=model) as ix:
            response = ix.page(text, params)
    except SearchError as exc:
        fail(exc)
        return
    mode, results = params.mode, response.results
    if as_json:
        payload = results_payload(text, mode.value, results, response.feedback_docs, response.facets, response.shards)
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return
    if response.facets:
        print_facets(response.facets)
    if not results:
        past = f" past rank {params.offset}" if params.offset else ""
        lowest = params.floor(keyword_query(text))
        floor = f" with a score of {lowest:g} or more" if lowest is not None else ""
        out.print(f"no passages match {shown(repr(text))} in {mode.value} mode{floor}{past}")
        return
    print_results(results)


@app.command()
def similar(
    doc: Annotated[str, typer.Argument(help="A document's id, as `search query` shows it (its path or JSONL _id).")],
    index_dir: IndexOpt = DEFAULT_INDEX,
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=1000, help="Number of documents to return.")] = 10,
    window: Annotated[
        int | None, typer.Option(min=0, max=10, help="Neighbouring sentences shown (default: the index's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results as JSON (as `search query` does).")] = False,
) -> None:
    """Documents like DOC ("more like this"): the nearest document vectors, each shown by its sentence
    closest to one of DOC's. No model is loaded."""
    from .sharded import open_index

    try:
        with open_index(index_dir) as ix:
            results = ix.similar(doc, k, window)  # an unknown id fails here
            num = ix.document_num(doc)
            assert num is not None
            source = ix.document(num).text
            shards = ix.shard_counts()
    except SearchError as exc:
        fail(exc)
        return
    if as_json:
        payload = results_payload(doc, "similar", results, shards=shards)
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return
    if not results:
        out.print(f"no other document in the index to compare {shown(repr(doc))} with")
        return
    print_results(results, source)


@app.command()
def serve(
    index_dir: IndexOpt = DEFAULT_INDEX,
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 for every interface).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")] = 8000,
    model: ModelOpt = None,
    log_level: Annotated[
        str, typer.Option(help="uvicorn's log level: critical, error, warning, info, debug (with access log).")
    ] = "info",
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            help="Serve a sharded index with Ray Serve: a deployment per shard and a router, on the cluster at "
            "this address (ray://… or host:port), or 'local' for one started on 127.0.0.1 and stopped on exit.",
        ),
    ] = None,
    replicas: Annotated[int, typer.Option(min=1, max=64, help="With --ray: replicas of each shard.")] = 1,
) -> None:
    """Serve the index over HTTP: a search page at /, the JSON API at /api (OpenAPI at /docs).

    The index is opened and the model loaded once; `search index` updates are picked up without a restart.
    """
    if ray is not None:
        _serve_ray(index_dir, host, port, model, ray, replicas)
        return
    from .serve import serve as run_server

    def ready(url: str, holder: Any) -> None:
        ix = holder.index
        err.print(
            f"[green]serving[/] {shown(index_dir)} ({count(len(ix.documents), 'document')}, "
            f"{count(len(ix.chunks), 'sentence')}, "
            f"{ix.manifest.model.name}) at [bold]{shown(url)}[/]  ·  API docs {shown(url)}docs  ·  Ctrl+C stops",
            soft_wrap=True,
        )

    err.print(f"opening {shown(index_dir)} and loading the model …", soft_wrap=True)
    try:
        run_server(index_dir, host=host, port=port, model=model, log_level=log_level, ready=ready)
    except SearchError as exc:
        fail(exc)


def _serve_ray(index_dir: Path, host: str, port: int, model: str | None, address: str, replicas: int) -> None:
    def ready(url: str, shards: int) -> None:
        err.print(
            f"[green]serving[/] {shown(index_dir)} on Ray ({count(shards, 'shard')} x {count(replicas, 'replica')}) "
            f"at [bold]{shown(url)}[/]  ·  API docs {shown(url)}docs  ·  Ctrl+C stops",
            soft_wrap=True,
        )

    err.print(f"deploying {shown(index_dir)} on Ray ({shown(address)}) …", soft_wrap=True)
    try:
        from .serve_ray import serve_on_ray

        serve_on_ray(index_dir, address, host=host, port=port, replicas=replicas, model=model, ready=ready)
    except SearchError as exc:
        fail(exc)


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
    from .sharded import open_index

    if check:
        _check(index_dir, as_json)
        return
    try:
        with open_index(index_dir) as ix:
            report = ix.info()
    except SearchError as exc:
        fail(exc)
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
            f"{report['chunking']['unit']} ({report['chunking']['splitter']}), window {report['chunking']['window']}"
            f"; document vectors read {report['chunking']['document_tokens']} tokens",
        ),
        (
            "size",
            ", ".join(f"{k} {v / 1024:.0f} KiB" for k, v in report["sizes"].items())
            + f"; total {report['total_bytes'] / 1024:.0f} KiB"
            + f"; folder {report['folder_bytes'] / 1024:.0f} KiB",
        ),
    ]
    for key, value in rows:
        table.add_row(Text(key, style="bold"), Text(value))  # text, not markup: a folder may hold [brackets]
    out.print(table)


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
            status = Text("ok" if c.ok else "FAIL", style="green" if c.ok else "bold red")
            table.add_row(status, Text(c.name), Text(c.detail))
        out.print(table)
        out.print(f"{shown(index_dir)}: " + ("consistent" if ok else f"{sum(not c.ok for c in checks)} checks failed"))
    if not ok:
        raise typer.Exit(IndexFormatError.exit_code)


def main() -> None:
    """Entry point: runs the app and turns unexpected failures into one line."""
    notes = logging.StreamHandler()  # the library's notes (a model without a fast path): one line each
    notes.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger("search").addHandler(notes)
    try:
        app()
    except SystemExit as exc:
        # typer turns Ctrl-C inside a command into a silent Exit(130); say what happened
        if exc.code == 130 and isinstance(getattr(exc.__context__, "__cause__", None), KeyboardInterrupt):
            err.print("interrupted")
        raise
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except SearchError as exc:  # raised outside a command body
        fail_line(f"error: {exc}")
        sys.exit(exc.exit_code)
    except Exception as exc:
        if os.environ.get("SEARCH_DEBUG"):
            raise
        fail_line(f"internal error: {type(exc).__name__}: {exc} (set SEARCH_DEBUG=1 for a traceback)")
        sys.exit(70)


def fail_line(message: str) -> None:
    """One line on stderr, never wrapped at the terminal's width and never read as markup."""
    err.print(Text(message), soft_wrap=True)
