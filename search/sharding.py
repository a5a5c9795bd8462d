"""A sharded index: N ordinary index folders under one global manifest, searched as one.

    indexes/big/
        shards.json          the commit point of every shard: each shard's manifest (its generation
                             included), the next ids, and the global keyword statistics' file
        stats-000004.npz     document and sentence counts, total lengths and per-term document
                             frequencies at both levels, summed over the shards
        shard-000/ …         ordinary index folders (generations, locks, manifest.json)

Documents go to shard ``blake2b(id) mod N``. A write plans globally, as a one-machine build would:
new documents are numbered, chunked and given chunk ids in corpus order across all shards, and
every new sentence and document is embedded in one call (the same batches a one-machine build
runs, so the vectors are bitwise equal: int8 ONNX scales activations per batch). Each shard then
writes its next generation with those ids and vectors (:class:`~search.generation.Planned`), none
of them committed on its own; renaming ``shards.json`` commits them all. A crash before that
rename leaves every shard's previous generation named and intact; the next writer removes the
leftovers. Only after the commit does each shard's own ``manifest.json`` follow, so a shard folder
also opens as an index of its own part.

A search opens every shard (:class:`ShardedIndex`), scores each shard's BM25 with the global
statistics, takes each side's top candidates from every shard and merges them before the
searcher fuses, normalises and applies feedback, exactly as over one index.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import check_lang
from .chunking import DOC_TOKENS
from .components import document_text
from .corpus import Skipped
from .encoder import Encoder, openings
from .errors import CorpusError, IndexFormatError
from .generation import Planned, State, chunk_docs, collect_garbage, write_generation
from .locks import WriterLock
from .manifest import Manifest
from .prepare import HERE, Prepare
from .shards import GlobalStats, ShardingError, ShardsManifest, check_shards, is_sharded, shard_name, shard_of
from .store import (
    CHUNKS,
    DOCS,
    MANIFEST,
    SHARDS,
    ChunkTable,
    StoredDoc,
    load_chunks,
    load_documents,
    write_json,
)
from .writer import BuildOptions, BuildReport, Plan, Progress, _LazyEncoder, _NoProgress, read_plan

# -- writing --------------------------------------------------------------------------------

Embed = Callable[[Encoder, list[str], Callable[[int], None] | None], np.ndarray]


def _embed_here(encoder: Encoder, texts: list[str], progress: Callable[[int], None] | None) -> np.ndarray:
    return encoder.encode_passages(texts, progress)


def build_sharded(
    corpus: str | Path,
    folder: str | Path,
    shards: int,
    *,
    model: str | None = None,
    lang: str = "auto",
    window: int = 1,
    encoder: Encoder | None = None,
    progress: Progress | None = None,
    prune: bool = False,
    rebuild: bool = False,
    embedding_cache: bool | None = None,
    ray: str | None = None,
    embed: Embed | None = None,
    write_shard: Callable[..., tuple[str, int, Manifest]] | None = None,
    prepare: Prepare | None = None,
) -> BuildReport:
    """Build (or bring up to date) the sharded index in ``folder`` from ``corpus``: the sharded
    counterpart of :func:`~search.writer.build_index`, with the same options. ``embed`` runs the
    global embedding (default: here; search/distributed.py passes Ray actors) and ``write_shard``
    one shard's generation (default: :func:`~search.generation.write_generation` here); ``prepare``
    reads and splits the documents (default: here, search/prepare.py). ``ray`` (an address, or
    "local") runs reading, language detection, sentence splitting and embedding on a Ray cluster
    (search/distributed.py); the shards are written here."""
    folder = Path(folder)
    check_shards(shards)
    lang = check_lang(lang, auto=True)
    if ray is not None:
        from .distributed import RayRunner

        with RayRunner(ray) as runner:
            return build_sharded(
                corpus, folder, shards, model=model, lang=lang, window=window, encoder=encoder, progress=progress,
                prune=prune, rebuild=rebuild, embedding_cache=embedding_cache, embed=runner.embed, prepare=runner,
            )  # fmt: skip
    if (folder / MANIFEST).exists() and not is_sharded(folder):
        raise ShardingError(f"{folder} holds an unsharded index; choose another --index folder for a sharded one")
    if folder.exists() and not folder.is_dir():
        raise CorpusError(f"{folder} is a file, not an index folder; choose another --index")
    if folder.is_dir() and not is_sharded(folder) and any(p.name != ".lock" for p in folder.iterdir()):
        raise CorpusError(f"{folder} exists and is not an index; choose another --index folder")
    created = not folder.exists()
    t0 = time.perf_counter()
    cache = encoder is None if embedding_cache is None else embedding_cache
    options = BuildOptions(model, lang, window, encoder, progress or _NoProgress(), prune, rebuild, cache)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with WriterLock(folder):
            steps = (prepare or HERE, embed or _embed_here, write_shard or write_generation)
            return _build(folder, corpus, shards, options, steps, t0)
    except BaseException:
        if created and not (folder / SHARDS).exists():  # a first build that failed leaves nothing behind
            shutil.rmtree(folder, ignore_errors=True)
        raise


def _states(folder: Path, old: ShardsManifest | None, shards: int) -> list[State]:
    if old is None:
        return [State(None, [], ChunkTable.empty()) for _ in range(shards)]
    out = []
    for i, m in enumerate(old.shards):
        gen = folder / shard_name(i) / m.generation
        if not gen.is_dir():
            raise IndexFormatError(f"{folder}: shard {shard_name(i)} lacks its generation {m.generation}")
        out.append(State(m, load_documents(gen / DOCS), load_chunks(gen / CHUNKS)))
    return out


def _build(
    folder: Path,
    corpus: str | Path,
    shards: int,
    options: BuildOptions,
    steps: tuple[Prepare, Embed, Callable[..., tuple[str, int, Manifest]]],
    t0: float,
) -> BuildReport:
    timings: dict[str, float] = {}
    prepare, embed, write_shard = steps
    progress = options.progress
    old = None if options.rebuild or not is_sharded(folder) else ShardsManifest.read(folder)
    if old is not None and len(old.shards) != shards:
        raise ShardingError(f"{folder} has {len(old.shards)} shards, not {shards}; add --rebuild to re-shard it")
    states = _states(folder, old, shards)
    for i, state in enumerate(states):  # leftovers of a write that never reached its commit
        if (folder / shard_name(i)).is_dir():
            collect_garbage(folder / shard_name(i), state.gen)
    first = next((s for s in states if s.manifest), states[0])
    enc = _LazyEncoder(first, options.model, options.encoder, folder, options.cache)
    indexed = [d for s in states for d in s.docs]
    first_num = old.next_doc_num if old else 0
    plan = read_plan(indexed, corpus, options.lang, options.prune, first_num, timings, t0, prepare, progress)
    total_docs = len(plan.keep) + len(plan.add)
    if total_docs < shards:
        raise ShardingError(f"{shards} shards for {total_docs} documents: use at most {total_docs} shards")
    settings = options.settings(corpus, plan.not_indexed)
    where = settings["corpus"]
    if old is not None and plan.nothing_to_do:
        timings["total"] = time.perf_counter() - t0
        return _report(folder, old, plan.skipped, timings, committed=False, **plan.counts)

    # the global plan: ids in corpus order across shards, every text embedded in one call
    next_chunk = old.next_chunk_id if old else 0
    t = time.perf_counter()
    chunks = chunk_docs(plan.add, next_chunk, prepare.sentences([s.doc for s in plan.add]))
    timings["chunking"] = time.perf_counter() - t
    next_chunk += len(chunks)
    next_num = max([first_num, *(s.num + 1 for s in plan.add)])
    t = time.perf_counter()
    vectors, doc_vectors = _embed_all(plan.add, chunks, enc, embed, progress)
    timings["embedding"] = time.perf_counter() - t

    written: list[Path] = []  # the new generations, removed again if the commit is not reached
    try:
        manifests, embedded = _write_shards(
            folder, states, plan, chunks, (vectors, doc_vectors), (next_chunk, next_num), written,
            lambda shard, state, **kw: write_shard(
                shard, state, encoder=enc, settings=settings, progress=progress, timings=timings, **kw
            ),
        )  # fmt: skip
        committed = _commit(folder, old, manifests, next_chunk, next_num, where)
    except BaseException:
        for done in written:
            shutil.rmtree(done, ignore_errors=True)
        raise
    timings["total"] = time.perf_counter() - t0
    report = dict(plan.counts)
    if enc.cached is not None:
        report["cache_hits"] = enc.sentence_hits
    return _report(folder, committed, plan.skipped, timings, embedded=embedded, **report)


def remove_sharded(
    folder: str | Path, doc_ids: Sequence[str], *, progress: Progress | None = None
) -> tuple[BuildReport, list[str]]:
    """:func:`~search.writer.remove_documents` on a sharded index: each shard holding one of
    ``doc_ids`` writes a generation without it, and one global commit makes them current."""
    wanted = set(doc_ids)
    folder, t0 = Path(folder), time.perf_counter()
    with WriterLock(folder):
        old, states = _opened(folder)
        held = {s.doc.id for st in states for s in st.docs}
        committed = _rewrite(folder, old, states, lambda s: s.doc.id not in wanted, False, progress)
    timings = {"total": time.perf_counter() - t0}
    removed = len(wanted & held)
    report = _report(folder, committed or old, [], timings, removed=removed, committed=committed is not None)
    return report, sorted(wanted - held)


def compact_sharded(folder: str | Path, *, progress: Progress | None = None) -> tuple[int, int]:
    """:func:`~search.writer.compact_index` on every shard, under one global commit."""
    from .writer import folder_bytes

    folder = Path(folder)
    with WriterLock(folder):
        old, states = _opened(folder)
        before = folder_bytes(folder)
        _rewrite(folder, old, states, lambda s: True, True, progress)
        return before, folder_bytes(folder)


def _opened(folder: Path) -> tuple[ShardsManifest, list[State]]:
    old = ShardsManifest.read(folder)
    states = _states(folder, old, len(old.shards))
    for i, state in enumerate(states):
        collect_garbage(folder / shard_name(i), state.gen)
    return old, states


def _rewrite(
    folder: Path,
    old: ShardsManifest,
    states: list[State],
    keep: Callable[[StoredDoc], bool],
    optimize: bool,
    progress: Progress | None,
) -> ShardsManifest | None:
    """Each shard that loses a document (every shard, with ``optimize``) writes a generation that
    adds nothing; None where nothing changed."""
    from .writer import _FixedModel

    manifests: list[Manifest] = []
    written: list[Path] = []
    try:
        for i, state in enumerate(states):
            assert state.manifest is not None
            kept = [s for s in state.docs if keep(s)]
            if len(kept) == len(state.docs) and not optimize:
                manifests.append(state.manifest)
                continue
            m = state.manifest
            settings = {"lang": m.analyzer.lang_option, "window": m.chunking.window}
            planned = Planned(ChunkTable.empty(), old.next_chunk_id, old.next_doc_num, {})
            fixed = _LazyEncoder(state, None, _FixedModel(m), folder)  # nothing is embedded
            gen, _, manifest = write_generation(
                folder / shard_name(i), state, keep=kept, add=[], encoder=fixed, settings=settings,
                progress=progress or _NoProgress(), timings={}, planned=planned,
            )  # fmt: skip
            written.append(folder / shard_name(i) / gen)
            manifests.append(manifest)
        if not written:
            return None
        return _commit(folder, old, manifests, old.next_chunk_id, old.next_doc_num, old.corpus or "")
    except BaseException:
        for done in written:
            shutil.rmtree(done, ignore_errors=True)
        raise


def _write_shards(
    folder: Path,
    states: list[State],
    plan: Plan,
    chunks: ChunkTable,
    vectors: tuple[np.ndarray, np.ndarray],
    next_ids: tuple[int, int],
    written: list[Path],
    write: Callable[..., tuple[str, int, Manifest]],
) -> tuple[list[Manifest], int]:
    """Each shard's next generation, uncommitted (a shard nothing happened to keeps its own); returns
    their manifests and the number of sentences written. ``written`` collects the new generations."""
    shards = len(states)
    owner = np.array([shard_of(s.doc.id, shards) for s in plan.add], dtype=np.int64)
    chunk_owner = owner[np.searchsorted([s.num for s in plan.add], chunks.docs)] if len(chunks) else owner[:0]
    sentences, documents = vectors
    manifests: list[Manifest] = []
    embedded = 0
    for i, state in enumerate(states):
        keep = [s for s in plan.keep if shard_of(s.doc.id, shards) == i]
        add = [s for s, o in zip(plan.add, owner.tolist(), strict=True) if o == i]
        if state.manifest is not None and not add and _same(keep, state.docs):
            manifests.append(state.manifest)  # nothing changed in this shard: its generation stays
            continue
        mine, theirs = chunk_owner == i, owner == i
        given = {
            "vectors": (chunks.ids[mine], sentences[mine] if len(sentences) else sentences),
            "docvectors": (
                np.array([s.num for s in add], dtype=np.int64),
                documents[theirs] if len(documents) else documents,
            ),
        }
        shard = folder / shard_name(i)
        shard.mkdir(exist_ok=True)
        gen, n, manifest = write(
            shard, state, keep=keep, add=add, planned=Planned(chunks.where(mine), *next_ids, given)
        )
        written.append(shard / gen)
        embedded += n
        manifests.append(manifest)
    return manifests, embedded


def _embed_all(
    add: list[StoredDoc], chunks: ChunkTable, enc: _LazyEncoder, embed: Embed, progress: Progress
) -> tuple[np.ndarray, np.ndarray]:
    """Every new sentence, then every new document's opening, each in one call: the calls (and so the
    batches) a one-machine build of the same documents makes."""
    if not add:
        empty = np.zeros((0, 0), dtype=np.float32)
        return empty, empty
    by_num = {s.num: s.doc for s in add}
    sentences = [by_num[n].text[s:e] for n, s, e in chunks.rows[:, 1:4].tolist()]
    model = enc.get()
    progress.start("embedding sentences", len(sentences))
    vectors = embed(model, sentences, progress.advance)
    enc.sentences_done()
    texts = openings(model, [document_text(s.doc) for s in add], DOC_TOKENS)
    progress.start("embedding documents", len(texts))
    return vectors, embed(model, texts, progress.advance)


def _same(keep: list[StoredDoc], docs: list[StoredDoc]) -> bool:
    key = sorted((s.num, s.hash, repr(s.doc.meta), repr(s.doc.pages)) for s in keep)
    return key == sorted((s.num, s.hash, repr(s.doc.meta), repr(s.doc.pages)) for s in docs)


def _commit(
    folder: Path, old: ShardsManifest | None, manifests: list[Manifest], next_chunk: int, next_num: int, corpus: str
) -> ShardsManifest:
    """Write the global statistics, then rename ``shards.json`` in (the commit of every shard), then
    let each shard's own manifest follow and remove what no longer counts."""
    generation = (old.generation if old else 0) + 1
    gens = [folder / shard_name(i) / m.generation for i, m in enumerate(manifests)]
    stats_name = f"stats-{generation:06d}.npz"
    GlobalStats.of_generations(gens).save(folder / stats_name)
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    committed = ShardsManifest(
        generation, old.created if old else now, now, tuple(manifests), stats_name, next_chunk, next_num, corpus
    )
    write_json(folder / SHARDS, committed.to_json())  # the commit
    for i, m in enumerate(manifests):
        shard = folder / shard_name(i)
        write_json(shard / MANIFEST, m.to_json())
        collect_garbage(shard, m.generation)
    for stale in folder.glob("stats-*.npz"):
        if stale.name != stats_name:
            stale.unlink(missing_ok=True)
    return committed


def _report(
    folder: Path, manifest: ShardsManifest, skipped: list[Skipped], timings: dict[str, float], **counts: Any
) -> BuildReport:
    return BuildReport(
        folder, manifest.documents, manifest.chunks, skipped, manifest.languages, timings,
        generation=f"{manifest.generation:06d}", **counts,
    )  # fmt: skip
