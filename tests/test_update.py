"""Incremental updates, removal, compaction, the writer lock and ``info --check``, on real on-disk indexes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from search import Index, build_index
from search.check import check_index
from search.cli import app
from search.errors import CorpusError, IndexBusyError, IndexFormatError, ModelMismatchError
from search.locks import WriterLock
from search.store import DOC_VECTORS, MANIFEST, VECTORS, generations
from search.vectors import VectorIndex
from search.writer import compact_index, remove_documents

from .conftest import ROOT, FakeEncoder

runner = CliRunner()


class CountingEncoder(FakeEncoder):
    """Records every text it embeds."""

    def __init__(self, vocab: Sequence[str]) -> None:
        super().__init__(vocab)
        self.seen: list[str] = []

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        self.seen.extend(texts)
        return super().encode_passages(texts, progress)


VOCAB = ["cat", "dog", "ocean", "sea", "mountain", "truppen", "soldaten"]


def _ok(folder: Path) -> None:
    failed = [c for c in check_index(folder) if not c.ok]
    assert failed == []


def test_update_embeds_only_new_and_changed(tmp_path: Path, tiny_corpus: Path) -> None:
    enc = CountingEncoder(VOCAB)
    folder = tmp_path / "idx"
    first = build_index(tiny_corpus, folder, encoder=enc)
    assert (first.added, first.updated, first.unchanged) == (3, 0, 0)
    assert len(enc.seen) == first.chunks + first.documents  # every sentence, and each document's own vector

    enc.seen.clear()
    again = build_index(tiny_corpus, folder, encoder=enc)
    assert not again.committed and enc.seen == [] and again.unchanged == 3
    assert json.loads((folder / MANIFEST).read_text())["generation"] == first.generation

    (tiny_corpus / "animals.txt").write_text("The cat is hungry today. A dog sleeps.\n", encoding="utf-8")
    (tiny_corpus / "new.txt").write_text("Mountains and an ocean view.\n", encoding="utf-8")
    upd = build_index(tiny_corpus, folder, encoder=enc)
    assert (upd.added, upd.updated, upd.removed, upd.unchanged) == (1, 1, 0, 2)
    sentences = ["The cat is hungry today.", "A dog sleeps.", "Mountains and an ocean view."]
    assert sorted(t for t in enc.seen if t in sentences) == sorted(sentences)
    documents = sorted(t for t in enc.seen if t not in sentences)  # title, newline, text
    assert len(documents) == 2
    assert documents[0].endswith("\nThe cat is hungry today. A dog sleeps.\n")
    assert documents[1].endswith("\nMountains and an ocean view.\n")
    _ok(folder)
    with Index.open(folder, encoder=enc) as ix:
        assert {d.id for d in ix.documents} == {"animals.txt", "sea.md", "page.html", "new.txt"}
        assert ix.search("hungry", mode="keyword")[0].doc == "animals.txt"
        assert ix.search("sofa", mode="keyword") == []  # the old version's words are gone from both sides
        assert all("sofa" not in r.passage for r in ix.search("cat", mode="semantic", k=20))
    assert [g.name for g in generations(folder)] == [upd.generation]  # older generations were collected


def test_vanished_documents_stay_unless_pruned(tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> None:
    folder = tmp_path / "idx"
    build_index(tiny_corpus, folder, encoder=fake_encoder)
    (tiny_corpus / "page.html").unlink()
    kept = build_index(tiny_corpus, folder, encoder=fake_encoder)
    assert kept.documents == 3 and kept.removed == 0
    pruned = build_index(tiny_corpus, folder, encoder=fake_encoder, prune=True)
    assert pruned.documents == 2 and pruned.removed == 1
    _ok(folder)
    with Index.open(folder, encoder=fake_encoder) as ix:
        assert ix.search("ocean", mode="keyword") == []


def test_remove_and_compact(tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> None:
    folder = tmp_path / "idx"
    build_index(tiny_corpus, folder, encoder=fake_encoder)
    report, missing = remove_documents(folder, ["sea.md", "nope.txt"])
    assert report.removed == 1 and missing == ["nope.txt"]
    _ok(folder)
    with Index.open(folder, encoder=fake_encoder) as ix:
        assert ix.search("Soldaten", mode="keyword") == [] and ix.search("soldaten", mode="semantic", k=5)
        assert ix.keyword.count == len(ix.chunks)  # the removed document's rows are gone from the matrices
    before, after = compact_index(folder)
    assert after <= before
    _ok(folder)
    with Index.open(folder, encoder=fake_encoder) as ix:
        assert ix.keyword.count == ix.vectors.count == len(ix.chunks)
    result = runner.invoke(app, ["remove", "nope.txt", "--index", str(folder)])
    assert result.exit_code == 2 and result.output.splitlines() == ["error: not in the index: nope.txt"]


def test_new_language_in_an_update(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "de.txt").write_text("Die Soldaten stehen am Meer und warten auf den Befehl.\n", encoding="utf-8")
    folder = tmp_path / "idx"
    build_index(corpus, folder, encoder=fake_encoder)
    (corpus / "fr.txt").write_text("Les soldats attendent au bord de la mer depuis le matin.\n", encoding="utf-8")
    report = build_index(corpus, folder, encoder=fake_encoder)
    assert set(report.languages) == {"de", "fr"}
    _ok(folder)
    with Index.open(folder, encoder=fake_encoder) as ix:
        assert [r.doc for r in ix.search("matins", mode="keyword")] == ["fr.txt"]
        assert [r.doc for r in ix.search('"attendent au bord"', mode="keyword")] == ["fr.txt"]  # a phrase too


def test_other_model_needs_rebuild(tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> None:
    folder = tmp_path / "idx"
    build_index(tiny_corpus, folder, encoder=fake_encoder)
    other = FakeEncoder(VOCAB, name="other", fingerprint="other-1")
    with pytest.raises(ModelMismatchError, match="--rebuild"):
        build_index(tiny_corpus, folder, encoder=other)
    report = build_index(tiny_corpus, folder, encoder=other, rebuild=True)
    assert report.added == 3
    assert json.loads((folder / MANIFEST).read_text())["model"]["name"] == "other"
    _ok(folder)


def test_old_format_says_rebuild_and_rebuild_replaces_it(
    tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder
) -> None:
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / MANIFEST).write_text(json.dumps({"format_version": 1}))
    (folder / "docs.jsonl").write_text("{}\n")
    (folder / "keyword").mkdir()
    with pytest.raises(IndexFormatError, match="--rebuild"):
        build_index(tiny_corpus, folder, encoder=fake_encoder)
    with pytest.raises(IndexFormatError, match="--rebuild"):
        Index.open(folder)
    build_index(tiny_corpus, folder, encoder=fake_encoder, rebuild=True)
    assert not (folder / "docs.jsonl").exists() and not (folder / "keyword").exists()
    _ok(folder)


def test_second_writer_is_refused_with_the_pid(tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> None:
    folder = tmp_path / "idx"
    build_index(tiny_corpus, folder, encoder=fake_encoder)
    with WriterLock(folder):
        with pytest.raises(IndexBusyError, match=f"PID {os.getpid()}"):
            build_index(tiny_corpus, folder, encoder=fake_encoder)
        result = runner.invoke(app, ["compact", "--index", str(folder)])
        assert result.exit_code == 6 and "being written by PID" in result.output
        with Index.open(folder, encoder=fake_encoder) as ix:  # readers are not blocked
            assert ix.search("cat", mode="keyword")
    build_index(tiny_corpus, folder, encoder=fake_encoder, prune=True)  # released


def test_dead_writer_leaves_no_stuck_lock(tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> None:
    folder = tmp_path / "idx"
    build_index(tiny_corpus, folder, encoder=fake_encoder)
    holder = (
        "import sys, time; from pathlib import Path; from search.locks import WriterLock\n"
        "with WriterLock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", holder, str(folder)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    with pytest.raises(IndexBusyError, match=f"PID {proc.pid}"):
        build_index(tiny_corpus, folder, encoder=fake_encoder, rebuild=True)
    proc.kill()
    proc.wait()
    time.sleep(0.05)
    assert build_index(tiny_corpus, folder, encoder=fake_encoder, rebuild=True).committed


def test_check_finds_halves_that_disagree(tmp_path: Path, tiny_corpus: Path, fake_encoder: FakeEncoder) -> None:
    folder = tmp_path / "idx"
    build_index(tiny_corpus, folder, encoder=fake_encoder)
    result = runner.invoke(app, ["info", "--check", "--index", str(folder)])
    assert result.exit_code == 0 and "consistent" in result.output
    gen = folder / json.loads((folder / MANIFEST).read_text())["generation"]
    vec = VectorIndex.load(gen / VECTORS, fake_encoder.dim)
    vec.remove(np.array([0, 1], dtype=np.int64))
    vec.save(gen / VECTORS)
    docs = VectorIndex.load(gen / DOC_VECTORS, fake_encoder.dim)
    docs.remove(np.array([2], dtype=np.int64))
    docs.save(gen / DOC_VECTORS)
    result = runner.invoke(app, ["info", "--check", "--json", "--index", str(folder)])
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    failed = {c["name"]: c["detail"] for c in report["checks"] if not c["ok"]}
    assert report["ok"] is False and "2 chunk ids missing" in failed["vector ids = chunk ids"]
    assert "1 documents missing" in failed["document vector ids = document nums"]
    (gen / "bm25_docs.npz").unlink()
    result = runner.invoke(app, ["info", "--check", "--index", str(folder)])
    assert result.exit_code == 3 and "FAIL" in result.output


def test_foreign_folder_and_failed_first_build_leave_nothing(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bin.txt").write_bytes(b"\x00\x01")
    with pytest.raises(CorpusError, match="binary"):
        build_index(tmp_path / "c", tmp_path / "idx", encoder=fake_encoder)
    assert not (tmp_path / "idx").exists()


def test_unwritable_index_and_missing_index_are_one_line_errors(tmp_path: Path, tiny_corpus: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    result = runner.invoke(app, ["index", str(tiny_corpus), "--index", str(blocker / "idx")])
    assert result.exit_code == 3 and "cannot write the index" in result.output
    for cmd in (["remove", "x"], ["compact"]):
        result = runner.invoke(app, [*cmd, "--index", str(tmp_path / "none")])
        assert result.exit_code == 3 and "no index" in result.output
    assert not (tmp_path / "none").exists()


class HashEncoder:
    """A deterministic pseudo-random unit vector per text: no ties, so top-k is one well-defined answer."""

    name, fingerprint, dim = "hash", "hash-1", 24

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        rows = [
            np.random.default_rng(list(hashlib.sha256(t.encode()).digest())).standard_normal(self.dim) for t in texts
        ]
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def encode_passages(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        if progress:
            progress(len(texts))
        return self.encode_queries(texts)


def _hnsw_recall(folder: Path, enc: HashEncoder, texts: list[str], k: int = 10) -> float:
    """Mean recall@k of the index's semantic top k (its HNSW graph) against exact search, done here in numpy."""
    passages = enc.encode_passages(texts)
    recalls = []
    with Index.open(folder, encoder=enc) as ix:
        assert ix.vectors.ann is not None  # the graph answers, not the flat index
        for j in range(25):
            query = f"question {j}"
            cosines = passages @ enc.encode_queries([query])[0]
            exact = {texts[i] for i in np.argsort(-cosines)[:k]}
            # the sentence alone (doc_weight 0), one sentence per passage: the ranking is the vectors'
            found = ix.search(query, mode="semantic", k=k, candidates=k, doc_weight=0, window=0)
            assert len(found) == k and all(r.passage in texts for r in found)
            for r in found:  # the graph's scores are the exact cosines of what it found
                assert r.semantic_score == pytest.approx(float(cosines[texts.index(r.passage)]), abs=1e-5)
            recalls.append(len(exact & {r.passage for r in found}) / k)
    return float(np.mean(recalls))


