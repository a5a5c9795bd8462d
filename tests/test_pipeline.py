"""The writer's lanes: keyword indexing runs beside embedding, and a failure in either stops both."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from search import Index, build_index
from search.store import MANIFEST

from .conftest import FakeEncoder, Stages


class SlowEncoder(FakeEncoder):
    """Embeds a few texts at a time, slowly, and notes when it ran (and on which thread)."""

    def __init__(self, vocab: Sequence[str], delay: float = 0.01) -> None:
        super().__init__(vocab)
        self.delay = delay
        self.windows: list[tuple[float, float]] = []
        self.batches = 0
        self.threads: set[str] = set()

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        out = []
        self.threads.add(threading.current_thread().name)
        for i in range(0, len(texts), 8):
            t = time.perf_counter()
            time.sleep(self.delay)
            out.append(self.encode_queries(texts[i : i + 8]))
            self.windows.append((t, time.perf_counter()))
            self.batches += 1
            if progress:
                progress(len(texts[i : i + 8]))
        return np.vstack(out) if out else np.zeros((0, self.dim), np.float32)


def _corpus(folder: Path, docs: int) -> Path:
    folder.mkdir()
    words = ["cat", "dog", "ocean", "sea", "mountain"]
    for d in range(docs):
        sentences = [f"Sentence {s} of document {d} is about the {words[(d + s) % 5]}." for s in range(10)]
        (folder / f"doc{d:03d}.txt").write_text(" ".join(sentences) + "\n", encoding="utf-8")
    return folder


def test_keyword_indexing_runs_while_sentences_are_embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from search import components

    seen: list[tuple[float, str]] = []
    original = components.index_terms

    def noting(text: str, lang: str) -> list[str]:  # each sentence the keyword lane analyses, slowed to the
        seen.append((time.perf_counter(), threading.current_thread().name))  # embedding's pace
        time.sleep(0.004)
        return original(text, lang)

    monkeypatch.setattr(components, "index_terms", noting)
    enc = SlowEncoder(["cat", "dog", "ocean", "sea", "mountain"], delay=0.03)  # ~1.2 s of embedding
    build_index(_corpus(tmp_path / "c", 30), tmp_path / "idx", encoder=enc, lang="en")
    first, last = enc.windows[0][0], enc.windows[-1][1]
    during = [t for t, _ in seen if first < t < last]
    assert len(seen) == 300 + 30  # the sentences, then the titles
    assert len(during) > 100  # the sentences were analysed while the model was busy (sequentially: none)
    assert {name for _, name in seen} != {threading.current_thread().name}  # on a thread of its own
    assert threading.current_thread().name in enc.threads  # embedding stays on the writer's thread
    with Index.open(tmp_path / "idx", encoder=enc) as ix:
        assert len(ix.chunks) == 300
        assert ix.search("mountain", mode="keyword", k=3)


def test_a_failing_keyword_lane_stops_the_embedding_and_leaves_the_last_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from search.components import BM25Component

    corpus = _corpus(tmp_path / "c", 30)
    enc = SlowEncoder(["cat", "dog", "ocean", "sea", "mountain"])
    build_index(corpus, tmp_path / "idx", encoder=enc, lang="en")
    before = (tmp_path / "idx" / MANIFEST).read_text()
    for d in range(30):
        (corpus / f"doc{d:03d}.txt").write_text(f"Changed document {d} about the sea. " * 10, encoding="utf-8")

    def failing(*args, **kwargs):  # type: ignore[no-untyped-def]
        time.sleep(0.3)  # the embedding is under way by now
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BM25Component, "_write", failing)
    slow = SlowEncoder(["cat", "dog", "ocean", "sea", "mountain"], delay=0.05)
    t = time.perf_counter()
    with pytest.raises(Exception, match="No space left on device"):
        build_index(corpus, tmp_path / "idx", encoder=slow, lang="en")
    assert 0 < slow.batches < 15  # 300 sentences are 38 batches: the failure stopped the embedding
    assert time.perf_counter() - t < 1.5
    assert (tmp_path / "idx" / MANIFEST).read_text() == before
    assert [p.name for p in (tmp_path / "idx").iterdir() if p.name.startswith("g")] == [
        json.loads(before)["generation"]
    ]


def test_a_failing_embedding_stops_the_keyword_lane(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from search import components

    added: list[str] = []
    original = components.index_terms

    def counting(text: str, lang: str) -> list[str]:
        added.append(text)
        time.sleep(0.002)
        return original(text, lang)

    class Broken(SlowEncoder):
        def encode_passages(self, texts, progress=None):  # type: ignore[no-untyped-def]
            raise RuntimeError("the model failed")

    monkeypatch.setattr(components, "index_terms", counting)
    with pytest.raises(RuntimeError, match="the model failed"):
        build_index(_corpus(tmp_path / "c", 300), tmp_path / "idx", encoder=Broken(["cat"]), lang="en")
    assert len(added) < 3000  # cancelled well before its 3,000 sentences
    assert not (tmp_path / "idx").exists()  # a first build that failed leaves nothing


def test_reading_and_language_detection_report_progress(tiny_corpus: Path, tmp_path: Path) -> None:
    """Reading the files and detecting the documents' languages are stages of their own on the bar,
    counted to the end, before keyword indexing and embedding."""
    stages = Stages()
    build_index(tiny_corpus, tmp_path / "idx", encoder=FakeEncoder(["cat"]), progress=stages)
    assert stages.stages["reading files"] == [3, 3]
    assert stages.stages["detecting languages"] == [3, 3]
    assert list(stages.stages)[:2] == ["reading files", "detecting languages"]
    assert "indexing keywords" in stages.stages
    again = Stages()  # nothing new: the files are read, no language is detected
    build_index(tiny_corpus, tmp_path / "idx", encoder=FakeEncoder(["cat"]), progress=again)
    assert list(again.stages) == ["reading files"]
