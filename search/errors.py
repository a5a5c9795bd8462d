"""Errors the engine raises on purpose.

Every error a user can cause derives from :class:`SearchError`; its message is one line that says
what went wrong and what to do. The CLI prints that line and exits with ``exit_code``; anything
else escaping is a bug.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T", int, float)


class SearchError(Exception):
    """Base class of the engine's own errors."""

    exit_code = 1


def env_setting(name: str, default: T, parse: Callable[[str], T], ok: Callable[[T], bool], wanted: str) -> T:
    """A number the environment variable ``name`` sets (``default`` where it is unset or blank); one that
    does not parse or is not ``ok`` is a :class:`SearchError`: "NAME must be WANTED, not 'VALUE'"."""
    raw = os.environ.get(name, "").strip()
    try:
        value = parse(raw) if raw else default
        if not ok(value):
            raise ValueError
    except ValueError:
        raise SearchError(f"{name} must be {wanted}, not {raw!r}") from None
    return value


class CorpusError(SearchError):
    """The corpus could not be read (missing path, nothing indexable)."""

    exit_code = 2


class IndexNotFoundError(SearchError):
    """No index at the given folder."""

    exit_code = 3


class DocumentNotFoundError(SearchError):
    """A document id the index does not hold."""

    exit_code = 3


class IndexFormatError(SearchError):
    """The index folder is damaged or was written by an incompatible version."""

    exit_code = 3


class IndexWriteError(SearchError):
    """The index folder cannot be written (disk full, read-only, permissions)."""

    exit_code = 3


class ModelMismatchError(SearchError):
    """The index was built with a different embedding model than the one asked for."""

    exit_code = 4


class ModelError(SearchError):
    """The embedding model could not be found, converted or loaded."""

    exit_code = 4


class IndexBusyError(SearchError):
    """Another process is writing the index."""

    exit_code = 6


class ServeError(SearchError):
    """The server cannot start (the address is taken, the port is not allowed)."""

    exit_code = 7


class QueryError(SearchError):
    """The query is empty, too long or cannot be parsed."""

    exit_code = 5


def rebuild_hint(folder: object) -> str:
    """What to do about an index that cannot be read: the one wording every such error uses."""
    return f"rebuild it with `search index CORPUS --index {folder} --rebuild`"
