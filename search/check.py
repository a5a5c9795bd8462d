"""``search info --check``: do the keyword index, the vectors, the chunk table and the manifest agree?

The checks of the documents and the chunk table are here; each component of a generation
(search/components.py) checks its own files against the chunk ids.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .components import COMPONENTS
from .errors import SearchError
from .index import Index
from .sharded import ShardedIndex, open_index
from .shards import GlobalStats, shard_name, shard_of
from .store import generations
from .types import Check

__all__ = ["Check", "check_index"]


def check_index(folder: str | Path) -> list[Check]:
    """Every consistency check of the committed generation; an unreadable index is one failed check."""
    folder = Path(folder)
    try:
        ix = open_index(folder)
    except SearchError as exc:
        return [Check("index opens", False, str(exc))]
    with ix:
        out = [Check("index opens", True, f"generation {ix.manifest.generation}"), *_table_checks(ix)]
        if isinstance(ix, ShardedIndex):
            return [*out, *_shard_checks(ix), _languages(ix)]
        return [*out, *_component_checks(ix), _languages(ix), _old_generations(ix)]


def _component_checks(ix: Index, prefix: str = "") -> list[Check]:
    out = []
    expected = set(np.unique(ix.chunks.ids).tolist())
    for component in COMPONENTS:
        try:
            out += [replace(c, name=prefix + c.name) for c in component.check(ix, expected)]
        except SearchError as exc:
            out.append(Check(f"{prefix}{component.name} readable", False, str(exc)))
    return out


def _shard_checks(ix: ShardedIndex) -> list[Check]:
    """Each shard's own checks, its documents in the shard their id hashes to, and the global
    statistics equal to the sum of the shards'."""
    out = []
    n = len(ix.shards)
    for i, shard in enumerate(ix.shards):
        prefix = f"{shard_name(i)}: "
        misplaced = sum(shard_of(d.id, n) != i for d in shard.documents)
        out.append(
            Check(
                f"{prefix}documents in their shard",
                misplaced == 0,
                f"{misplaced} of {len(shard.documents)} hashed elsewhere",
            )
        )
        out += _component_checks(shard, prefix)
    stored = GlobalStats.load(ix.folder / ix.sharded.stats)
    summed = GlobalStats.of_generations([s.generation for s in ix.shards])
    same = all(
        a.rows == b.rows and a.length == b.length and np.array_equal(a.terms, b.terms) and np.array_equal(a.df, b.df)
        for a, b in ((stored.sentences, summed.sentences), (stored.documents, summed.documents))
    )
    detail = (
        f"{stored.sentences.rows} sentences, {stored.documents.rows} documents, {len(stored.sentences.terms)} terms"
    )
    return [*out, Check("global BM25 statistics = the shards' sum", same, detail)]


def _table_checks(ix: Index) -> list[Check]:
    counts = ix.manifest.counts
    ids = ix.chunks.ids
    unique = np.unique(ids)
    doc_ids = [d.id for d in ix.documents]
    orphans = set(np.unique(ix.chunks.docs).tolist()) - set(ix.docs_by_num)
    bad_spans = 0
    for c in ix.chunks.records():
        doc = ix.docs_by_num.get(c.doc)
        bad_spans += doc is None or not 0 <= c.start < c.end <= len(doc.text)
    next_id = ix.manifest.next_chunk_id
    top = int(ids.max()) if len(ids) else None
    return [
        Check("chunk ids unique", len(unique) == len(ids), f"{len(ids)} rows, {len(unique)} ids"),
        Check(
            "manifest counts",
            counts.documents == len(ix.documents) and counts.chunks == len(ids),
            f"manifest {counts.documents} documents / {counts.chunks} chunks; stored {len(ix.documents)} / {len(ids)}",
        ),
        Check(
            "document ids unique",
            len(set(doc_ids)) == len(doc_ids),
            f"{len(doc_ids)} documents, {len(set(doc_ids))} ids",
        ),
        Check("every chunk has its document", not orphans, f"{len(orphans)} chunks point to missing documents"),
        Check("chunk offsets inside their text", bad_spans == 0, f"{bad_spans} bad spans"),
        Check("next chunk id is fresh", top is None or top < next_id, f"next {next_id}, max {top}"),
    ]


def _languages(ix: Index) -> Check:
    langs = {d.lang for d in ix.documents}
    counted = {lg: sum(d.lang == lg for d in ix.documents) for lg in sorted(langs)}
    ok = langs <= set(ix.langs) and ix.manifest.languages == counted
    return Check("languages", ok, f"documents in {sorted(langs)}, analyzers for {ix.langs}")


def _old_generations(ix: Index) -> Check:
    others = [g.name for g in generations(ix.folder) if g.name != ix.manifest.generation]
    return Check(
        "old generations",
        True,
        f"{len(others)} left ({', '.join(others) or 'none'}); `search compact` removes unused ones",
    )
