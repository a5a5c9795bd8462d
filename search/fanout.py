"""The shards of a sharded index as a search asks them: all in this process, or each in Ray Serve
replicas (search/serve_ray.py). Both go through :class:`ShardSides`, so they score alike.

A :class:`Fanout` sends one call to several shards at once and returns each shard's answer:
``ask(side, method, {shard: args})``, where ``side`` is ``keyword``, ``vectors``, ``doc_vectors``
or ``shard`` (the :class:`ShardSides` itself) and ``method`` one of those named in ``METHODS``.
Every shard scores plain words and query syntax alike with the statistics of every shard (its BM25
matrices read the global ones, search/shards.py).
"""

from __future__ import annotations

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
    "shard": frozenset({"candidates"}),
}


class ShardSides:
    """One shard's keyword and vector sides, its BM25 matrices scoring with the statistics of every shard."""

    def __init__(self, index: Index, stats: GlobalStats) -> None:
        self.index = index
        index.keyword.bm25.use_stats(stats.sentences, stats.documents)

    def candidates(
        self, parsed: ParsedQuery, qvec: np.ndarray | None, k: int, allowed: Allowed | None, hybrid: bool
    ) -> dict[str, Any]:
        """This shard's part of a query's candidates (search/candidates.py)."""
        return shard_part(self.index, parsed, qvec, k, allowed, hybrid)

    def ask(self, side: str, method: str, args: tuple[Any, ...]) -> Any:
        if method not in METHODS.get(side, ()):
            raise ValueError(f"a shard does not answer {side}.{method}")
        index = self.index
        target: Any = self if side == "shard" else index.keyword if side == "keyword" else getattr(index, side)
        value = getattr(target, method)
        return value(*args) if callable(value) else value

    def close(self) -> None:
        self.index.close()


class Fanout(Protocol):
    """Calls to several shards at once; each shard's answer, by shard number."""

    count: int
    local: bool  # calls cost no more than in one index (no round trip): ask for what is needed, when it is

    def ask(self, side: str, method: str, calls: dict[int, tuple[Any, ...]]) -> dict[int, Any]: ...

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

    def ask(self, side: str, method: str, calls: dict[int, tuple[Any, ...]]) -> dict[int, Any]:
        return {i: self.shards[i].ask(side, method, args) for i, args in calls.items()}

    def close(self) -> None:
        pass  # these shards' indexes are the ShardedIndex's own: they close with it
