"""Building an index folder from a corpus, and opening one to search.

This is the library API the CLI wraps::

    from search import Index, build_index
    build_index("corpus/", "indexes/default")
    with Index.open("indexes/default") as ix:
        for r in ix.search("Wer will Truppen schicken?", mode="hybrid", k=5):
            print(r.rank, r.doc, r.passage)
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .analysis import check_lang, detect_language
from .chunking import Span, split_sentences
from .corpus import Skipped, read_corpus
from .encoder import Encoder, SentenceTransformerEncoder, load_encoder, ref_fingerprint, resolve_model
from .errors import CorpusError, ModelMismatchError
from .keyword import KeywordIndex, KeywordRecord
from .store import (
    CHUNKS,
    DOCS,
    FORMAT_VERSION,
    KEYWORD,
    MANIFEST,
    VECTORS,
    load_chunks,
    load_documents,
    read_manifest,
    save_chunks,
    save_documents,
    write_json,
)
from .types import Chunk, Document
from .vectors import VectorIndex

DEFAULT_INDEX = Path("indexes/default")
DEFAULT_WINDOW = 1


class Progress(Protocol):
    """Where long work reports how far it is (the CLI passes a rich progress bar)."""

    def start(self, task: str, total: int) -> None: ...

    def advance(self, n: int) -> None: ...


class _NoProgress:
    def start(self, task: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


@dataclass(frozen=True)
class BuildReport:
    """What a build did: counts, skipped inputs and timings in seconds."""

    folder: Path
    documents: int
    chunks: int
    skipped: list[Skipped]
    languages: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


def _languages(docs: list[Document], lang: str) -> list[Document]:
    if lang == "auto":
        return [Document(d.id, d.title, d.text, detect_language(f"{d.title}\n{d.text}")) for d in docs]
    check_lang(lang)
    return [Document(d.id, d.title, d.text, lang) for d in docs]


def _chunk(docs: list[Document]) -> list[Chunk]:
    chunks: list[Chunk] = []
    for di, doc in enumerate(docs):
        for pos, span in enumerate(split_sentences(doc.text, doc.lang)):
            chunks.append(Chunk(len(chunks), di, span.start, span.end, pos))
    return chunks


def build_index(
    corpus: str | Path,
    folder: str | Path = DEFAULT_INDEX,
    *,
    model: str | None = None,
    lang: str = "auto",
    window: int = DEFAULT_WINDOW,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
) -> BuildReport:
    """Read ``corpus``, chunk it into sentences and write a keyword + vector index to ``folder``.

    The new index is written beside the target and swapped in only when complete, so an
    interrupted build never leaves a half-written index where the old one was.
    """
    folder = Path(folder)
    progress = progress or _NoProgress()
    if folder.exists() and any(folder.iterdir()) and not (folder / MANIFEST).exists():
        raise CorpusError(f"{folder} exists and is not an index; choose another --index folder")
    if lang != "auto":
        check_lang(lang)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    skipped: list[Skipped] = []
    docs = _languages(list(read_corpus(corpus, skipped)), lang)
    if not docs:
        reasons = "; ".join(f"{s.source}: {s.reason}" for s in skipped[:3])
        raise CorpusError(f"nothing to index in {corpus}" + (f" ({reasons})" if reasons else ""))
    chunks = _chunk(docs)
    timings["read_and_chunk"] = time.perf_counter() - t0

    encoder = encoder or load_encoder(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        langs = sorted({d.lang for d in docs})
        t1 = time.perf_counter()
        KeywordIndex.build(
            tmp / KEYWORD,
            langs,
            (
                KeywordRecord(
                    c.id, docs[c.doc].id, docs[c.doc].lang, docs[c.doc].title, docs[c.doc].text[c.start : c.end]
                )
                for c in chunks
            ),
        )
        timings["keyword"] = time.perf_counter() - t1

        t2 = time.perf_counter()
        progress.start("embedding sentences", len(chunks))
        texts = [docs[c.doc].text[c.start : c.end] for c in chunks]
        vectors = encoder.encode_passages(texts, progress=progress.advance)
        vec = VectorIndex(encoder.dim)
        vec.add(vectors, np.array([c.id for c in chunks], dtype=np.int64))
        vec.save(tmp / VECTORS)
        timings["embedding"] = time.perf_counter() - t2

        save_documents(tmp / DOCS, docs)
        save_chunks(tmp / CHUNKS, chunks)
        languages = {lg: sum(d.lang == lg for d in docs) for lg in langs}
        manifest = {
            "format_version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "model": {"name": encoder.name, "fingerprint": encoder.fingerprint, "dim": encoder.dim},
            "analyzer": {
                "languages": langs,
                "lang_option": lang,
                "pipeline": "regex tokens | lowercase | stopwords | snowball stem | fold umlauts, accents, ß",
                "scoring": "BM25F B=0.75 K1=1.2",
            },
            "chunking": {"unit": "sentence", "splitter": "pysbd", "window": window},
            "counts": {"documents": len(docs), "chunks": len(chunks), "skipped": len(skipped)},
            "languages": languages,
            "corpus": str(Path(corpus).resolve()),
        }
        write_json(tmp / MANIFEST, manifest)
        _swap_in(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    timings["total"] = time.perf_counter() - t0
    return BuildReport(folder, len(docs), len(chunks), skipped, languages, timings)


def _swap_in(new: Path, folder: Path) -> None:
    old = folder.parent / f".{folder.name}.old-{os.getpid()}"
    if folder.exists():
        os.replace(folder, old)
    os.replace(new, folder)
    shutil.rmtree(old, ignore_errors=True)


class Index:
    """An opened index folder. The embedding model loads on the first semantic query."""

    def __init__(
        self, folder: Path, manifest: dict[str, Any], model: str | None = None, encoder: Encoder | None = None
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.documents = load_documents(folder / DOCS)
        self.chunks = load_chunks(folder / CHUNKS)
        self.langs: list[str] = list(manifest["analyzer"]["languages"])
        self.keyword = KeywordIndex.open(folder / KEYWORD, self.langs)
        self.dim = int(manifest["model"]["dim"])
        self._vectors: VectorIndex | None = None
        self._encoder = encoder
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
        cls, folder: str | Path = DEFAULT_INDEX, *, model: str | None = None, encoder: Encoder | None = None
    ) -> Index:
        folder = Path(folder)
        return cls(folder, read_manifest(folder), model=model, encoder=encoder)

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.keyword.close()

    def _check_model(self, name: str, fp: str) -> None:
        built = self.manifest["model"]
        if fp != built["fingerprint"]:
            raise ModelMismatchError(
                f"index {self.folder} was built with model {built['name']!r} (fingerprint {built['fingerprint']}), "
                f"not {name!r} ({fp}); query without --model, or rebuild with `search index --model {name}`"
            )

    @property
    def encoder(self) -> Encoder:
        if self._encoder is None:
            ref = self._ref or resolve_model(self.manifest["model"]["name"])
            self._check_model(ref.name, ref_fingerprint(ref))
            self._encoder = SentenceTransformerEncoder(ref)
        return self._encoder

    @property
    def vectors(self) -> VectorIndex:
        if self._vectors is None:
            self._vectors = VectorIndex.load(self.folder / VECTORS, self.dim)
        return self._vectors

    # -- chunk lookups -------------------------------------------------------------------
    def chunk(self, chunk_id: int) -> Chunk:
        row = self.chunks[self._row[chunk_id]]
        return Chunk(int(row[0]), int(row[1]), int(row[2]), int(row[3]), int(row[4]))

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

    def info(self) -> dict[str, Any]:
        """The manifest plus sizes on disk, for ``search info``."""
        sizes = {}
        for name in (DOCS, CHUNKS, VECTORS, KEYWORD):
            path = self.folder / name
            if path.is_dir():
                sizes[name] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            elif path.exists():
                sizes[name] = path.stat().st_size
        return {**self.manifest, "folder": str(self.folder), "sizes": sizes, "total_bytes": sum(sizes.values())}
