"""``search info --check``: do the keyword index, the vectors, the chunk table and the manifest agree?

The checks of the documents and the chunk table are here; each component of a generation
(search/components.py) checks its own files against the chunk ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .components import COMPONENTS
from .errors import SearchError
from .index import Index
from .store import generations
from .types import Check

__all__ = ["Check", "check_index"]


def check_index(folder: str | Path) -> list[Check]:
    """Every consistency check of the committed generation; an unreadable index is one failed check."""
    folder = Path(folder)
    try:
        ix = Index.open(folder)
    except SearchError as exc:
        return [Check("index opens", False, str(exc))]
    with ix:
        out = [Check("index opens", True, f"generation {ix.manifest.generation}"), *_table_checks(ix)]
        expected = set(np.unique(ix.chunks.ids).tolist())
        for component in COMPONENTS:
            try:
                out += component.check(ix, expected)
            except SearchError as exc:
                out.append(Check(f"{component.name} readable", False, str(exc)))
        return [*out, _languages(ix), _old_generations(ix)]


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
