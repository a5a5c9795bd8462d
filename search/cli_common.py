"""What every ``search`` command shares: the typer app, the consoles, progress bars, one-line
failures, and the options generated from :class:`~search.params.SearchParams`."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from .errors import SearchError
from .params import ParamSpec, SearchParams, param_specs

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
        help="Embedding model: multilingual-e5-small (default), all-MiniLM-L6-v2, or a sentence-transformers "
        "folder, each run as int8 ONNX (exported once); multilingual-e5-small-fp32 and all-MiniLM-L6-v2-fp32 "
        "run float32 sentence-transformers. At query time it must match the index's model.",
    ),
]


def spec_option(spec: ParamSpec, *, optional: bool = False, help: str | None = None) -> Any:
    """The typer annotation of one :class:`SearchParams` field: its flag, bounds and help, generated."""
    flags = spec.flag_names
    if spec.type is bool:
        flags = (f"{flags[0]}/--no-{flags[0].removeprefix('--')}",)
    kind = spec.value_type(optional, bounds=spec.cli_bounds)
    lo, hi = (spec.lo, spec.hi) if spec.cli_bounds else (None, None)  # else SearchParams refuses it: exit 1
    metavar = "<float>" if spec.type is float else None  # not the Annotated type that keeps nan out
    info = typer.Option(*flags, min=lo, max=hi, help=help or spec.help, show_default=not spec.optional, metavar=metavar)
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
                fail(exc)
                return
            command(params=params, **values)

        parameters = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own] + generated
        run.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]  # typer reads it
        run.__annotations__ = {p.name: p.annotation for p in parameters}
        return run

    return decorate


class RichProgress:
    """Adapts rich's progress bar to the library's Progress protocol.

    Until the first counted task starts, a spinner says what is happening (reading, model load).
    Each thread has its own bar: a write indexes keywords and embeds at once, each stage with its
    own count, rate and time left.
    """

    def __init__(self, progress: Progress, waiting: str) -> None:
        self.progress = progress
        self._waiting: Any = progress.add_task(waiting, total=None)
        self._tasks: dict[int, Any] = {}
        self._lock = threading.Lock()

    def start(self, task: str, total: int) -> None:
        with self._lock:
            if self._waiting is not None:
                self.progress.remove_task(self._waiting)
                self._waiting = None
            old = self._tasks.pop(threading.get_ident(), None)
            if old is not None:
                self.progress.remove_task(old)
            self._tasks[threading.get_ident()] = self.progress.add_task(task, total=total)

    def advance(self, n: int) -> None:
        task = self._tasks.get(threading.get_ident())
        if task is not None:
            self.progress.advance(task, n)


def fail(exc: SearchError) -> None:
    err.print(Text.assemble(("error:", "bold red"), f" {exc}"), soft_wrap=True)  # the message is text, not markup
    raise typer.Exit(exc.exit_code)


class RateColumn(ProgressColumn):
    """Items per second of the stage under way (sentences, documents, queries)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")


def progress_bar(quiet: bool) -> Progress:
    """One bar per stage (each ``Progress.start`` replaces the last): count, rate and time left."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=quiet or not err.is_terminal,  # piped to a log, a bar is noise (and leaves a blank line)
        transient=True,
    )


# the filters and facets of `search query` (issue 14; search/filters.py)
WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        help="Only documents whose FIELD is VALUE (FIELD=VALUE; repeatable: one field's values are OR-ed, "
        "fields AND-ed). Fields: lang, type, title, year, folder, and any key of the documents' meta.",
    ),
]
PathOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--path", help="Only documents whose path (relative to the corpus) matches GLOB, e.g. 'berichte/2024/**'."
    ),
]
AfterOpt = Annotated[
    str | None, typer.Option(help="Only documents dated on or after DATE (2024-03-15, 2024-03-15T10:30, 2024).")
]
BeforeOpt = Annotated[str | None, typer.Option(help="Only documents dated before DATE.")]
FacetsOpt = Annotated[
    str | None,
    typer.Option(
        help="Count the matching documents per value of these fields (e.g. type,lang,year,folder); "
        'with --json as "facets".'
    ),
]
