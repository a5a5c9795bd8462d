"""Writing an index: first build, incremental update, removal and compaction.

Every write produces a new generation beside the current one and commits it by renaming
``manifest.json`` (see :mod:`search.store`). An update reuses what did not change: the term matrices
keep the rows of unchanged chunks, vectors of unchanged documents are copied, and only new or changed
documents are chunked, analysed and embedded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import check_lang
from .components import COMPONENTS, Progress
from .corpus import FormatStats, ReadStats, Skipped, corpus_files, merge_reads
from .encoder import Encoder, ModelRef, make_encoder, ref_fingerprint, resolve_model
from .errors import CorpusError, IndexFormatError, IndexWriteError, ModelMismatchError
from .generation import State, collect_garbage, committed_generation, load_state, write_generation
from .locks import WriterLock
from .manifest import Manifest
from .prepare import HERE, Prepare, language_text
from .readers.worker import limits as reader_limits
from .store import FLAT_LAYOUT, LOCK, MANIFEST, SHARDS, StoredDoc, content_hash, read_manifest, write_json
from .types import Document
from .vectors import hnsw_min

DEFAULT_INDEX = Path("indexes/default")
DEFAULT_WINDOW = 1


class _NoProgress:
    def start(self, task: str, total: int) -> None:
        pass

    def advance(self, n: int) -> None:
        pass


@dataclass(frozen=True)
class BuildOptions:
    """What a build is asked to do, the same for one index (:func:`build_index`) and a sharded one
    (search/sharding.py): the options of ``search index``."""

    model: str | None = None
    lang: str = "auto"
    window: int = DEFAULT_WINDOW
    encoder: Encoder | None = None
    progress: Progress = field(default_factory=_NoProgress)
    prune: bool = False
    rebuild: bool = False
    cache: bool = True  # reuse vectors of text embedded before by the same model

    def settings(self, corpus: str | Path, skipped: int) -> dict[str, Any]:
        """The build settings a manifest records."""
        return {"lang": self.lang, "window": self.window, "corpus": str(Path(corpus).resolve()), "skipped": skipped}


@dataclass(frozen=True)
class BuildReport:
    """What a write did: counts after it, what changed, skipped inputs and timings in seconds."""

    folder: Path
    documents: int
    chunks: int
    skipped: list[Skipped]
    languages: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    embedded: int = 0
    cache_hits: int = 0
    generation: str = ""
    committed: bool = True
    meta_updated: int = 0  # documents whose text stayed and whose metadata changed (kept, not embedded again)
    formats: dict[str, FormatStats] = field(default_factory=dict)  # per format read: documents, pages, seconds

    @property
    def notes(self) -> list[Skipped]:
        """Inputs indexed with a caveat (cut at a page limit, decoded with replacement)."""
        return [s for s in self.skipped if s.indexed]

    @property
    def not_indexed(self) -> list[Skipped]:
        return [s for s in self.skipped if not s.indexed]


@contextlib.contextmanager
def _os_errors(folder: Path) -> Iterator[None]:
    """A failing disk (full, read-only, permissions) is a one-line error, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise IndexWriteError(f"cannot write the index {folder}: {exc.strerror or exc}") from None


def _not_a_shard(folder: Path) -> None:
    """A shard is written only through its sharded index: a write of its own would commit a generation
    ``shards.json`` does not name and delete the one it does."""
    if (folder.resolve().parent / SHARDS).exists():
        raise IndexWriteError(
            f"{folder} is a shard of the sharded index {folder.resolve().parent}; write to that index instead"
        )


def _check_folder(folder: Path) -> None:
    _not_a_shard(folder)
    if folder.exists() and not folder.is_dir():
        raise CorpusError(f"{folder} is a file, not an index folder; choose another --index")
    indexed = (folder / MANIFEST).exists()
    if folder.is_dir() and not indexed and any(folder.glob("shard-[0-9]*")):
        raise IndexFormatError(  # a sharded index without shards.json; one index written beside would hide it
            f"{folder} holds the shards of a sharded index but no {SHARDS}, its global manifest; "
            "delete the folder and build it again, or choose another --index"
        )
    ours = indexed or (folder / LOCK).exists()
    if folder.is_dir() and not ours and any(folder.iterdir()):
        raise CorpusError(f"{folder} exists and is not an index; choose another --index folder")