def test_hnsw_graph_above_the_threshold_finds_what_exact_search_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import search.components

    monkeypatch.setattr(search.components, "HNSW_MIN", 1)
    enc = HashEncoder()
    texts = [f"Line {i} of the corpus names item {i * 7919 % 1000}." for i in range(400)]
    corpus = tmp_path / "c" / "docs.jsonl"
    corpus.parent.mkdir()

    def write(keep: list[str]) -> None:  # one single-sentence document per text
        corpus.write_text("".join(json.dumps({"_id": t, "text": t}) + "\n" for t in keep), encoding="utf-8")

    folder = tmp_path / "idx"
    write(texts[:300])
    report = build_index(corpus, folder, encoder=enc)
    assert report.chunks == 300 and (folder / report.generation / "vectors.hnsw").exists()
    assert _hnsw_recall(folder, enc, texts[:300]) >= 0.95
    # an update adds 100 and prunes 50: the next generation's graph holds exactly the current sentences
    write(texts[50:])
    report = build_index(corpus, folder, encoder=enc, prune=True)
    assert (report.added, report.removed) == (100, 50)
    assert (folder / report.generation / "vectors.hnsw").exists()
    _ok(folder)
    assert _hnsw_recall(folder, enc, texts[50:]) >= 0.95
    monkeypatch.setattr(search.components, "HNSW_MIN", 10**9)
    report = build_index(corpus, folder, encoder=enc, rebuild=True)
    assert not (folder / report.generation / "vectors.hnsw").exists()
