"""Building an index folder from a corpus, and opening one to search.

This is the library API the CLI wraps::

    from search import Index, build_index
    build_index("corpus/", "indexes/default")
    with Index.open("indexes/default") as ix:
        for r in ix.search("Wer will Truppen schicken?", mode="hybrid", k=5):
            print(r.rank, r.doc, r.passage)
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from .candidates import Candidates, gather
from .chunking import Span
from .components import COMPONENTS
from .encoder import Encoder, make_encoder, ref_fingerprint, resolve_model
from .errors import IndexFormatError, ModelMismatchError, rebuild_hint
from .filters import Allowed, Filters, known_fields
from .keyword import KeywordIndex
from .locks import pin_generation, unpin
from .manifest import Manifest
from .params import SearchParams
from .parsing import ParsedQuery
from .searcher import Page, Searcher
from .store import (
    BM25_DOCS_FILE,
    BM25_FILE,
    BM25_TITLES_FILE,
    CHUNKS,
    DOC_VECTORS,
    DOCS,
    MANIFEST,
    SHARDS,
    VECTORS,
    ChunkTable,
    load_chunks,
    load_documents,
    read_manifest,
)
from .types import Chunk, Document, Result
from .vectors import VectorIndex
from .writer import DEFAULT_INDEX, DEFAULT_WINDOW, BuildReport, Progress, build_index, folder_bytes

__all__ = ["DEFAULT_INDEX", "DEFAULT_WINDOW", "BuildReport", "Index", "Progress", "build_index"]
OPEN_ATTEMPTS = 20
ALLOWED_CACHE = 16  # filters whose chunk ids an open index keeps


class Index:
    """An opened index folder. The embedding model loads on the first semantic query."""

    def __init__(
        self,
        folder: Path,
        manifest: Manifest,
        model: str | None = None,
        encoder: Encoder | None = None,
        pin: int | None = None,
        encoder_threads: int | None = None,
        keyword: bool = True,
    ) -> None:
        """``keyword=False`` leaves the keyword side closed: a shard whose searching is done
        elsewhere (search/serve_ray.py) and of which only the chunks and documents are read here."""
        self.folder = folder
        self.manifest = manifest
        self.generation = folder / manifest.generation
        self._pin = pin
        stored = load_documents(self.generation / DOCS)
        self.documents: list[Document] = [s.doc for s in stored]
        self.docs_by_num: dict[int, Document] = {s.num: s.doc for s in stored}
        self.chunks = load_chunks(self.generation / CHUNKS)
        self.langs: list[str] = list(manifest.analyzer.languages)
        self.keyword: KeywordIndex = None  # type: ignore[assignment]  # keyword=False: never searched here
        if keyword:
            self.keyword = KeywordIndex.open(
                self.langs,
                (self.generation / BM25_FILE, self.generation / BM25_DOCS_FILE, self.generation / BM25_TITLES_FILE),
                self.chunks,
                self.docs_by_num,
                manifest.scoring,
            )
        self.dim = manifest.model.dim
        self._vectors: VectorIndex | None = None
        self._doc_vectors: VectorIndex | None = None
        self._encoder = encoder
        self._encoder_threads = encoder_threads
        self._ref = resolve_model(model) if model is not None and encoder is None else None
        self._row = {int(cid): i for i, cid in enumerate(self.chunks.ids.tolist())}
        self._row_docs: list[int] | None = None
        if encoder is not None:
            self._check_model(encoder.name, encoder.fingerprint)
        elif self._ref is not None:  # fail before loading a model that cannot serve this index
            self._check_model(self._ref.name, ref_fingerprint(self._ref))
        # the sentences of each document, in order, for passage windows
        self._doc_rows: dict[int, list[Span]] = {}
        self._num_by_id: dict[str, int] | None = None
        self._allowed: dict[Filters, Allowed] = {}  # the last few filters' chunk ids
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        folder: str | Path = DEFAULT_INDEX,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        encoder_threads: int | None = None,
    ) -> Index:
        """Open the current generation of ``folder``. ``model`` must match the index's (checked
        before loading it); ``encoder`` is an already loaded one; ``encoder_threads`` the threads
        each query embedding may use (default every core; a server wants 1)."""
        folder = Path(folder)
        if (folder / SHARDS).exists():
            raise IndexFormatError(f"{folder} is a sharded index: open it with search.open_index({str(folder)!r})")
        for _ in range(OPEN_ATTEMPTS):  # a writer may commit and delete the generation we just read of
            manifest = read_manifest(folder)
            pin = pin_generation(folder / manifest.generation)
            if pin is None:
                continue
            try:
                return cls(folder, manifest, model=model, encoder=encoder, pin=pin, encoder_threads=encoder_threads)
            except BaseException:
                unpin(pin)
                raise
        raise IndexFormatError(f"{folder}: the generation named in {MANIFEST} is missing; {rebuild_hint(folder)}")

    def is_current(self) -> bool:
        """False once a writer has committed a newer generation (reopen to see it)."""
        try:
            return read_manifest(self.folder).generation == self.manifest.generation
        except Exception:
            return True  # a damaged manifest: keep serving what is open

    def reopen(self) -> Index:
        """The folder's current generation as a new Index, sharing this one's loaded model when the
        new generation was built with it (a server picks up `search index` without reloading it)."""
        encoder = self._encoder
        if encoder is not None:
            try:
                return Index.open(self.folder, encoder=encoder, encoder_threads=self._encoder_threads)
            except ModelMismatchError:
                pass  # rebuilt with another model: that model loads on the first semantic query
        return Index.open(self.folder, encoder_threads=self._encoder_threads)

    @property
    def model_loaded(self) -> bool:
        return self._encoder is not None

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.keyword is not None:
            self.keyword.close()
        unpin(self._pin)
        self._pin = None

    def _check_model(self, name: str, fp: str) -> None:
        built = self.manifest.model
        if fp != built.fingerprint and name == built.name:
            raise ModelMismatchError(
                f"index {self.folder} was built with another version of {name!r} (fingerprint "
                f"{built.fingerprint}, now {fp}); {rebuild_hint(self.folder)}"
            )
        if fp != built.fingerprint:
            raise ModelMismatchError(
                f"index {self.folder} was built with model {built.name!r} (fingerprint {built.fingerprint}), "
                f"not {name!r} ({fp}); query without --model, "
                f"or rebuild it with `search index CORPUS --model {name} --rebuild`"
            )

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            ref = self._ref or resolve_model(self.manifest.model.name)
            self._check_model(ref.name, ref_fingerprint(ref))
            self._encoder = make_encoder(ref, threads=self._encoder_threads)
        return self._encoder

    @property
    def vectors(self) -> VectorIndex:
        if self._vectors is None:
            self._vectors = VectorIndex.load(self.generation / VECTORS, self.dim)
        return self._vectors

    @property
    def doc_vectors(self) -> VectorIndex:
        """One vector per document (title and opening text), ids = document nums."""
        if self._doc_vectors is None:
            self._doc_vectors = VectorIndex.load(self.generation / DOC_VECTORS, self.dim)
        return self._doc_vectors

    # -- chunk lookups -------------------------------------------------------------------
    def chunk(self, chunk_id: int) -> Chunk:
        return self.chunks.record(self._row[chunk_id])

    def doc_nums(self, chunk_ids: Iterable[int]) -> list[int]:
        """Each chunk's document num, without building its :class:`Chunk` (a hybrid query asks for
        hundreds)."""
        if self._row_docs is None:
            self._row_docs = self.chunks.docs.tolist()
        row, docs = self._row, self._row_docs
        return [docs[row[c]] for c in chunk_ids]

    def document(self, num: int) -> Document:
        return self.docs_by_num[num]

    def document_num(self, doc_id: str) -> int | None:
        """The num of the document with id ``doc_id``, or None."""
        if self._num_by_id is None:
            self._num_by_id = {d.id: num for num, d in self.docs_by_num.items()}
        return self._num_by_id.get(doc_id)

    def allowed(self, filters: Filters) -> Allowed | None:
        """The chunks and documents ``filters`` lets through (None: no filter); a ``where`` field no
        document has is refused. Cached per filter: the index does not change under it."""
        if not filters.active:
            return None
        with self._lock:
            hit = self._allowed.get(filters)
        if hit is not None:
            return hit
        filters.check_fields(known_fields(self.documents))
        nums = [n for n, d in self.docs_by_num.items() if filters.accepts(d)]
        chunks = np.sort(self.chunks.ids[np.isin(self.chunks.docs, nums)])
        docs = frozenset(self.docs_by_num[n].id for n in nums)
        hit = Allowed(chunks, docs)
        with self._lock:
            if len(self._allowed) >= ALLOWED_CACHE:
                self._allowed.pop(next(iter(self._allowed)))
            self._allowed[filters] = hit
        return hit

    def chunk_ids(self, doc: int) -> list[int]:
        """The chunk ids of document ``doc``, in reading order."""
        return [int(c) for c in self._in_order(doc).ids]

    def _in_order(self, doc: int) -> ChunkTable:
        """The chunk table's rows of document ``doc``, in reading order."""
        mine = self.chunks.where(self.chunks.docs == doc)
        return mine.where(np.argsort(mine.positions))

    def sentences(self, doc: int) -> list[Span]:
        spans = self._doc_rows.get(doc)
        if spans is None:
            mine = self._in_order(doc)
            spans = [Span(int(s), int(e)) for s, e in zip(mine.starts, mine.ends, strict=True)]
            self._doc_rows[doc] = spans
        return list(spans)

    def shard_counts(self) -> tuple[int, int] | None:
        """(shards that answer, shards in all) for a sharded index; None for one index folder."""
        return None

    def searcher(self) -> Searcher:
        """A :class:`~search.searcher.Searcher` over this index: ``search``, ``page``, ``search_many``,
        ``query_vectors``."""
        return Searcher(self)

    def search(self, query: str, params: SearchParams | None = None, **changes: Any) -> list[Result]:
        """Rank passages for ``query``: ``params`` (default :class:`~search.params.SearchParams`) with
        ``changes`` applied, e.g. ``ix.search("Truppen", mode="keyword", k=5)``."""
        return self.searcher().search(query, params, **changes)

    def similar(self, doc_id: str, k: int = 10, window: int | None = None) -> list[Result]:
        """The ``k`` documents nearest to ``doc_id``'s vector, itself excluded ("more like this")."""
        return self.searcher().similar(doc_id, k, window)

    def page(self, query: str, params: SearchParams | None = None, **changes: Any) -> Page:
        """:meth:`search`'s passages with what shaped them (``feedback_docs``)."""
        return self.searcher().page(query, params, **changes)

    def search_many(self, queries: list[str], params: SearchParams | None = None, **changes: Any) -> list[list[Result]]:
        """Rank passages for several queries, embedding them in batches."""
        return self.searcher().search_many(queries, params, **changes)

    def query_vectors(self, queries: list[str], batch: int = 64) -> list[np.ndarray | None]:
        """Embeddings of several queries (None for a query a search would refuse)."""
        return self.searcher().query_vectors(queries, batch)

    def candidates(
        self, parsed: ParsedQuery, qvec: np.ndarray | None, k: int, allowed: Allowed | None, hybrid: bool
    ) -> Candidates:
        """Both sides' top ``k`` and scores for a semantic or hybrid query (search/candidates.py)."""
        return gather(self, parsed, qvec, k, allowed, hybrid)

    def info(self) -> dict[str, Any]:
        """The manifest plus sizes on disk, for ``search info``."""
        sizes = {}
        for name in (DOCS, CHUNKS, *(f for c in COMPONENTS for f in c.files)):
            path = self.generation / name
            if path.is_dir():
                sizes[name] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            elif path.exists():
                sizes[name] = path.stat().st_size
        return {
            **self.manifest.to_json(),
            "folder": str(self.folder),
            "sizes": sizes,
            "total_bytes": sum(sizes.values()),
            "folder_bytes": folder_bytes(self.folder),
        }