def build_index(
    corpus: str | Path,
    folder: str | Path = DEFAULT_INDEX,
    *,
    model: str | None = None,
    lang: str = "auto",
    window: int = DEFAULT_WINDOW,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
    prune: bool = False,
    rebuild: bool = False,
    embedding_cache: bool | None = None,
) -> BuildReport:
    """Build the index in ``folder`` from ``corpus``, or bring an existing one up to date.

    New documents are added, changed ones (by content hash) replaced, unchanged ones cost nothing;
    documents no longer in the corpus are removed only with ``prune``. ``rebuild`` starts from
    nothing (for a new model or an index of an older format). Interrupted at any point, the last
    committed index stays as it was. ``embedding_cache`` (default: on when the model is loaded
    here, off for an ``encoder`` passed in) reuses vectors of text embedded before by the same model.
    """
    folder = Path(folder)
    _check_folder(folder)
    lang = check_lang(lang, auto=True)
    t0 = time.perf_counter()
    created = not folder.exists()
    cache = encoder is None if embedding_cache is None else embedding_cache
    options = BuildOptions(model, lang, window, encoder, progress or _NoProgress(), prune, rebuild, cache)
    try:
        with _os_errors(folder):
            return _build(folder, corpus, options, t0)
    except BaseException:
        if created and not (folder / MANIFEST).exists():  # a first build that failed leaves nothing behind
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _build(folder: Path, corpus: str | Path, options: BuildOptions, t0: float) -> BuildReport:
    timings: dict[str, float] = {}
    window = options.window
    with WriterLock(folder):
        state = load_state(folder, options.rebuild)
        collect_garbage(folder, committed_generation(folder))
        enc = _LazyEncoder(state, options.model, options.encoder, folder, options.cache)

        first_num = state.manifest.next_doc_num if state.manifest else 0
        plan = read_plan(
            state.docs, corpus, options.lang, options.prune, first_num, timings, t0, HERE, options.progress
        )
        skipped, keep, add, report = plan.skipped, plan.keep, plan.add, plan.counts
        settings = options.settings(corpus, plan.not_indexed)
        if state.manifest and plan.nothing_to_do:
            if state.manifest.chunking.window != window:  # a setting only: same generation, new manifest
                state.manifest = state.manifest.replace(chunking=replace(state.manifest.chunking, window=window))
                write_json(folder / MANIFEST, state.manifest.to_json())
            timings["total"] = time.perf_counter() - t0
            return _report(folder, state.manifest, skipped, timings, committed=False, **report)

        gen, embedded, manifest = write_generation(
            folder, state, keep=keep, add=add, encoder=enc, settings=settings, progress=options.progress,
            timings=timings,
        )  # fmt: skip
        collect_garbage(folder, gen)
        if options.rebuild:  # files of an index of an older format, now replaced
            for legacy in (*FLAT_LAYOUT, *(f for c in COMPONENTS for f in c.files)):
                path = folder / legacy
                if path.is_dir():
                    shutil.rmtree(path, ignore_errors=True)
                elif path.exists():
                    path.unlink()
    timings["total"] = time.perf_counter() - t0
    if enc.cached is not None:
        report["cache_hits"] = enc.sentence_hits  # sentences; document vectors are cached too
    return _report(folder, manifest, skipped, timings, embedded=embedded, **report)


@dataclass
class Plan:
    """What a write does with the corpus it read: documents kept as they are and documents to index
    (numbered, their language detected), with the counts the report gives."""

    skipped: list[Skipped]
    keep: list[StoredDoc]
    add: list[StoredDoc]
    counts: dict[str, Any]

    @property
    def not_indexed(self) -> int:
        return sum(not s.indexed for s in self.skipped)

    @property
    def nothing_to_do(self) -> bool:
        return not self.add and not self.counts["removed"] and not self.counts["meta_updated"]


