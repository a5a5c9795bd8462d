"""Building an index folder from a corpus, and opening one to search.

This is the library API the CLI wraps::

    from search import Index, build_index
    build_index("corpus/", "indexes/default")
    with Index.open("indexes/default") as ix:
        for r in ix.search("Wer will Truppen schicken?", mode="hybrid", k=5):
            print(r.rank, r.doc, r.passage)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .chunking import Span
from .encoder import Encoder, make_encoder, ref_fingerprint, resolve_model
from .errors import IndexFormatError, ModelMismatchError
from .keyword import KeywordIndex
from .locks import pin_generation, unpin
from .store import (
    BM25_DOCS_FILE,
    BM25_FILE,
    CHUNKS,
    DOC_VECTORS,
    DOCS,
    KEYWORD,
    MANIFEST,
    VECTORS,
    load_chunks,
    load_documents,
    read_manifest,
)
from .types import Chunk, Document
from .vectors import VectorIndex
from .writer import DEFAULT_INDEX, DEFAULT_WINDOW, BuildReport, Progress, build_index, folder_bytes

__all__ = ["DEFAULT_INDEX", "DEFAULT_WINDOW", "BuildReport", "Index", "Progress", "build_index"]
OPEN_ATTEMPTS = 20


class Index:
    """An opened index folder. The embedding model loads on the first semantic query."""

    def __init__(
        self,
        folder: Path,
        manifest: dict[str, Any],
        model: str | None = None,
        encoder: Encoder | None = None,
        pin: int | None = None,
        encoder_threads: int | None = None,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.generation = folder / manifest["generation"]
        self._pin = pin
        stored = load_documents(self.generation / DOCS)
        self.documents: list[Document] = [s.doc for s in stored]
        self.docs_by_num: dict[int, Document] = {s.num: s.doc for s in stored}
        self.chunks = load_chunks(self.generation / CHUNKS)
        self.langs: list[str] = list(manifest["analyzer"]["languages"])
        self.keyword = KeywordIndex.open(
            self.generation / KEYWORD,
            self.langs,
            (self.generation / BM25_FILE, self.generation / BM25_DOCS_FILE, self.chunks),
        )
        self.dim = int(manifest["model"]["dim"])
        self._vectors: VectorIndex | None = None
        self._doc_vectors: VectorIndex | None = None
        self._encoder = encoder
        self._encoder_threads = encoder_threads
        self._ref = resolve_model(model) if model is not None and encoder is None else None
        self._row = {int(cid): i for i, cid in enumerate(self.chunks[:, 0])}
        if encoder is not None:
            self._check_model(encoder.name, encoder.fingerprint)
        elif self._ref is not None:  # fail before loading a model that cannot serve this index
            self._check_model(self._ref.name, ref_fingerprint(self._ref))
        # the sentences of each document, in order, for passage windows
        self._doc_rows: dict[int, np.ndarray] = {}

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
        for _ in range(OPEN_ATTEMPTS):  # a writer may commit and delete the generation we just read of
            manifest = read_manifest(folder)
            pin = pin_generation(folder / manifest["generation"])
            if pin is None:
                continue
            try:
                return cls(folder, manifest, model=model, encoder=encoder, pin=pin, encoder_threads=encoder_threads)
            except BaseException:
                unpin(pin)
                raise
        raise IndexFormatError(
            f"{folder}: the generation named in {MANIFEST} is missing; rebuild with `search index --rebuild`"
        )

    def is_current(self) -> bool:
        """False once a writer has committed a newer generation (reopen to see it)."""
        try:
            return read_manifest(self.folder)["generation"] == self.manifest["generation"]
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
        self.keyword.close()
        unpin(self._pin)
        self._pin = None

    def _check_model(self, name: str, fp: str) -> None:
        built = self.manifest["model"]
        if fp != built["fingerprint"] and name == built["name"]:
            raise ModelMismatchError(
                f"index {self.folder} was built with another version of {name!r} (fingerprint "
                f"{built['fingerprint']}, now {fp}); "
                f"rebuild it with `search index CORPUS --index {self.folder} --rebuild`"
            )
        if fp != built["fingerprint"]:
            raise ModelMismatchError(
                f"index {self.folder} was built with model {built['name']!r} (fingerprint {built['fingerprint']}), "
                f"not {name!r} ({fp}); query without --model, "
                f"or rebuild it with `search index CORPUS --model {name} --rebuild`"
            )

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            ref = self._ref or resolve_model(self.manifest["model"]["name"])
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
        row = self.chunks[self._row[chunk_id]]
        return Chunk(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]))

    def document(self, num: int) -> Document:
        return self.docs_by_num[num]

    def sentences(self, doc: int) -> list[Span]:
        rows = self._doc_rows.get(doc)
        if rows is None:
            rows = self.chunks[self.chunks[:, 1] == doc]
            rows = rows[np.argsort(rows[:, 4])]
            self._doc_rows[doc] = rows
        return [Span(int(r[2]), int(r[3])) for r in rows]

    def search(self, query: str, **options: Any) -> list[Any]:
        """Rank passages for ``query``; see :func:`search.ranker.search` for the options."""
        from .ranker import search

        return search(self, query, **options)

    def query_vectors(self, queries: list[str], batch: int = 64) -> list[np.ndarray | None]:
        """Embeddings of several queries, a batch at a time, of the cleaned text a search embeds
        (None for a query that search() would refuse; it reports that query's own error)."""
        import contextlib

        from .errors import QueryError
        from .ranker import clean_query

        vectors: list[np.ndarray | None] = [None] * len(queries)
        good: list[tuple[int, str]] = []
        for i, q in enumerate(queries):
            with contextlib.suppress(QueryError):
                good.append((i, clean_query(q)))
        for lo in range(0, len(good), batch):
            part = good[lo : lo + batch]
            for (i, _), vec in zip(part, self.encoder.encode_queries([q for _, q in part]), strict=True):
                vectors[i] = vec
        return vectors

    def search_many(self, queries: list[str], **options: Any) -> list[list[Any]]:
        """Rank passages for several queries, embedding them in batches (semantic and hybrid modes)."""
        from .ranker import search

        keyword = options.get("mode", "hybrid") == "keyword"
        vectors = [None] * len(queries) if keyword else self.query_vectors(queries)
        return [search(self, q, query_vector=v, **options) for q, v in zip(queries, vectors, strict=True)]

    def info(self) -> dict[str, Any]:
        """The manifest plus sizes on disk, for ``search info``."""
        sizes = {}
        for name in (DOCS, CHUNKS, VECTORS, DOC_VECTORS, KEYWORD, BM25_FILE, BM25_DOCS_FILE):
            path = self.generation / name
            if path.is_dir():
                sizes[name] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            elif path.exists():
                sizes[name] = path.stat().st_size
        return {
            **self.manifest,
            "folder": str(self.folder),
            "sizes": sizes,
            "total_bytes": sum(sizes.values()),
            "folder_bytes": folder_bytes(self.folder),
        }
