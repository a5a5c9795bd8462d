"""``search info --check``: do the keyword index, the vectors, the chunk table and the manifest agree?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import SearchError
from .index import Index
from .store import generations


@dataclass(frozen=True)
class Check:
    """One verified property: its name, whether it holds, and the detail that proves or refutes it."""

    name: str
    ok: bool
    detail: str


def check_index(folder: str | Path) -> list[Check]:
    """Every consistency check of the committed generation; an unreadable index is one failed check."""
    folder = Path(folder)
    try:
        ix = Index.open(folder)
    except SearchError as exc:
        return [Check("index opens", False, str(exc))]
    with ix:
        return _checks(ix)


def _checks(ix: Index) -> list[Check]:
    out: list[Check] = [Check("index opens", True, f"generation {ix.manifest['generation']}")]
    counts = ix.manifest["counts"]
    table = ix.chunks
    chunk_ids = table[:, 0]
    unique_chunks = np.unique(chunk_ids)

    def add(name: str, ok: bool, detail: str) -> None:
        out.append(Check(name, bool(ok), detail))

    def same_ids(name: str, ids: list[int]) -> None:
        """One side holds every chunk id exactly once, and nothing else."""
        got = set(ids)
        add(name, got == expected and len(ids) == len(got), _diff(expected, got, len(ids)))

    add("chunk ids unique", len(unique_chunks) == len(chunk_ids), f"{len(chunk_ids)} rows, {len(unique_chunks)} ids")
    add(
        "manifest counts",
        counts["documents"] == len(ix.documents) and counts["chunks"] == len(chunk_ids),
        f"manifest {counts['documents']} documents / {counts['chunks']} chunks; "
        f"stored {len(ix.documents)} / {len(chunk_ids)}",
    )
    ids = [d.id for d in ix.documents]
    add("document ids unique", len(set(ids)) == len(ids), f"{len(ids)} documents, {len(set(ids))} ids")
    nums = set(ix.docs_by_num)
    orphans = {int(n) for n in np.unique(table[:, 1])} - nums
    add("every chunk has its document", not orphans, f"{len(orphans)} chunks point to missing documents")
    bad_spans = 0
    for _cid, num, start, end, _pos in table.tolist():
        doc = ix.docs_by_num.get(num)
        if doc is None or not 0 <= start < end <= len(doc.text):
            bad_spans += 1
    add("chunk offsets inside their text", bad_spans == 0, f"{bad_spans} bad spans")
    next_id = int(ix.manifest.get("next_chunk_id", 0))
    add(
        "next chunk id is fresh",
        len(chunk_ids) == 0 or int(chunk_ids.max()) < next_id,
        f"next {next_id}, max {int(chunk_ids.max()) if len(chunk_ids) else None}",
    )

    expected = set(unique_chunks.tolist())
    try:
        vec_ids = ix.vectors.ids()
        same_ids("vector ids = chunk ids", vec_ids.tolist())
        if ix.vectors.ann is not None:
            import faiss

            ann_ids = faiss.vector_to_array(ix.vectors.ann.id_map).tolist()  # type: ignore[attr-defined]
            same_ids("HNSW graph ids = chunk ids", ann_ids)
        if len(vec_ids):
            sample = vec_ids[:: max(1, len(vec_ids) // 200)]
            norms = np.linalg.norm(np.vstack([ix.vectors.index.reconstruct(int(i)) for i in sample]), axis=1)
            add("vectors normalised", bool(np.allclose(norms, 1.0, atol=1e-3)), f"{len(sample)} sampled")
    except SearchError as exc:
        add("vector index readable", False, str(exc))
    try:
        doc_ids = ix.doc_vectors.ids().tolist()
        add(
            "document vector ids = document nums",
            set(doc_ids) == nums and len(doc_ids) == len(nums),
            _diff(nums, set(doc_ids), len(doc_ids), "documents"),
        )
    except SearchError as exc:
        add("document vectors readable", False, str(exc))

    if ix.keyword.bm25 is not None:
        same_ids("BM25 rows = chunk ids", ix.keyword.bm25.sent.m.row_ids.tolist())
    stored = ix.keyword.stored()
    same_ids("keyword ids = chunk ids", [c for c, _ in stored])
    doc_of = {int(r[0]): ix.docs_by_num[int(r[1])].id for r in table if int(r[1]) in ix.docs_by_num}
    wrong_doc = sum(1 for c, d in stored if c in doc_of and doc_of[c] != d)
    add("keyword chunks name their document", wrong_doc == 0, f"{wrong_doc} disagree")
    langs = {d.lang for d in ix.documents}
    add(
        "languages",
        langs <= set(ix.langs)
        and ix.manifest["languages"] == {lg: sum(d.lang == lg for d in ix.documents) for lg in sorted(langs)},
        f"documents in {sorted(langs)}, analyzers for {ix.langs}",
    )
    others = [g.name for g in generations(ix.folder) if g.name != ix.manifest["generation"]]
    out.append(
        Check(
            "old generations",
            True,
            f"{len(others)} left ({', '.join(others) or 'none'}); `search compact` removes unused ones",
        )
    )
    return out


def _diff(expected: set[int], got: set[int], n: int, what: str = "chunk ids") -> str:
    missing, extra = len(expected - got), len(got - expected)
    return f"{n} entries; {missing} {what} missing, {extra} unknown"