def read_plan(
    indexed: list[StoredDoc],
    corpus: str | Path,
    lang: str,
    prune: bool,
    next_num: int,
    timings: dict[str, float],
    t0: float,
    prepare: Prepare = HERE,
    progress: Progress | None = None,
) -> Plan:
    """Read ``corpus`` and plan the write against the ``indexed`` documents (see :func:`_plan`); new
    documents are numbered from ``next_num`` in corpus order. An empty corpus is a :class:`CorpusError`.
    ``prepare`` reads the files and detects languages (here, or on a Ray cluster)."""
    reader_limits(), hnsw_min()  # the settings the environment gives, checked before any work
    skipped: list[Skipped] = []
    stats = ReadStats()
    progress = progress or _NoProgress()
    files, base = corpus_files(corpus)
    progress.start("reading files", len(files))
    docs = list(merge_reads(prepare.read(files, base, progress.advance), skipped, stats))
    if not docs:
        reasons = "; ".join(f"{s.source}: {s.reason}" for s in [s for s in skipped if not s.indexed][:3])
        raise CorpusError(f"nothing to index in {corpus}" + (f" ({reasons})" if reasons else ""))
    keep, fresh, updated, meta_updated, removed = _plan(indexed, docs, lang, prune)
    timings["read"] = time.perf_counter() - t0
    counts: dict[str, Any] = dict(
        added=len(fresh) - updated, updated=updated, removed=removed, unchanged=len(docs) - len(fresh)
    )
    counts.update(meta_updated=meta_updated, formats=stats.formats)
    t = time.perf_counter()
    langs = [lang] * len(fresh)
    if lang == "auto" and fresh:
        progress.start("detecting languages", len(fresh))
        langs = prepare.languages([language_text(d) for d, _ in fresh], progress.advance)
    pairs = enumerate(zip(fresh, langs, strict=True))
    add = [StoredDoc(next_num + i, h, replace(d, lang=lg)) for i, ((d, h), lg) in pairs]
    timings["language"] = time.perf_counter() - t
    return Plan(skipped, keep, add, counts)


def _plan(
    indexed: list[StoredDoc], docs: list[Document], lang: str, prune: bool
) -> tuple[list[StoredDoc], list[tuple[Document, str]], int, int, int]:
    """What a build does with each document read: keep it (with new metadata where that alone
    changed), or embed it afresh (new or changed text). Returns kept, fresh with content hashes, how
    many fresh ones replace an older version, how many kept ones got new metadata, and how many
    vanished documents are removed (only with ``prune``; otherwise they are kept)."""
    old = {s.doc.id: s for s in indexed}
    seen = {d.id for d in docs}
    keep: list[StoredDoc] = []
    fresh: list[tuple[Document, str]] = []
    updated = meta_updated = 0
    for d in docs:
        h = content_hash(d, lang)
        prev = old.get(d.id)
        if prev is not None and prev.hash == h:
            if prev.doc.meta != d.meta or prev.doc.pages != d.pages:  # same text, new metadata: no new vectors
                prev = StoredDoc(prev.num, prev.hash, replace(prev.doc, meta=d.meta, pages=d.pages))
                meta_updated += 1
            keep.append(prev)
        else:
            updated += prev is not None
            fresh.append((d, h))
    vanished = [s for s in indexed if s.doc.id not in seen]
    if not prune:
        keep.extend(vanished)
    return keep, fresh, updated, meta_updated, len(vanished) if prune else 0


def _report(
    folder: Path, manifest: Manifest, skipped: list[Skipped], timings: dict[str, float], **counts: Any
) -> BuildReport:
    return BuildReport(
        folder,
        manifest.counts.documents,
        manifest.counts.chunks,
        skipped,
        dict(manifest.languages),
        timings,
        generation=manifest.generation,
        **counts,
    )


def _rewrite(
    state: State,
    folder: Path,
    keep: list[StoredDoc],
    progress: Progress | None,
    timings: dict[str, float],
) -> Manifest:
    """Commit a generation that keeps ``keep`` and adds nothing (removal, compaction); the caller holds the lock."""
    assert state.manifest is not None
    settings = {"lang": state.manifest.analyzer.lang_option, "window": state.manifest.chunking.window}
    gen, _, manifest = write_generation(
        folder, state, keep=keep, add=[], encoder=_LazyEncoder(state, None, _FixedModel(state.manifest), folder),
        settings=settings, progress=progress or _NoProgress(), timings=timings,
    )  # fmt: skip
    collect_garbage(folder, gen)
    return manifest


