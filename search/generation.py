"""Writing one generation: what the writer starts from, the commit protocol, and the manifest.

:func:`write_generation` builds generation N+1 beside N by looping over the index's components
(search/components.py), saves the documents and the chunk table, fsyncs everything, and commits
by replacing ``manifest.json`` (search/store.py). Crash points between the steps let the fault
tests kill the writer exactly there (``SEARCH_CRASH_AT``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .chunking import Span, split_sentences
from .components import COMPONENTS, MAIN_LANE, Cancelled, Change, Component, EncoderSource, Progress
from .locks import remove_if_unused
from .manifest import Analyzer, Chunking, Counts, Manifest, ModelInfo, Scoring
from .store import (
    CHUNKS,
    DOCS,
    FORMAT_VERSION,
    MANIFEST,
    READERS,
    ChunkTable,
    StoredDoc,
    fsync_tree,
    generation_name,
    generations,
    load_chunks,
    load_documents,
    read_manifest,
    save_chunks,
    save_documents,
    write_json,
)

CRASH_ENV = "SEARCH_CRASH_AT"  # fault injection for tests: the writer kills itself at this point


class WriteModel(EncoderSource, Protocol):
    """The write's model as the manifest names it."""

    name: str
    fingerprint: str


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class State:
    """The committed index a writer starts from (empty for a first build)."""

    manifest: Manifest | None
    docs: list[StoredDoc]
    chunks: ChunkTable

    @property
    def gen(self) -> str | None:
        return self.manifest.generation if self.manifest else None


def load_state(folder: Path, rebuild: bool) -> State:
    empty = State(None, [], ChunkTable.empty())
    if rebuild or not (folder / MANIFEST).exists():
        return empty
    manifest = read_manifest(folder)
    gen = folder / manifest.generation
    return State(manifest, load_documents(gen / DOCS), load_chunks(gen / CHUNKS))


def committed_generation(folder: Path) -> str | None:
    """The generation the manifest names, read leniently (a rebuild must not delete it before its commit)."""
    try:
        gen = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("generation")
    except (OSError, ValueError, AttributeError):
        return None
    return gen if isinstance(gen, str) else None


def collect_garbage(folder: Path, keep: str | None) -> None:
    """Remove generations other than ``keep`` that no reader holds, and leftovers of crashes."""
    for gen in generations(folder):
        if gen.name != keep:
            remove_if_unused(gen)
    for stray in folder.iterdir():
        if stray.name.startswith(".trash-") or stray.name == MANIFEST + ".tmp":
            if stray.is_dir():
                shutil.rmtree(stray, ignore_errors=True)
            else:
                stray.unlink(missing_ok=True)


@dataclass(frozen=True)
class Planned:
    """What a global plan decided for one shard's generation: its new chunks (global ids), the
    index-wide next ids, and the vectors already embedded (see :attr:`Change.given`)."""

    chunks: ChunkTable
    next_chunk_id: int
    next_doc_num: int
    given: dict[str, tuple[np.ndarray, np.ndarray]]


def chunk_docs(docs: list[StoredDoc], first_id: int, sentences: list[list[Span]] | None = None) -> ChunkTable:
    """The chunk table of ``docs``, one row per sentence, ids from ``first_id`` in order; ``sentences``:
    their sentences where they were split elsewhere (search/prepare.py)."""
    if sentences is None:
        sentences = [split_sentences(s.doc.text, s.doc.lang) for s in docs]
    rows: list[tuple[int, int, int, int, int]] = []
    for s, spans in zip(docs, sentences, strict=True):
        for pos, span in enumerate(spans):
            rows.append((first_id + len(rows), s.num, span.start, span.end, pos))
    return ChunkTable.of(rows)


