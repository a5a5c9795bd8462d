"""Searching a sharded index in one process: open every shard, fan out, merge (search/sharding.py).

:class:`ShardedIndex` is an :class:`~search.index.Index` whose chunk table and documents are the
union of its shards' (chunk ids and document numbers are global, so each names one shard), and
whose keyword and vector sides fan out: each shard proposes its top candidates, scored with the
global BM25 statistics, and the best of all are kept, ties broken by id as one index breaks them.
The :class:`~search.searcher.Searcher` then works on the merged candidates unchanged: min-max and
RRF normalise, feedback moves the query and the passages are built only after the merge, so the
results equal those of one index over the same corpus (tests/test_sharding.py).

Query syntax (phrases, fields, fuzzy) is scored as plain words are, over each shard's matrices with
the global statistics: a word a fuzzy term or prefix expands to in one shard only weighs as in one index.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .candidates import Candidates, gather, merge_parts, merge_terms
from .errors import IndexFormatError, rebuild_hint
from .fanout import Fanout, LocalFanout, ShardSides, every
from .filters import Allowed
from .index import OPEN_ATTEMPTS, Index
from .locks import pin_generation, unpin
from .manifest import Analyzer, Counts, Manifest
from .params import SearchParams
from .parsing import ParsedQuery, parse_query
from .searcher import Page
from .shards import GlobalStats, ShardsManifest, is_sharded, shard_name
from .store import SHARDS, ChunkTable
from .types import Hit
from .vectors import VectorIndex
from .writer import folder_bytes

RemoteShards = Callable[[Path, ShardsManifest], Fanout]  # the fan-out to shards served elsewhere


class _Owners:
    """Which shard holds each id (chunk ids or document numbers), by binary search."""

    def __init__(self, ids_per_shard: Sequence[np.ndarray]) -> None:
        ids = np.concatenate(ids_per_shard) if ids_per_shard else np.zeros(0, dtype=np.int64)
        shard = np.concatenate([np.full(len(a), i, dtype=np.int64) for i, a in enumerate(ids_per_shard)])
        order = np.argsort(ids, kind="stable")
        self.ids, self.shard = ids[order], shard[order]

    def split(self, ids: Iterable[int]) -> dict[int, list[int]]:
        """``ids`` grouped by the shard holding them (order kept; unknown ids dropped)."""
        wanted = np.fromiter(ids, dtype=np.int64)
        out: dict[int, list[int]] = {}
        if not len(wanted) or not len(self.ids):
            return out
        pos = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        known = self.ids[pos] == wanted
        for i, s in zip(wanted[known].tolist(), self.shard[pos[known]].tolist(), strict=True):
            out.setdefault(s, []).append(i)
        return out

    def mask(self, ids: np.ndarray, shard: int) -> np.ndarray:
        pos = np.minimum(np.searchsorted(self.ids, ids), max(len(self.ids) - 1, 0))
        return (self.ids[pos] == ids) & (self.shard[pos] == shard) if len(self.ids) else np.zeros(len(ids), bool)


def _merge(lists: Iterable[list[Hit]], k: int) -> list[Hit]:
    """The ``k`` best of several top lists, ties broken by id (as one index's ``_top`` breaks them)."""
    hits = [h for hl in lists for h in hl]
    hits.sort(key=lambda h: (-h.score, h.chunk_id))
    return hits[:k]


class ShardedKeyword:
    """The keyword side of every shard, asked together (the methods the searcher calls)."""

    def __init__(self, fanout: Fanout, owners: _Owners, langs: list[str]) -> None:
        self.fanout, self.owners, self.langs = fanout, owners, langs

    def parse(self, text: str, syntax: str = "auto") -> ParsedQuery:
        """The query parsed here, as the first shard parses it (the analysis depends on the languages
        only); the words each shard matches come with the candidates (:meth:`ShardedIndex.candidates`)."""
        return parse_query(text, self.langs, syntax)

    def _among(self, allowed: Allowed | None, shard: int) -> Allowed | None:
        if allowed is None:
            return None
        return Allowed(allowed.chunks[self.owners.mask(allowed.chunks, shard)], allowed.docs)

    def search(self, parsed: ParsedQuery, k: int, allowed: Allowed | None = None) -> list[Hit]:
        calls = {i: (parsed, k, self._among(allowed, i)) for i in range(self.fanout.count)}
        return _merge(self.fanout.ask("keyword", "search", calls).values(), k)

    def matching(self, parsed: ParsedQuery, allowed: Allowed | None = None) -> np.ndarray:
        calls = {i: (parsed, self._among(allowed, i)) for i in range(self.fanout.count)}
        found = self.fanout.ask("keyword", "matching", calls)
        return np.concatenate([found[i] for i in sorted(found)]) if found else np.zeros(0, dtype=np.int64)

    def scores_for(self, parsed: ParsedQuery, chunk_ids: Iterable[int]) -> dict[int, float]:
        calls = {shard: (parsed, ids) for shard, ids in self.owners.split(chunk_ids).items()}
        if not calls:
            return {}
        out: dict[int, float] = {}
        found = self.fanout.ask("keyword", "scores_for", calls)
        for shard in sorted(found):
            out.update(found[shard])
        return out

    def explain(
        self, parsed: ParsedQuery, chunk_ids: Sequence[int], docs: Sequence[int]
    ) -> list[dict[str, Any]] | None:
        if parsed.plain is None:
            return None
        doc_of = dict(zip(chunk_ids, docs, strict=True))
        split = self.owners.split(chunk_ids)
        calls = {s: (parsed, ids, [doc_of[c] for c in ids]) for s, ids in split.items()}
        found = self.fanout.ask("keyword", "explain", calls)
        out: dict[int, dict[str, Any]] = {}
        for shard, ids in split.items():
            out.update(zip(ids, found[shard] or [], strict=True))
        return [out[c] for c in chunk_ids]

    def close(self) -> None:
        pass  # the shards close with the index


class ShardedVectors:
    """One vector side (sentences or documents) of every shard, asked together."""

    def __init__(self, fanout: Fanout, side: str, owners: _Owners, dim: int) -> None:
        self.fanout, self.side, self.owners, self.dim = fanout, side, owners, dim

    def search(self, query: np.ndarray, k: int, exact: bool = False, allowed: np.ndarray | None = None) -> list[Hit]:
        calls = {
            i: (query, k, exact, None if allowed is None else allowed[self.owners.mask(allowed, i)])
            for i in range(self.fanout.count)
        }
        return _merge(self.fanout.ask(self.side, "search", calls).values(), k)

    def vectors(self, ids: list[int]) -> np.ndarray:
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        where = {c: i for i, c in enumerate(ids)}
        split = self.owners.split(ids)
        found = self.fanout.ask(self.side, "vectors", {s: (mine,) for s, mine in split.items()}) if split else {}
        for shard, mine in split.items():
            out[[where[c] for c in mine]] = found[shard]
        return out

    def similarities(self, query: np.ndarray, ids: list[int]) -> dict[int, float]:
        split = self.owners.split(ids)
        out: dict[int, float] = {}
        found = self.fanout.ask(self.side, "similarities", {s: (query, m) for s, m in split.items()}) if split else {}
        for shard in sorted(found):
            out.update(found[shard])
        return {int(i): out[int(i)] for i in ids if int(i) in out}

    def ids(self) -> np.ndarray:
        found = self.fanout.ask(self.side, "ids", every(self.fanout))
        return np.concatenate([found[i] for i in sorted(found)])

    @property
    def count(self) -> int:
        return int(sum(self.fanout.ask(self.side, "count", every(self.fanout)).values()))


class ShardedIndex(Index):
    """Every shard of a sharded index folder, opened at the generations ``shards.json`` names."""

    def __init__(
        self,
        folder: Path,
        sharded: ShardsManifest,
        shards: list[Index],
        fanout: Fanout,
        encoder_threads: int | None = None,
        remote: RemoteShards | None = None,
    ) -> None:
        self.folder = folder
        self._remote = remote
        self.sharded = sharded
        self.shards = shards
        first = shards[0]
        langs = sorted({lang for s in shards for lang in s.langs})
        self.fanout = fanout
        self.manifest: Manifest = first.manifest.replace(
            generation=f"shards-{sharded.generation:06d}",
            analyzer=Analyzer(tuple(langs), first.manifest.analyzer.lang_option, first.manifest.analyzer.pipeline),
            counts=Counts(sharded.documents, sharded.chunks, max(m.counts.skipped for m in sharded.shards)),
            languages=sharded.languages,
            next_chunk_id=sharded.next_chunk_id,
            next_doc_num=sharded.next_doc_num,
        )
        self.generation = folder
        self._pin = None
        self.documents = [d for s in shards for d in s.documents]
        self.docs_by_num = {n: d for s in shards for n, d in s.docs_by_num.items()}
        self.chunks = ChunkTable.of(np.concatenate([s.chunks.rows for s in shards]))
        self.langs = langs
        chunk_owners = _Owners([s.chunks.ids for s in shards])
        self._doc_owners = _Owners([np.fromiter(s.docs_by_num, dtype=np.int64) for s in shards])
        self._keyword = ShardedKeyword(fanout, chunk_owners, first.langs)
        self.keyword = self._keyword  # type: ignore[assignment]
        self._chunk_owners = chunk_owners
        self.dim = first.dim
        self._vectors = None
        self._doc_vectors = None
        self._encoder = None
        self._encoder_threads = encoder_threads
        self._ref = None
        self._row = {int(cid): i for i, cid in enumerate(self.chunks.ids.tolist())}
        self._row_docs = None
        self._doc_rows = {}
        self._num_by_id = None
        self._allowed = {}
        self._lock = threading.Lock()

    @classmethod
    def open_sharded(
        cls,
        folder: Path,
        *,
        model: str | None = None,
        encoder: Any = None,
        encoder_threads: int | None = None,
        remote: RemoteShards | None = None,
    ) -> ShardedIndex:
        """Every shard at the generation ``shards.json`` names; ``remote`` makes the fan-out that
        asks shards served elsewhere (search/serve_ray.py): here only their chunk tables and
        documents are opened, for filters and passages."""
        for _ in range(OPEN_ATTEMPTS):  # a writer may commit and delete the generations just read of
            sharded = ShardsManifest.read(folder)
            opened: list[Index] = []
            try:
                for i, m in enumerate(sharded.shards):
                    gen = folder / shard_name(i) / m.generation
                    pin = pin_generation(gen)
                    if pin is None:
                        break
                    try:
                        # the first shard checks the model and holds the encoder; the others share it
                        opened.append(
                            Index(gen.parent, m, model=model if i == 0 else None, encoder=encoder if i == 0 else None,
                                  pin=pin, encoder_threads=encoder_threads, keyword=remote is None)
                        )  # fmt: skip
                    except BaseException:
                        unpin(pin)
                        raise
                else:
                    if remote is not None:
                        fanout: Fanout = remote(folder, sharded)
                    else:
                        stats = GlobalStats.load(folder / sharded.stats)
                        fanout = LocalFanout([ShardSides(ix, stats) for ix in opened])
                    return cls(folder, sharded, opened, fanout, encoder_threads, remote)
            except BaseException:
                for ix in opened:
                    ix.close()
                raise
            for ix in opened:
                ix.close()
            if ShardsManifest.read(folder).generation == sharded.generation:
                break  # not a race: the named generation is gone
        missing = [
            shard_name(i) for i, m in enumerate(ShardsManifest.read(folder).shards)
            if not (folder / shard_name(i) / m.generation).is_dir()
        ]  # fmt: skip
        raise IndexFormatError(
            f"{folder}: shard {', '.join(missing) or '?'} lacks the generation {SHARDS} names; {rebuild_hint(folder)}"
        )

    def candidates(
        self, parsed: ParsedQuery, qvec: np.ndarray | None, k: int, allowed: Allowed | None, hybrid: bool
    ) -> Candidates:
        """In one process, one index's sequence over the fanned-out sides (each merge as cheap as a
        call); shards elsewhere, every shard's part in one round (search/candidates.py), merged as one
        index gives them. The words each shard matches, for highlights, come with them."""
        kw = self._keyword
        if self.fanout.local:
            found = gather(self, parsed, qvec, k, allowed, hybrid)
            found.terms = merge_terms(self.fanout.ask("keyword", "terms", every(self.fanout, parsed)).values())
            return found
        calls = {i: (parsed, qvec, k, kw._among(allowed, i), hybrid) for i in range(self.fanout.count)}
        parts = self.fanout.ask("shard", "candidates", calls)
        return merge_parts([parts[i] for i in sorted(parts)], k, hybrid)

    def shard_counts(self) -> tuple[int, int] | None:
        # in one process every shard answers or the search fails: never a list with a shard missing
        return len(self.shards), len(self.shards)

    def page(self, query: str, params: SearchParams | None = None, **changes: Any) -> Page:
        return replace(super().page(query, params, **changes), shards=self.shard_counts())

    def is_current(self) -> bool:
        try:
            return ShardsManifest.read(self.folder).generation == self.sharded.generation
        except Exception:
            return True

    def reopen(self) -> Index:
        encoder = self.shards[0]._encoder
        return ShardedIndex.open_sharded(
            self.folder, encoder=encoder, encoder_threads=self._encoder_threads, remote=self._remote
        )

    @property
    def model_loaded(self) -> bool:
        return self.shards[0].model_loaded

    def close(self) -> None:
        self.fanout.close()
        for s in self.shards:
            s.close()

    @property
    def encoder(self) -> Any:
        return self.shards[0].encoder

    @property
    def vectors(self) -> VectorIndex:
        if self._vectors is None:
            self._vectors = ShardedVectors(self.fanout, "vectors", self._chunk_owners, self.dim)  # type: ignore[assignment]
        return self._vectors  # type: ignore[return-value]

    @property
    def doc_vectors(self) -> VectorIndex:
        if self._doc_vectors is None:
            self._doc_vectors = ShardedVectors(self.fanout, "doc_vectors", self._doc_owners, self.dim)  # type: ignore[assignment]
        return self._doc_vectors  # type: ignore[return-value]

    def info(self) -> dict[str, Any]:
        per_shard = [s.info() for s in self.shards]
        sizes: dict[str, int] = {}
        for report in per_shard:
            for name, n in report["sizes"].items():
                sizes[name] = sizes.get(name, 0) + n
        return {
            **self.manifest.to_json(),
            "folder": str(self.folder),
            "shards": [
                {
                    "folder": shard_name(i),
                    "generation": s.manifest.generation,
                    "documents": s.manifest.counts.documents,
                    "chunks": s.manifest.counts.chunks,
                }
                for i, s in enumerate(self.shards)
            ],
            "sizes": sizes,
            "total_bytes": sum(sizes.values()),
            "folder_bytes": folder_bytes(self.folder),
        }


def open_index(
    folder: str | Path,
    *,
    model: str | None = None,
    encoder: Any = None,
    encoder_threads: int | None = None,
    remote: RemoteShards | None = None,
) -> Index:
    """Open an index folder, sharded or not: what the CLI, the server and ``search eval`` open
    (``remote``: see :meth:`ShardedIndex.open_sharded`)."""
    folder = Path(folder)
    if is_sharded(folder):
        return ShardedIndex.open_sharded(
            folder, model=model, encoder=encoder, encoder_threads=encoder_threads, remote=remote
        )
    return Index.open(folder, model=model, encoder=encoder, encoder_threads=encoder_threads)
