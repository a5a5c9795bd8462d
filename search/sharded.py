"""Searching a sharded index in one process: open every shard, fan out, merge (search/sharding.py).

:class:`ShardedIndex` is an :class:`~search.index.Index` whose chunk table and documents are the
union of its shards' (chunk ids and document numbers are global, so each names one shard), and
whose keyword and vector sides fan out: each shard proposes its top candidates, scored with the
global BM25 statistics, and the best of all are kept, ties broken by id as one index breaks them.
The :class:`~search.searcher.Searcher` then works on the merged candidates unchanged: min-max and
RRF normalise, feedback moves the query and the passages are built only after the merge, so the
results equal those of one index over the same corpus (tests/test_sharding.py).

Query syntax (phrases, fields, fuzzy) is scored by each shard's whoosh BM25F, told the document
count, field lengths and document frequencies of every shard together for the terms the query
expands to in any of them.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import IndexFormatError, rebuild_hint
from .filters import Allowed
from .index import OPEN_ATTEMPTS, Index
from .keyword import KeywordIndex, ParsedQuery
from .locks import pin_generation, unpin
from .manifest import Analyzer, Counts, Manifest
from .params import SearchParams
from .searcher import Page
from .shards import GlobalStats, ShardsManifest, is_sharded, shard_name
from .store import SHARDS, ChunkTable
from .types import Hit
from .vectors import VectorIndex
from .writer import folder_bytes


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


class _WhooshStats(threading.local):
    """The collection statistics of the query syntax being run in this thread, summed over the shards:
    each shard's whoosh BM25F reads its idf and average field length from here (see
    :meth:`ShardedKeyword._global`), so every shard scores as the whole index would."""

    stats: dict[str, Any] | None = None


def _key(text: str | bytes) -> bytes:
    return text if isinstance(text, bytes) else text.encode("utf-8")


class ShardedKeyword:
    """The keyword side of every shard, asked together (the methods the searcher calls)."""

    def __init__(self, shards: list[KeywordIndex], owners: _Owners) -> None:
        self.shards, self.owners = shards, owners
        self._current = _WhooshStats()
        for shard in shards:  # BM25FScorer asks the top searcher for these two (whoosh/scoring.py)
            local_idf, local_avg = shard.searcher.idf, shard.searcher.avg_field_length
            shard.searcher.idf = self._idf(local_idf)
            shard.searcher.avg_field_length = self._avg_field_length(local_avg)

    def _idf(self, local: Any) -> Any:
        def idf(fieldname: str, text: str | bytes) -> float:
            stats = self._current.stats
            if stats is None:
                return float(local(fieldname, text))
            # whoosh's BM25F idf (WeightingModel.idf), with the collection's counts
            return math.log(stats["docs"] / (stats["df"].get((fieldname, _key(text)), 0) + 1)) + 1

        return idf

    def _avg_field_length(self, local: Any) -> Any:
        def avg_field_length(fieldname: str, default: float | None = None) -> float | None:
            stats = self._current.stats
            if stats is None:
                return local(fieldname, default)
            length = stats["length"].get(fieldname)
            return default if length is None else length / (stats["docs"] or 1)

        return avg_field_length

    @contextlib.contextmanager
    def _global(self, parsed: ParsedQuery) -> Iterator[None]:
        """Query syntax scored with statistics over every shard: the document count, each field's
        length, and the document frequency of every term the query expands to in any shard."""
        terms: set[tuple[str, bytes]] = set()
        assert parsed.query is not None
        for shard in self.shards:
            with shard._lock:
                terms |= {(f, _key(t)) for f, t in parsed.query.existing_terms(shard.searcher.reader(), expand=True)}
        fields = {f for f, _ in terms}
        docs, df, length = 0, dict.fromkeys(terms, 0), dict.fromkeys(fields, 0)
        for shard in self.shards:
            with shard._lock:
                reader = shard.searcher.reader()
                docs += reader.doc_count_all()
                for f, t in terms:
                    df[(f, t)] += reader.doc_frequency(f, t)
                for f in fields:
                    length[f] += reader.field_length(f)
        self._current.stats = {"docs": docs, "df": df, "length": length}
        try:
            yield
        finally:
            self._current.stats = None

    def parse(self, text: str, syntax: str = "auto") -> ParsedQuery:
        """One shard's parse, with the matched terms (highlights) of every shard's vocabulary."""
        parsed = [s.parse(text, syntax) for s in self.shards]
        terms: dict[str, frozenset[str]] = {}
        for p in parsed:
            for lang, ts in p.terms.items():
                terms[lang] = terms.get(lang, frozenset()) | ts
        first = parsed[0]
        return ParsedQuery(first.query, terms, first.syntax, first.plain)

    def _among(self, allowed: Allowed | None, shard: int) -> Allowed | None:
        if allowed is None:
            return None
        return Allowed(allowed.chunks[self.owners.mask(allowed.chunks, shard)], allowed.docs, allowed.excluded)

    def search(self, parsed: ParsedQuery, k: int, allowed: Allowed | None = None) -> list[Hit]:
        with self._syntax(parsed):
            return _merge([s.search(parsed, k, self._among(allowed, i)) for i, s in enumerate(self.shards)], k)

    def _syntax(self, parsed: ParsedQuery) -> contextlib.AbstractContextManager[None]:
        """Global statistics for a query whoosh scores (plain words have theirs in the BM25 matrices)."""
        if parsed.query is None or parsed.plain is not None:
            return contextlib.nullcontext()
        return self._global(parsed)

    def matching(self, parsed: ParsedQuery, allowed: Allowed | None = None) -> np.ndarray:
        found = [s.matching(parsed, self._among(allowed, i)) for i, s in enumerate(self.shards)]
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)

    def scores_for(self, parsed: ParsedQuery, chunk_ids: Iterable[int]) -> dict[int, float]:
        out: dict[int, float] = {}
        with self._syntax(parsed):
            for shard, ids in self.owners.split(chunk_ids).items():
                out.update(self.shards[shard].scores_for(parsed, ids))
        return out

    def explain(
        self, parsed: ParsedQuery, chunk_ids: Sequence[int], docs: Sequence[int]
    ) -> list[dict[str, Any]] | None:
        if parsed.plain is None:
            return None
        out: dict[int, dict[str, Any]] = {}
        doc_of = dict(zip(chunk_ids, docs, strict=True))
        for shard, ids in self.owners.split(chunk_ids).items():
            found = self.shards[shard].explain(parsed, ids, [doc_of[c] for c in ids]) or []
            out.update(zip(ids, found, strict=True))
        return [out[c] for c in chunk_ids]

    def close(self) -> None:
        for s in self.shards:
            s.close()


class ShardedVectors:
    """One vector side (sentences or documents) of every shard, asked together."""

    def __init__(self, shards: list[VectorIndex], owners: _Owners, dim: int) -> None:
        self.shards, self.owners, self.dim = shards, owners, dim

    def search(self, query: np.ndarray, k: int, exact: bool = False, allowed: np.ndarray | None = None) -> list[Hit]:
        lists = (
            s.search(query, k, exact, None if allowed is None else allowed[self.owners.mask(allowed, i)])
            for i, s in enumerate(self.shards)
        )
        return _merge(lists, k)

    def vectors(self, ids: list[int]) -> np.ndarray:
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        where = {c: i for i, c in enumerate(ids)}
        for shard, mine in self.owners.split(ids).items():
            out[[where[c] for c in mine]] = self.shards[shard].vectors(mine)
        return out

    def similarities(self, query: np.ndarray, ids: list[int]) -> dict[int, float]:
        out: dict[int, float] = {}
        for shard, mine in self.owners.split(ids).items():
            out.update(self.shards[shard].similarities(query, mine))
        return {int(i): out[int(i)] for i in ids if int(i) in out}

    def ids(self) -> np.ndarray:
        return np.concatenate([s.ids() for s in self.shards])

    @property
    def count(self) -> int:
        return sum(s.count for s in self.shards)


class ShardedIndex(Index):
    """Every shard of a sharded index folder, opened at the generations ``shards.json`` names."""

    def __init__(
        self,
        folder: Path,
        sharded: ShardsManifest,
        shards: list[Index],
        model: str | None = None,
        encoder_threads: int | None = None,
    ) -> None:
        self.folder = folder
        self.sharded = sharded
        self.shards = shards
        first = shards[0]
        langs = sorted({lang for s in shards for lang in s.langs})
        languages: dict[str, int] = {}
        for m in sharded.shards:
            for lang, n in m.languages.items():
                languages[lang] = languages.get(lang, 0) + n
        self.manifest: Manifest = first.manifest.replace(
            generation=f"shards-{sharded.generation:06d}",
            analyzer=Analyzer(tuple(langs), first.manifest.analyzer.lang_option, first.manifest.analyzer.pipeline),
            counts=Counts(sharded.documents, sharded.chunks, max(m.counts.skipped for m in sharded.shards)),
            languages=dict(sorted(languages.items())),
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
        stats = GlobalStats.load(folder / sharded.stats)
        for s in shards:
            if s.keyword.bm25 is not None:
                s.keyword.bm25.use_stats(stats.sentences, stats.documents)
        self.keyword = ShardedKeyword([s.keyword for s in shards], chunk_owners)  # type: ignore[assignment]
        self._chunk_owners = chunk_owners
        self.dim = first.dim
        self._vectors = None
        self._doc_vectors = None
        self._encoder = None
        self._encoder_threads = encoder_threads
        self._ref = None
        self._row = {int(cid): i for i, cid in enumerate(self.chunks.ids.tolist())}
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
    ) -> ShardedIndex:
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
                                  pin=pin, encoder_threads=encoder_threads)
                        )  # fmt: skip
                    except BaseException:
                        unpin(pin)
                        raise
                else:
                    return cls(folder, sharded, opened, model, encoder_threads)
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
        return ShardedIndex.open_sharded(self.folder, encoder=encoder, encoder_threads=self._encoder_threads)

    @property
    def model_loaded(self) -> bool:
        return self.shards[0].model_loaded

    def close(self) -> None:
        for s in self.shards:
            s.close()

    @property
    def encoder(self) -> Any:
        return self.shards[0].encoder

    @property
    def vectors(self) -> VectorIndex:
        if self._vectors is None:
            shards = [s.vectors for s in self.shards]
            self._vectors = ShardedVectors(shards, self._chunk_owners, self.dim)  # type: ignore[assignment]
        return self._vectors  # type: ignore[return-value]

    @property
    def doc_vectors(self) -> VectorIndex:
        if self._doc_vectors is None:
            shards = [s.doc_vectors for s in self.shards]
            self._doc_vectors = ShardedVectors(shards, self._doc_owners, self.dim)  # type: ignore[assignment]
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
) -> Index:
    """Open an index folder, sharded or not: what the CLI, the server and ``search eval`` open."""
    folder = Path(folder)
    if is_sharded(folder):
        return ShardedIndex.open_sharded(folder, model=model, encoder=encoder, encoder_threads=encoder_threads)
    return Index.open(folder, model=model, encoder=encoder, encoder_threads=encoder_threads)
