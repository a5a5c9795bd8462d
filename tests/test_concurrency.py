"""Readers query in a loop while a writer process commits updates: no failure, no half-applied state."""

from __future__ import annotations

import threading
from pathlib import Path

from search import Index

from .conftest import FakeEncoder
from .fault_harness import VOCAB, run_writer, write_corpus

N_DOCS = 20
UPDATES = 5


def _snapshot_versions(ix: Index) -> set[str]:
    """Versions seen through both halves of one opened index; a consistent snapshot has exactly one."""
    assert ix.keyword.count == ix.vectors.count == len(ix.chunks) == ix.manifest.counts.chunks
    assert len(ix.documents) == N_DOCS
    versions = set()
    for mode in ("keyword", "semantic", "hybrid"):
        for r in ix.search("version revision cat dog", mode=mode, k=50):
            assert ix.document(ix.chunk(r.chunk_id).doc).id == r.doc
            versions.update(w.strip(".,") for w in r.passage.split() if w.startswith("v") and w[1:-1].isdigit())
    versions.update(d.text.split(" in version ")[1].split(".")[0] for d in ix.documents)
    return versions


def test_readers_see_whole_updates_only(tmp_path: Path) -> None:
    corpus, folder = tmp_path / "corpus", tmp_path / "index"
    write_corpus(corpus, dict.fromkeys(range(N_DOCS), 1))
    assert run_writer(corpus, folder)[0] == 0

    stop = threading.Event()
    seen: list[str] = []
    errors: list[BaseException] = []
    reads = [0]

    def reader() -> None:
        enc = FakeEncoder(VOCAB)
        try:
            while not stop.is_set():
                with Index.open(folder, encoder=enc) as ix:
                    versions = _snapshot_versions(ix)
                    assert len(versions) == 1, f"mixed versions in one snapshot: {versions}"
                    seen.extend(versions)
                    reads[0] += 1
        except BaseException as exc:
            errors.append(exc)

    # one reader keeps a single index open through every update: its snapshot must never change
    held = Index.open(folder, encoder=FakeEncoder(VOCAB))
    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for version in range(2, UPDATES + 2):
            write_corpus(corpus, dict.fromkeys(range(N_DOCS), version))
            assert run_writer(corpus, folder)[0] == 0
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert reads[0] > UPDATES and len(set(seen)) >= 2
    assert _snapshot_versions(held) == {"v1"} and not held.is_current()
    held.close()
    with Index.open(folder, encoder=FakeEncoder(VOCAB)) as ix:
        assert _snapshot_versions(ix) == {f"v{UPDATES + 1}"} and ix.is_current()
