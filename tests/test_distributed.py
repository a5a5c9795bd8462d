"""A sharded build on a real local Ray cluster (issue 15, item 5): a head node with 0 CPUs and two
worker nodes with 1 CPU each, every address on 127.0.0.1 (the ``cluster`` fixture in conftest.py,
started and stopped by its own handle, never ``ray stop``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from search import build_index, open_index
from search.cli import app
from search.distributed import RayRunner
from search.sharding import build_sharded
from search.shards import SHARDS, ShardsManifest, shard_name
from search.store import CHUNKS, DOCS, VECTORS, load_chunks, load_documents
from search.vectors import VectorIndex

from .conftest import Stages

pytestmark = pytest.mark.distributed
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "xquad-de"
DOCUMENTS = Path(__file__).parent / "fixtures" / "documents"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("xquad80")
    rows = (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:80]
    (folder / "corpus.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def _vectors(folder: Path, shard: int | None = None) -> dict[int, np.ndarray]:
    if shard is None:
        gen = folder / json.loads((folder / "manifest.json").read_text())["generation"]
    else:
        gen = folder / shard_name(shard) / ShardsManifest.read(folder).shards[shard].generation
    vi = VectorIndex.load(gen / VECTORS, 384)
    ids = vi.ids().tolist()
    return dict(zip(ids, vi.vectors(ids), strict=True))


def test_ray_build_is_bitwise_one_machine(cluster: Any, tmp_path: Path, corpus: Path, real_encoder: Any) -> None:
    build_index(corpus, tmp_path / "one", encoder=real_encoder)
    with RayRunner(cluster.address) as runner:
        report = build_sharded(corpus, tmp_path / "sh", 2, encoder=real_encoder, embed=runner.embed, prepare=runner)
    assert report.documents == 80
    one = _vectors(tmp_path / "one")
    sharded = {**_vectors(tmp_path / "sh", 0), **_vectors(tmp_path / "sh", 1)}
    assert sorted(sharded) == sorted(one)
    assert all(np.array_equal(one[i], sharded[i]) for i in one)  # bitwise: the same batches ran
    with (
        open_index(tmp_path / "one", encoder=real_encoder) as a,
        open_index(tmp_path / "sh", encoder=real_encoder) as b,
    ):
        for q in ["Wer baute die Eisenbahn?", "Fluss Rhein Quelle", "Universität"]:
            ra, rb = a.search(q, k=10), b.search(q, k=10)
            assert [(r.doc, r.start) for r in ra] == [(r.doc, r.start) for r in rb]
            assert [r.score for r in ra] == pytest.approx([r.score for r in rb], abs=1e-6)


def _shard_contents(folder: Path) -> list[tuple[list[Any], list[list[int]]]]:
    out = []
    for i, m in enumerate(ShardsManifest.read(folder).shards):
        gen = folder / shard_name(i) / m.generation
        out.append((load_documents(gen / DOCS), load_chunks(gen / CHUNKS).rows.tolist()))
    return out


def test_reading_and_splitting_run_on_the_workers(
    cluster: Any, tmp_path: Path, corpus: Path, fake_encoder: Any
) -> None:
    """Reading (every format, a duplicate id, a binary file, broken PDFs), language detection and
    sentence splitting as Ray Data tasks on the workers give the documents, notes and sentences of a
    build that runs them here, in the same order."""
    mixed = tmp_path / "mixed"
    shutil.copytree(DOCUMENTS, mixed / "documents", ignore=shutil.ignore_patterns("*.py"))
    shutil.copy(corpus / "corpus.jsonl", mixed / "xquad.jsonl")
    (mixed / "again.jsonl").write_text((corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[3] + "\n")
    (mixed / "binary.txt").write_bytes(b"\x00\x01\x02 not text")
    (mixed / "notes").mkdir()
    for n in range(30):
        german = f"Notiz {n}. Der Termin ist am 3. Mai. Dr. Meier kommt um 9 Uhr."
        text = german if n % 2 else f"Note {n}. See you, Mr. Lee, at the station."
        (mixed / "notes" / f"{n:02}.txt").write_text(text + "\n", encoding="utf-8")
    here = build_sharded(mixed, tmp_path / "here", 2, encoder=fake_encoder)
    stages = Stages()
    with RayRunner(cluster.address) as runner:
        there = build_sharded(
            mixed, tmp_path / "ray", 2, encoder=fake_encoder, embed=runner.embed, prepare=runner, progress=stages
        )
    assert runner.processes and os.getpid() not in runner.processes
    files = sum(1 for f in mixed.rglob("*") if f.is_file())
    assert stages.stages["reading files"] == [files, files]  # counted as each task finished
    assert stages.stages["detecting languages"] == [there.documents] * 2
    assert there.documents == here.documents > 110
    assert [(s.source, s.reason, s.indexed) for s in there.skipped] == [
        (s.source, s.reason, s.indexed) for s in here.skipped
    ]
    assert any("duplicate document id" in s.reason for s in here.skipped)
    assert any(s.source.endswith("binary.txt") for s in here.skipped)
    assert there.languages == here.languages and set(here.languages) >= {"de", "en"}
    assert {k: (f.documents, f.pages) for k, f in there.formats.items()} == {
        k: (f.documents, f.pages) for k, f in here.formats.items()
    }
    assert _shard_contents(tmp_path / "ray") == _shard_contents(tmp_path / "here")


def test_a_worker_killed_mid_build_is_retried(cluster: Any, tmp_path: Path, corpus: Path, real_encoder: Any) -> None:
    """A worker process killed while batches are in flight: Ray restarts the actor and runs its
    batches again; the vectors are still the one-machine ones."""
    texts = [json.loads(line)["text"] for line in (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    killed: list[int] = []
    with RayRunner(cluster.address) as runner:

        def progress(n: int) -> None:
            if not killed and runner.workers:
                import ray

                pid = ray.get(runner.workers[0].pid.remote())
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        got = runner.embed(real_encoder, texts * 3, progress)
    assert killed
    assert np.array_equal(got, real_encoder.encode_passages(texts * 3))


def test_a_failed_ray_build_keeps_the_previous_generation(
    cluster: Any, tmp_path: Path, corpus: Path, real_encoder: Any
) -> None:
    folder = tmp_path / "sh"
    half = tmp_path / "half"
    half.mkdir()
    rows = (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    (half / "corpus.jsonl").write_text("\n".join(rows[:40]) + "\n", encoding="utf-8")
    with RayRunner(cluster.address) as runner:
        build_sharded(half, folder, 2, encoder=real_encoder, embed=runner.embed)
        before = (folder / SHARDS).read_bytes()

        def dies(*args: Any) -> Any:
            raise RuntimeError("the cluster went away")

        with pytest.raises(RuntimeError):
            build_sharded(corpus, folder, 2, encoder=real_encoder, embed=dies)
    assert (folder / SHARDS).read_bytes() == before
    with open_index(folder, encoder=real_encoder) as ix:
        assert len(ix.documents) == 40


def test_cli_ray_local_starts_and_stops_its_own_cluster(tmp_path: Path, corpus: Path, real_encoder: Any) -> None:
    """`--ray local` in a process of its own: a loopback cluster started and stopped by the command,
    vectors bitwise those of a one-machine build."""
    import subprocess
    import sys

    small = tmp_path / "c"
    small.mkdir()
    rows = (corpus / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    (small / "corpus.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "search", "index", str(small), "--index", str(tmp_path / "sh"), "--shards", "2"]
    done = subprocess.run(
        [*cmd, "--ray", "local", "--no-cache", "--json"], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["documents"] == 20
    build_index(small, tmp_path / "one", encoder=real_encoder)
    one = _vectors(tmp_path / "one")
    sharded = {**_vectors(tmp_path / "sh", 0), **_vectors(tmp_path / "sh", 1)}
    assert sorted(sharded) == sorted(one) and all(np.array_equal(one[i], sharded[i]) for i in one)


def test_cli_ray_local_and_unreachable(tmp_path: Path, corpus: Path) -> None:
    """--ray with an address nobody listens on is one line; the test cluster is left alone."""
    free = __import__("socket").socket()
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    result = CliRunner().invoke(
        app, ["index", str(corpus), "--index", str(tmp_path / "x"), "--shards", "2", "--ray", f"127.0.0.1:{port}"]
    )
    assert result.exit_code == 1 and "cannot reach the Ray cluster" in result.output
    assert not (tmp_path / "x").exists()
    shutil.rmtree(tmp_path / "x", ignore_errors=True)
