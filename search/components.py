"""The parts of an index generation, each behind one small interface (txtai's ``ann/base.py`` is the model).

A :class:`Component` owns some files of a generation and knows how to ``build`` them from
nothing, ``update`` them from the previous generation (what was dropped, what was added), and
``check`` them against the chunk table. The writer (:mod:`search.writer`) commits a generation by
looping over :data:`COMPONENTS`; ``search info --check`` (:mod:`search.check`) asks each one.
A new kind of index file is a new class here and one entry in :data:`COMPONENTS`.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .analysis import analyze_with_parts
from .bm25 import row_documents
from .chunking import DOC_TOKENS
from .encoder import Encoder, openings
from .keyword import KeywordIndex
from .store import BM25_DOCS_FILE, BM25_FILE, BM25_TITLES_FILE, DOC_VECTORS, VECTORS, ChunkTable, StoredDoc
from .termmatrix import TermMatrix, title_matrix
from .types import Check, Document
from .vectors import HNSW_FILE, HNSW_MIN, VectorIndex, hnsw_min

MAIN_LANE = "vectors"  # the lane the writer's own thread runs (the others run beside it)
DOC_EMBED_CHARS = 8_000  # far more than DOC_TOKENS tokens; more characters would only be tokenised to be cut


class Progress(Protocol):
    """Where long work reports how far it is (the CLI passes a rich progress bar)."""

    def start(self, task: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


class EncoderSource(Protocol):
    """The write's model: loaded on first use, so a write that embeds nothing never loads it."""

    @property
    def dim(self) -> int: ...

    def get(self) -> Encoder: ...

    def sentences_done(self) -> None: ...


@dataclass
class Change:
    """What one write does: the generation it starts from, the one it writes, what goes and what comes."""

    previous: Path | None  # the committed generation's folder (None: a first build)
    target: Path  # the new generation's folder
    langs: list[str]
    docs: list[StoredDoc]  # every document of the new generation
    chunks: ChunkTable  # every chunk of the new generation
    dropped_docs: list[StoredDoc]
    dropped_ids: np.ndarray  # chunk ids
    added_docs: list[StoredDoc]
    added_chunks: ChunkTable
    encoder: EncoderSource
    progress: Progress
    made: dict[str, Any] = field(default_factory=dict)  # what a component hands a later one
    cancelled: threading.Event = field(default_factory=threading.Event)  # another lane failed: stop soon
    # vectors embedded before the write (a sharded build embeds every shard's texts in one global plan):
    # component name -> (ids of the added chunks or documents, in `added` order; their vectors)
    given: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def check(self) -> None:
        """Raise :class:`Cancelled` once another lane of the write has failed (or was interrupted)."""
        if self.cancelled.is_set():
            raise Cancelled

    def advance(self, n: int) -> None:
        """Progress of a long stage, which stops there if the write is cancelled."""
        self.check()
        self.progress.advance(n)

    def added_texts(self) -> Iterator[tuple[Document, int, int, int]]:
        """(document, start, end, position) of every added chunk; stops if the write is cancelled."""
        by_num = {s.num: s.doc for s in self.added_docs}
        for i, (num, start, end, pos) in enumerate(self.added_chunks.rows[:, 1:].tolist()):
            if i % 1000 == 0:
                self.check()
            yield by_num[num], start, end, pos


class Cancelled(Exception):
    """A lane stops because another lane of the same write failed."""


class OpenIndex(Protocol):
    """What a component's check reads of an opened index."""

    generation: Path  # its folder
    chunks: ChunkTable
    docs_by_num: dict[int, Document]
    keyword: KeywordIndex

    @property
    def vectors(self) -> VectorIndex: ...

    @property
    def doc_vectors(self) -> VectorIndex: ...


