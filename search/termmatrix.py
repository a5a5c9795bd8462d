"""Term frequencies per row, column by column: what BM25 (search/bm25.py) scores.

The sentence matrix has one row per chunk; the document matrix (:meth:`TermMatrix.by_group`) one per
document, its sentences' rows summed and its title's terms added. The parts of German compounds are
columns of their own (``de+:term``, search/compounds.py) that do not count in a row's length. The matrix
is stored per generation in ``bm25.npz`` (no pickle) and updated with the index: rows of removed chunks
are dropped, rows of new chunks appended, and words no row holds any more dropped from the vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import IndexFormatError, rebuild_hint


def is_part(key: str) -> bool:
    """Is ``key`` (``lang:term``) a compound part's column (``de+:schiff``)?"""
    return key.partition(":")[0].endswith("+")


@dataclass(frozen=True)
class TermMatrix:
    """Term frequencies, column by column: ``rows[indptr[t]:indptr[t+1]]`` are the rows holding term t,
    ascending (``update`` and ``by_group`` keep that order; ``BM25.term_scores`` relies on it)."""

    terms: np.ndarray  # str, one per column
    indptr: np.ndarray  # int64, columns + 1
    rows: np.ndarray  # int32, row of each entry
    tf: np.ndarray  # float32, frequency of each entry
    doclen: np.ndarray  # float32, analysed terms per row
    row_ids: np.ndarray  # int64, chunk id of each row, ascending

    @classmethod
    def empty(cls) -> TermMatrix:
        return cls(
            np.zeros(0, dtype="<U1"),
            np.zeros(1, dtype=np.int64),
            np.zeros(0, dtype=np.int32),
            np.zeros(0, dtype=np.float32),
            np.zeros(0, dtype=np.float32),
            np.zeros(0, dtype=np.int64),
        )

    def _columns(self) -> np.ndarray:
        return np.repeat(np.arange(len(self.terms), dtype=np.int64), np.diff(self.indptr))

    def update(self, drop_ids: np.ndarray, new_ids: Sequence[int], new_terms: Sequence[Sequence[str]]) -> TermMatrix:
        """A new matrix without the rows of ``drop_ids`` and with rows for the new chunks appended."""
        keep = ~np.isin(self.row_ids, drop_ids)
        remap = np.cumsum(keep) - 1
        cols = self._columns()
        alive = keep[self.rows]
        cols, rows, tf = cols[alive], remap[self.rows[alive]], self.tf[alive]
        row_ids, doclen = self.row_ids[keep], self.doclen[keep]

        vocab = {str(t): i for i, t in enumerate(self.terms.tolist())}
        lens = [len(chunk_terms) for chunk_terms in new_terms]
        new_cols = np.fromiter(  # each new term's column; a word not seen yet gets the next one
            (vocab.setdefault(t, len(vocab)) for chunk_terms in new_terms for t in chunk_terms), np.int64, sum(lens)
        )
        terms = list(vocab)  # the old columns' terms, then the new ones in the order they came
        new_rows = np.repeat(np.arange(len(row_ids), len(row_ids) + len(lens), dtype=np.int64), lens)
        pairs, add_tf = np.unique(new_rows * len(terms) + new_cols, return_counts=True)  # (row, column) → frequency
        add_rows, add_cols = np.divmod(pairs, max(len(terms), 1))
        parts = np.zeros(len(terms), dtype=bool)
        seen = np.unique(new_cols)
        parts[seen] = [is_part(terms[c]) for c in seen.tolist()]
        lengths = np.bincount(new_rows - len(row_ids), weights=~parts[new_cols], minlength=len(lens))
        cols = np.concatenate([cols, add_cols])
        rows = np.concatenate([rows, add_rows])
        tf = np.concatenate([tf, add_tf.astype(np.float32)])
        per_column = np.bincount(cols, minlength=len(terms))
        if not per_column.all():
            # words no row holds any more leave the vocabulary (prefixes and fuzzy terms expand over it)
            held = per_column > 0
            cols = (np.cumsum(held) - 1)[cols]
            terms = [t for t, h in zip(terms, held.tolist(), strict=True) if h]
            per_column = per_column[held]
        order = np.argsort(cols, kind="stable")
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(per_column, out=indptr[1:])
        return TermMatrix(
            np.asarray(terms, dtype=str) if terms else np.zeros(0, dtype="<U1"),
            indptr,
            rows[order].astype(np.int32),
            tf[order],
            np.concatenate([doclen, lengths.astype(np.float32)]),
            np.concatenate([row_ids, np.asarray(new_ids, dtype=np.int64)]),
        )

    def by_group(self, groups: np.ndarray, extra: Sequence[tuple[int, Sequence[str]]] = ()) -> TermMatrix:
        """The matrix of whole documents: rows summed by ``groups`` (each row's document number),
        plus the terms of ``extra`` (document number, terms: a title) counted in their document."""
        if extra:
            nums = [num for num, _ in extra]
            fake = np.arange(-1, -1 - len(extra), -1, dtype=np.int64)  # rows that never leave this method
            with_extra = self.update(np.zeros(0, dtype=np.int64), fake.tolist(), [terms for _, terms in extra])
            return with_extra.by_group(np.concatenate([np.asarray(groups, dtype=np.int64), np.asarray(nums)]))
        if len(self.row_ids) == 0:
            return TermMatrix.empty()
        cols = self._columns()
        docs, drow = np.unique(groups, return_inverse=True)
        key = cols * len(docs) + drow[self.rows]
        ukey, inverse = np.unique(key, return_inverse=True)
        tf = np.bincount(inverse, weights=self.tf).astype(np.float32)
        ucol = ukey // len(docs)
        indptr = np.zeros(len(self.terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(ucol, minlength=len(self.terms)), out=indptr[1:])
        doclen = np.bincount(drow, weights=self.doclen, minlength=len(docs)).astype(np.float32)
        return TermMatrix(self.terms, indptr, (ukey % len(docs)).astype(np.int32), tf, doclen, docs.astype(np.int64))

    def save(self, path: Path) -> None:
        with path.open("wb") as f:
            np.savez(
                f, terms=self.terms, indptr=self.indptr, rows=self.rows, tf=self.tf, doclen=self.doclen,
                row_ids=self.row_ids,
            )  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> TermMatrix:
        try:
            with np.load(path, allow_pickle=False) as z:
                return cls(z["terms"], z["indptr"], z["rows"], z["tf"], z["doclen"], z["row_ids"])
        except MemoryError:
            raise
        except Exception as exc:  # a damaged .npz: BadZipFile, EOFError, zlib.error, ValueError, ...
            raise IndexFormatError(
                f"cannot read {path} ({type(exc).__name__}: {exc}); {rebuild_hint(path.parent.parent)}"
            ) from None


def title_matrix(titles: Sequence[tuple[int, Sequence[str]]]) -> TermMatrix:
    """The words of each title (document num, its BM25 keys; nums ascending), compound parts left out."""
    words = [[t for t in terms if not is_part(t)] for _, terms in titles]
    return TermMatrix.empty().update(np.zeros(0, dtype=np.int64), [num for num, _ in titles], words)
