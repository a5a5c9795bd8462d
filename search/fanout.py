"""The shards of a sharded index as a search asks them: all in this process, or each in Ray Serve
replicas (search/serve_ray.py). Both go through :class:`ShardSides`, so they score alike.

A :class:`Fanout` sends one call to several shards at once and returns each shard's answer:
``ask(side, method, {shard: args})``, where ``side`` is ``keyword``, ``vectors``, ``doc_vectors``
or ``shard`` (the :class:`ShardSides` itself) and ``method`` one of those named in ``METHODS``.
Query syntax is scored with statistics over every shard: :meth:`ShardSides.syntax_stats` gives
one shard's, their sum goes with each scoring call, and each shard's whoosh BM25F reads it there.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .candidates import shard_part
from .filters import Allowed
from .index import Index
from .parsing import ParsedQuery
from .shards import GlobalStats

METHODS = {
    "keyword": frozenset({"terms", "search", "matching", "scores_for", "explain"}),
    "vectors": frozenset({"search", "vectors", "similarities", "ids", "count"}),
    "doc_vectors": frozenset({"search", "vectors", "similarities", "ids", "count"}),
    "shard": frozenset({"syntax_stats", "candidates"}),
}


@dataclass
class SyntaxStats:
    """A query's collection statistics as whoosh's BM25F reads them: the document count, each
    scorable field's total length, and the document frequency of every term the query expands to."""

    docs: int = 0
    df: dict[tuple[str, bytes], int] = field(default_factory=dict)
    length: dict[str, int] = field(default_factory=dict)

    @classmethod
    def total(cls, parts: Iterable[SyntaxStats]) -> SyntaxStats:
        out = cls()
        for p in parts:  # integers: the order of the sum does not matter
            out.docs += p.docs
            for t, n in p.df.items():
                out.df[t] = out.df.get(t, 0) + n
            for f, n in p.length.items():
                out.length[f] = out.length.get(f, 0) + n
        return out


class _Current(threading.local):
    """The statistics of the query syntax being scored in this thread (None: the shard's own)."""

    stats: SyntaxStats | None = None


def _key(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


class ShardSides:
    """One shard's keyword and vector sides, scoring with the statistics of every shard: its BM25
    matrices read the global ones, its whoosh BM25F those passed with the call."""

    def __init__(self, index: Index, stats: GlobalStats) -> None:
        self.index = index
        kw = index.keyword
        if kw.bm25 is not None:
            kw.bm25.use_stats(stats.sentences, stats.documents)
        self._current = _Current()
        # BM25FScorer asks the top searcher for these two (whoosh/scoring.py)
        local_idf, local_avg = kw.searcher.idf, kw.searcher.avg_field_length

        def idf(fieldname: str, text: str | bytes) -> float:
            s = self._current.stats
            if s is None:
                return float(local_idf(fieldname, text))
            # whoosh's BM25F idf (WeightingModel.idf), with the collection's counts
            return math.log(s.docs / (s.df.get((fieldname, _key(text)), 0) + 1)) + 1

        def avg_field_length(fieldname: str, default: float | None = None) -> float | None:
            s = self._current.stats
            if s is None:
                return local_avg(fieldname, default)
            length = s.length.get(fieldname)
            return default if length is None else length / (s.docs or 1)

        kw.searcher.idf = idf
        kw.searcher.avg_field_length = avg_field_length

    def syntax_stats(self, parsed: ParsedQuery) -> SyntaxStats:
        """This shard's part of the statistics ``parsed`` is scored with."""
        kw = self.index.keyword
        assert parsed.query is not None
        with kw._lock:
            reader = kw.searcher.reader()
            terms = {(f, _key(t)) for f, t in parsed.query.existing_terms(reader, expand=True)}
            return SyntaxStats(
                reader.doc_count_all(),
                {t: reader.doc_frequency(*t) for t in sorted(terms)},
                {f: reader.field_length(f) for f in reader.schema.scorable_names()},
            )

    def candidates(
        self, parsed: ParsedQuery, qvec: np.ndarray | None, k: int, allowed: Allowed | None, hybrid: bool
    ) -> dict[str, Any]:
        """This shard's part of a query's candidates (search/candidates.py)."""
        return shard_part(self.index, parsed, qvec, k, allowed, hybrid)

    def ask(self, side: str, method: str, args: tuple[Any, ...], stats: SyntaxStats | None = None) -> Any:
        if method not in METHODS.get(side, ()):
            raise ValueError(f"a shard does not answer {side}.{method}")
        index = self.index
        target: Any = self if side == "shard" else index.keyword if side == "keyword" else getattr(index, side)
        value = getattr(target, method)
        if not callable(value):
            return value
        self._current.stats = stats
        try:
            return value(*args)
        finally:
            self._current.stats = None

    def close(self) -> None:
        self.index.close()


class Fanout(Protocol):
    """Calls to several shards at once; each shard's answer, by shard number."""

    count: int
    local: bool  # calls cost no more than in one index (no round trip): ask for what is needed, when it is

    def ask(
        self, side: str, method: str, calls: dict[int, tuple[Any, ...]], stats: SyntaxStats | None = None
    ) -> dict[int, Any]: ...

    def close(self) -> None: ...


def every(fanout: Fanout, *args: Any) -> dict[int, tuple[Any, ...]]:
    """The same arguments for every shard."""
    return dict.fromkeys(range(fanout.count), args)


class LocalFanout:
    """Every shard open in this process, asked one after another."""

    def __init__(self, shards: list[ShardSides]) -> None:
        self.shards = shards
        self.count = len(shards)
        self.local = True

    def ask(
        self, side: str, method: str, calls: dict[int, tuple[Any, ...]], stats: SyntaxStats | None = None
    ) -> dict[int, Any]:
        return {i: self.shards[i].ask(side, method, args, stats) for i, args in calls.items()}

    def close(self) -> None:
        pass  # these shards' indexes are the ShardedIndex's own: they close with it