class Component(ABC):
    """One part of a generation: its files, how to build and update them, and how to check them."""

    name: str  # also the writer's crash point right after it (SEARCH_CRASH_AT, for the fault tests)
    stage: str  # the timing it counts in (BuildReport.seconds)
    files: tuple[str, ...]
    lane: str = MAIN_LANE  # components of one lane run in order; the writer runs the lanes at once

    def write(self, change: Change) -> None:
        if change.previous is None:
            self.build(change)
        else:
            self.update(change.previous, change)

    @abstractmethod
    def build(self, change: Change) -> None:
        """Write this component's files into ``change.target`` from the added documents alone."""

    @abstractmethod
    def update(self, previous: Path, change: Change) -> None:
        """Write them from ``previous``'s files, without ``change.dropped_*`` and with ``change.added_*``."""

    @abstractmethod
    def check(self, ix: OpenIndex, expected: set[int]) -> list[Check]:
        """This component's consistency checks; ``expected`` is the set of chunk ids."""


def same_ids(name: str, ids: list[int], expected: set[int], what: str = "chunk ids") -> Check:
    """One side holds every expected id exactly once, and nothing else."""
    got = set(ids)
    missing, extra = len(expected - got), len(got - expected)
    ok = got == expected and len(ids) == len(got)
    return Check(name, ok, f"{len(ids)} entries; {missing} {what} missing, {extra} unknown")


def index_terms(text: str, lang: str) -> list[str]:
    """A text's BM25 keys: its words (``lang:term``), then its compounds' parts (``de+:term``; German only)."""
    words, parts = analyze_with_parts(text, lang)
    return [f"{lang}:{t}" for t in words] + [f"{lang}+:{t}" for t in parts]


class BM25Component(Component):
    """Term frequencies per sentence and per document (title included), that plain words and query
    syntax are scored on (search/termmatrix.py, search/bm25.py, search/syntax.py)."""

    name = "bm25"
    stage = lane = "keyword"
    files = (BM25_FILE, BM25_DOCS_FILE, BM25_TITLES_FILE)

    def build(self, change: Change) -> None:
        self._write(TermMatrix.empty(), change)

    def update(self, previous: Path, change: Change) -> None:
        self._write(TermMatrix.load(previous / BM25_FILE), change)

    def _write(self, matrix: TermMatrix, change: Change) -> None:
        change.progress.start("indexing keywords", len(change.added_chunks))
        terms = []
        for doc, start, end, _ in change.added_texts():
            terms.append(index_terms(doc.text[start:end], doc.lang))
            if len(terms) % 1000 == 0:
                change.advance(1000)
        change.advance(len(terms) % 1000)
        matrix = matrix.update(change.dropped_ids, change.added_chunks.ids.tolist(), terms)
        matrix.save(change.target / BM25_FILE)
        titles = [(s.num, index_terms(s.doc.title, s.doc.lang)) for s in change.docs if s.doc.title]
        matrix.by_group(row_documents(change.chunks, matrix.row_ids), titles).save(change.target / BM25_DOCS_FILE)
        title_matrix(sorted(titles)).save(change.target / BM25_TITLES_FILE)

    def check(self, ix: OpenIndex, expected: set[int]) -> list[Check]:
        bm25 = ix.keyword.bm25
        docs = set(bm25.docs.m.row_ids.tolist())
        unknown = docs - set(ix.docs_by_num)
        titles = ix.generation / BM25_TITLES_FILE  # format 7 had none: its titles are analysed when asked for
        titled = set(TermMatrix.load(titles).row_ids.tolist()) if titles.exists() else set()
        stray = titled - {n for n, d in ix.docs_by_num.items() if d.title}
        return [
            same_ids("BM25 rows = chunk ids", bm25.sent.m.row_ids.tolist(), expected),
            Check("BM25 document rows name documents", not unknown, f"{len(docs)} rows, {len(unknown)} unknown"),
            Check("BM25 title rows name titled documents", not stray, f"{len(titled)} rows, {len(stray)} not titled"),
        ]


