"""Filters and facets over documents' metadata (issue 14).

A filter narrows a search to documents before either side takes its candidates, so a filtered query
returns k passages whenever k matching ones exist, and never one outside it. Values of one field are
OR-ed, different fields AND-ed: ``--where type=pdf --where type=docx --where lang=de`` is (pdf or docx)
and German. Fields: ``lang``, ``type``, ``title``, ``year``, ``folder`` and every key of the documents'
``meta`` (compared as text, case-insensitively). ``path`` takes globs over the path relative to the
corpus root (``*`` stays inside a folder, ``**`` crosses folders); ``after`` keeps documents dated
on or after a date, ``before`` those dated before it (documents without a date are left out by either).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import SearchError
from .types import Document

DERIVED = ("year", "folder")  # fields computed from meta: the date's year, the path's folder ("." at the root)
FACETS_MAX = 20  # values per facet, most frequent first


@dataclass(frozen=True)
class Filters:
    """What documents a search may return. Hashable: an index caches each filter's chunk ids."""

    where: tuple[tuple[str, tuple[str, ...]], ...] = ()  # (field, accepted values), fields sorted
    path: tuple[str, ...] = ()
    after: str | None = None
    before: str | None = None

    def __post_init__(self) -> None:
        for name in ("after", "before"):
            value = getattr(self, name)
            if value is not None:
                _moment(value, name)  # refuses a bad date at once
        for glob in self.path:
            _glob(glob)

    @classmethod
    def parse(
        cls,
        where: Iterable[str] = (),
        path: Iterable[str] = (),
        after: str | None = None,
        before: str | None = None,
    ) -> Filters:
        """From the CLI's and the API's strings: ``where`` as ``FIELD=VALUE`` items."""
        fields: dict[str, list[str]] = {}
        for item in where:
            name, sep, value = item.partition("=")
            name = name.strip().lower()
            if not sep or not name:
                raise SearchError(f"where takes FIELD=VALUE (e.g. type=pdf), not {item!r}")
            fields.setdefault(name, []).append(value.strip())
        grouped = tuple((name, tuple(dict.fromkeys(values))) for name, values in sorted(fields.items()))
        return cls(grouped, tuple(p for p in path if p), after or None, before or None)

    @property
    def active(self) -> bool:
        return bool(self.where or self.path or self.after or self.before)

    def check_fields(self, known: set[str]) -> None:
        """Refuses a ``where`` field no document of the index has."""
        for name, _ in self.where:
            if name not in known:
                choices = ", ".join(sorted(known))
                raise SearchError(f"unknown field {name!r} in where; this index has: {choices}")

    def accepts(self, doc: Document) -> bool:
        meta = doc.metadata()
        for name, values in self.where:
            have = field_value(meta, name)
            if have is None or have.casefold() not in {v.casefold() for v in values}:
                return False
        if self.path and not any(_glob(g).fullmatch(str(meta.get("path", ""))) for g in self.path):
            return False
        if self.after or self.before:
            when = _doc_moment(meta.get("date"))
            if when is None:
                return False
            if self.after and when < _moment(self.after, "after"):
                return False
            if self.before and when >= _moment(self.before, "before"):
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        return {"where": {k: list(v) for k, v in self.where}, "path": list(self.path), "after": self.after,
                "before": self.before}  # fmt: skip


@dataclass(frozen=True)
class Allowed:
    """What a filter lets through in one index: its chunk ids (sorted) and its documents' ids."""

    chunks: np.ndarray
    docs: frozenset[str]


def field_value(meta: Mapping[str, Any], name: str) -> str | None:
    """A document's value of a filter or facet field, as text (None where it has none)."""
    if name == "year":
        when = str(meta.get("date") or "")
        return when[:4] if re.match(r"\d{4}", when) else None
    if name == "folder":
        path = str(meta.get("path") or "")
        return path.rsplit("/", 1)[0] if "/" in path else "."
    value = meta.get(name)
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def known_fields(docs: Iterable[Document]) -> set[str]:
    out = {"lang", "type", "title", *DERIVED}
    for doc in docs:
        out.update(doc.meta)
    return out


def count_facets(docs: Iterable[Document], names: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per field, how many of ``docs`` have each value, most first (ties by value), at most FACETS_MAX."""
    names = list(dict.fromkeys(names))
    counts: dict[str, Counter[str]] = {n: Counter() for n in names}
    for doc in docs:
        meta = doc.metadata()
        for n in names:
            value = field_value(meta, n)
            if value is not None:
                counts[n][value] += 1
    return {n: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:FACETS_MAX]) for n, c in counts.items()}


def parse_facets(text: str | None) -> tuple[str, ...]:
    """``"type,lang,year"`` → the field names."""
    return tuple(dict.fromkeys(f.strip().lower() for f in (text or "").split(",") if f.strip()))


def _moment(value: str, name: str) -> datetime:
    when = _doc_moment(value)
    if when is None:
        raise SearchError(f"{name} takes a date like 2024-03-15 or 2024-03-15T10:30, not {value!r}")
    return when


def _doc_moment(value: Any) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC date-time (a bare date: its midnight, UTC)."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        if re.fullmatch(r"\d{4}", text):
            return datetime(int(text), 1, 1, tzinfo=UTC)
        if len(text) == 10:
            d = date.fromisoformat(text)
            return datetime(d.year, d.month, d.day, tzinfo=UTC)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: in UTC before year 1 or after 9999
        return None


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """A path glob as a regular expression: ``**`` any folders, ``*`` and ``?`` inside one name."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))