def write_generation(
    folder: Path,
    state: State,
    *,
    keep: list[StoredDoc],
    add: list[StoredDoc],
    encoder: WriteModel,
    settings: dict[str, Any],
    progress: Progress,
    timings: dict[str, float],
    planned: Planned | None = None,
) -> tuple[str, int, Manifest]:
    """Write and commit the next generation: ``keep`` (already indexed) plus ``add`` (new text).

    Every component (search/components.py) writes its files into the new generation's folder;
    then the documents and the chunk table, an fsync of everything, and the commit.
    Returns the generation's name, the number of chunks embedded, and the committed manifest.
    With ``planned`` (a shard of a sharded index, search/sharding.py) the chunks, their ids and
    vectors come from the global plan, and the generation is written but not committed: the global
    manifest names it.
    """
    kept_nums = np.fromiter((s.num for s in keep), dtype=np.int64, count=len(keep))
    live = np.isin(state.chunks.docs, kept_nums)
    t = time.perf_counter()
    if planned is None:
        next_chunk = state.manifest.next_chunk_id if state.manifest else 0
        new_chunks = chunk_docs(add, next_chunk)
        next_chunk += len(new_chunks)
    else:
        new_chunks, next_chunk = planned.chunks, planned.next_chunk_id
    timings["chunking"] = timings.get("chunking", 0.0) + time.perf_counter() - t
    chunks = state.chunks.where(live).concat(new_chunks)
    docs = sorted([*keep, *add], key=lambda s: s.num)
    langs = sorted({s.doc.lang for s in docs} | set(state.manifest.analyzer.languages if state.manifest else ()))
    existing = [int(g.name[1:]) for g in generations(folder)]
    gen_name = generation_name(max([0, *existing]) + 1)
    gen = folder / gen_name
    gen.mkdir()
    (gen / READERS).touch()
    kept = {int(n) for n in kept_nums}
    change = Change(
        previous=folder / state.manifest.generation if state.manifest else None,
        target=gen, langs=langs, docs=docs, chunks=chunks,
        dropped_docs=[s for s in state.docs if s.num not in kept], dropped_ids=state.chunks.ids[~live],
        added_docs=add, added_chunks=new_chunks, encoder=encoder, progress=progress,
        given=planned.given if planned is not None else {},
    )  # fmt: skip
    try:
        _write_lanes(change, timings)
        save_documents(gen / DOCS, docs)
        save_chunks(gen / CHUNKS, chunks)
        fsync_tree(gen)
        _crash_point("before-commit")
        manifest = _manifest(state, gen_name, docs, chunks, langs, encoder, settings, next_chunk)
        if planned is not None:
            manifest = manifest.replace(next_doc_num=planned.next_doc_num)
            return gen_name, len(new_chunks), manifest
        write_json(folder / MANIFEST, manifest.to_json())  # the commit
    except BaseException:
        shutil.rmtree(gen, ignore_errors=True)
        raise
    _crash_point("after-commit")
    return gen_name, len(new_chunks), manifest


def _write_lanes(change: Change, timings: dict[str, float]) -> None:
    """Every component's files, the lanes at once: the keyword side (the analyser and the BM25 matrices,
    Python holding the GIL) in a thread while this one embeds (ONNX Runtime, which releases it, on every core).
    A lane that fails cancels the other; the first failure is raised once both have stopped."""

    def run(lane: list[Component]) -> None:
        for component in lane:
            change.check()
            t = time.perf_counter()
            component.write(change)
            timings[component.stage] = timings.get(component.stage, 0.0) + time.perf_counter() - t
            _crash_point(component.name)

    lanes: dict[str, list[Component]] = {}
    for component in COMPONENTS:
        lanes.setdefault(component.lane, []).append(component)
    main = lanes.pop(MAIN_LANE)  # here, where Ctrl-C arrives
    with ThreadPoolExecutor(max_workers=max(1, len(lanes)), thread_name_prefix="lane") as pool:
        futures = [pool.submit(run, lane) for lane in lanes.values()]
        for future in futures:
            future.add_done_callback(lambda f: _cancel_on_failure(f, change))
        try:
            run(main)
        except Cancelled:
            pass  # another lane failed: its error is raised below
        except BaseException:
            change.cancelled.set()
            wait(futures)
            raise
        wait(futures)
    for future in futures:
        error = future.exception()
        if error is not None and not isinstance(error, Cancelled):
            raise error


def _cancel_on_failure(future: Future[None], change: Change) -> None:
    if future.exception() is not None:
        change.cancelled.set()


def _manifest(
    state: State,
    gen: str,
    docs: list[StoredDoc],
    chunks: ChunkTable,
    langs: list[str],
    encoder: WriteModel,
    settings: dict[str, Any],
    next_chunk: int,
) -> Manifest:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    old = state.manifest
    skipped = settings.get("skipped", old.counts.skipped if old else 0)
    return Manifest(
        format_version=FORMAT_VERSION,
        generation=gen,
        created=old.created if old else now,
        updated=now,
        model=ModelInfo(encoder.name, encoder.fingerprint, encoder.dim),
        analyzer=Analyzer(tuple(langs), settings["lang"]),
        chunking=Chunking(settings["window"]),
        counts=Counts(len(docs), len(chunks), skipped),
        languages=_language_counts(docs),
        next_chunk_id=next_chunk,
        next_doc_num=max([s.num for s in docs], default=-1) + 1,
        corpus=settings.get("corpus", old.corpus if old else None),
        scoring=old.scoring if old else Scoring(),
    )


def _language_counts(docs: list[StoredDoc]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for s in docs:
        counts[s.doc.lang] = counts.get(s.doc.lang, 0) + 1
    return dict(sorted(counts.items()))