class _Embedded(Component):
    """A vector index whose ids are dropped and whose new texts are embedded on each write."""

    task: str  # what the progress bar says

    def build(self, change: Change) -> None:
        self._write(VectorIndex(change.encoder.dim), change)

    def update(self, previous: Path, change: Change) -> None:
        vectors = VectorIndex.load(previous / self.files[0], change.encoder.dim)
        vectors.remove(self.dropped(change))
        self._write(vectors, change)

    def _write(self, vectors: VectorIndex, change: Change) -> None:
        given = change.given.get(self.name)
        if given is not None:
            if len(given[0]):
                vectors.add(given[1], given[0])
            vectors.save(change.target / self.files[0])
            change.made[self.name] = vectors
            return
        texts, ids = self.added(change)
        if texts:
            change.progress.start(self.task, len(texts))
            vectors.add(change.encoder.get().encode_passages(texts, change.advance), ids)
            self.embedded(change)
        vectors.save(change.target / self.files[0])
        change.made[self.name] = vectors

    @abstractmethod
    def dropped(self, change: Change) -> np.ndarray:
        """The ids to remove."""

    @abstractmethod
    def added(self, change: Change) -> tuple[list[str], np.ndarray]:
        """The texts to embed and their ids."""

    def embedded(self, change: Change) -> None:
        """Called after the new texts were embedded."""


class SentenceVectors(_Embedded):
    """The exact vector index over every chunk (faiss, ids = chunk ids): the source of truth for cosines."""

    name, stage, files, task = "vectors", "embedding", (VECTORS,), "embedding sentences"

    def dropped(self, change: Change) -> np.ndarray:
        return change.dropped_ids

    def added(self, change: Change) -> tuple[list[str], np.ndarray]:
        return [doc.text[start:end] for doc, start, end, _ in change.added_texts()], change.added_chunks.ids

    def embedded(self, change: Change) -> None:
        change.encoder.sentences_done()

    def check(self, ix: OpenIndex, expected: set[int]) -> list[Check]:
        ids = ix.vectors.ids()
        out = [same_ids("vector ids = chunk ids", ids.tolist(), expected)]
        if len(ids):
            norms = ix.vectors.sample_norms(200)
            out.append(Check("vectors normalised", bool(np.allclose(norms, 1.0, atol=1e-3)), f"{len(norms)} sampled"))
        return out


class HNSWGraph(Component):
    """The HNSW graph for top-k search from ``HNSW_MIN`` sentences on, rebuilt per generation (it cannot forget)."""

    name = "hnsw"
    stage = "embedding"
    files = (HNSW_FILE,)

    def build(self, change: Change) -> None:
        vectors = change.made.get("vectors") or VectorIndex.load(change.target / VECTORS, change.encoder.dim)
        if vectors.count >= hnsw_min(HNSW_MIN):
            change.progress.start("building the HNSW graph", 0)
            vectors.build_ann()
            vectors.save_ann(change.target / VECTORS)

    def update(self, previous: Path, change: Change) -> None:
        self.build(change)

    def check(self, ix: OpenIndex, expected: set[int]) -> list[Check]:
        ids = ix.vectors.ann_ids()
        return [] if ids is None else [same_ids("HNSW graph ids = chunk ids", ids.tolist(), expected)]


def document_text(doc: Document) -> str:
    """What a document's own vector embeds: its title and the opening of its text (the encoder then
    cuts it at DOC_TOKENS tokens)."""
    text = f"{doc.title}\n{doc.text}" if doc.title else doc.text
    return text[:DOC_EMBED_CHARS]


class DocumentVectors(_Embedded):
    """One vector per document (title and opening text), ids = document nums."""

    name, stage, files, task = "docvectors", "documents", (DOC_VECTORS,), "embedding documents"

    def dropped(self, change: Change) -> np.ndarray:
        return np.array([s.num for s in change.dropped_docs], dtype=np.int64)

    def added(self, change: Change) -> tuple[list[str], np.ndarray]:
        texts = [document_text(s.doc) for s in change.added_docs]
        if texts:  # cut where the model stops reading, so the embedding cache keys what was embedded
            texts = openings(change.encoder.get(), texts, DOC_TOKENS)
        return texts, np.array([s.num for s in change.added_docs], dtype=np.int64)

    def check(self, ix: OpenIndex, expected: set[int]) -> list[Check]:
        nums = set(ix.docs_by_num)
        ids = ix.doc_vectors.ids().tolist()
        return [same_ids("document vector ids = document nums", ids, nums, "documents")]


COMPONENTS: tuple[Component, ...] = (
    BM25Component(),
    SentenceVectors(),
    HNSWGraph(),
    DocumentVectors(),
)