def remove_documents(
    folder: str | Path, doc_ids: Sequence[str], *, progress: Progress | None = None
) -> tuple[BuildReport, list[str]]:
    """Remove documents by id; returns the report and the ids that were not in the index."""
    folder = Path(folder)
    t0 = time.perf_counter()
    _not_a_shard(folder)
    read_manifest(folder)  # no index, or one of another format: say so before creating a lock file
    timings: dict[str, float] = {}
    with _os_errors(folder), WriterLock(folder):
        state = load_state(folder, rebuild=False)
        assert state.manifest is not None
        collect_garbage(folder, state.gen)
        wanted = set(doc_ids)
        keep = [s for s in state.docs if s.doc.id not in wanted]
        missing = sorted(wanted - {s.doc.id for s in state.docs})
        if len(keep) == len(state.docs):
            timings["total"] = time.perf_counter() - t0
            return _report(folder, state.manifest, [], timings, committed=False), missing
        manifest = _rewrite(state, folder, keep, progress, timings)
    timings["total"] = time.perf_counter() - t0
    return _report(folder, manifest, [], timings, removed=len(state.docs) - len(keep)), missing


def compact_index(folder: str | Path, *, progress: Progress | None = None) -> tuple[int, int]:
    """Write the index again as one generation and drop the old ones; returns bytes before, after."""
    folder = Path(folder)
    _not_a_shard(folder)
    read_manifest(folder)
    with _os_errors(folder), WriterLock(folder):
        state = load_state(folder, rebuild=False)
        before = folder_bytes(folder)
        _rewrite(state, folder, list(state.docs), progress, {})
        return before, folder_bytes(folder)


def folder_bytes(folder: Path) -> int:
    """Bytes on disk under ``folder``, counting each hard-linked file once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            st = os.stat(Path(dirpath) / name)
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


class _FixedModel:
    """Stands in for the encoder where nothing is embedded (removal, compaction)."""

    def __init__(self, manifest: Manifest) -> None:
        m = manifest.model
        self.name, self.fingerprint, self.dim = m.name, m.fingerprint, m.dim

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        raise AssertionError("nothing is embedded here")

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        raise AssertionError("nothing is embedded here")


class _LazyEncoder:
    """The model of a write, checked against the index's model but loaded only if something is embedded."""

    def __init__(
        self, state: State, model: str | None, encoder: Encoder | None, folder: Path, cache: bool = False
    ) -> None:
        self._encoder = encoder
        self._cache = cache
        self.cached: Any = None
        self.sentence_hits = 0  # cache hits among the sentences (documents are cached too)
        self._ref: ModelRef | None = None
        built = state.manifest.model if state.manifest else None
        if encoder is not None:
            name, fp = encoder.name, encoder.fingerprint
        else:
            self._ref = resolve_model(model if model is not None else (built.name if built else None))
            name, fp = self._ref.name, ref_fingerprint(self._ref)
        if built and fp != built.fingerprint:
            raise ModelMismatchError(
                f"index {folder} was built with model {built.name!r} (fingerprint {built.fingerprint}), "
                f"not {name!r} ({fp}); add --rebuild to re-embed everything with {name!r}"
            )
        self.name, self.fingerprint = name, fp
        self._dim = built.dim if built else None

    def get(self) -> Encoder:
        if self._encoder is None:
            assert self._ref is not None
            self._encoder = make_encoder(self._ref)
            # a model without an ONNX export runs (and is recorded) as its float32 self
            self.name, self.fingerprint = self._encoder.name, self._encoder.fingerprint
        if self._cache and self.cached is None:
            from .embcache import CachedEncoder, EmbeddingCache

            self.cached = CachedEncoder(self._encoder, EmbeddingCache(self.fingerprint, self._encoder.dim))
        return self.cached if self.cached is not None else self._encoder

    @property
    def dim(self) -> int:
        return self._dim if self._dim is not None else self.get().dim

    def sentences_done(self) -> None:
        self.sentence_hits = self.cached.hits if self.cached is not None else 0
