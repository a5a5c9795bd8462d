"""The write commands through the CLI: `search index` options, `search remove`, `search compact`.

Each test drives ``search.cli.app`` with typer's runner and checks the effect on the index with
``search info`` / ``search query`` / the public ``Index`` API, not with the writer's internals.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from search.cli import app

runner = CliRunner()
pytestmark = pytest.mark.model


def _write_corpus(folder: Path, docs: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _cached_vectors(folder: Path) -> int:
    """Rows in every embedding-cache file under ``folder`` (0 if there is none)."""
    total = 0
    for db in folder.glob("*.sqlite"):
        with sqlite3.connect(db) as con:
            total += int(con.execute("SELECT COUNT(*) FROM vectors").fetchone()[0])
    return total


def _poison(folder: Path) -> None:
    """Overwrite every cached vector with the same unit vector: a build that reads them ranks all sentences alike."""
    for db in folder.glob("*.sqlite"):
        with sqlite3.connect(db) as con:
            for key, blob in con.execute("SELECT key, vec FROM vectors").fetchall():
                vec = np.zeros(len(blob) // 4, dtype=np.float32)
                vec[0] = 1.0
                con.execute("UPDATE vectors SET vec = ? WHERE key = ?", (vec.tobytes(), key))


def _similarities(index: Path, text: str) -> list[float]:
    options = ["--mode", "semantic", "--doc-weight", "0", "--no-dedupe", "--json", "-k", "10"]
    result = runner.invoke(app, ["query", text, *options, "--index", str(index)])
    assert result.exit_code == 0, result.output
    return [r["evidence"]["similarity"] for r in json.loads(result.stdout)["results"]]


def _index(*args: str) -> str:
    result = runner.invoke(app, ["index", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _info(index: Path) -> dict:
    result = runner.invoke(app, ["info", "--json", "--index", str(index)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# -- --no-cache ------------------------------------------------------------------------------


def test_no_cache_neither_reads_nor_writes_the_embedding_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    emb = tmp_path / "embeddings"
    monkeypatch.setenv("SEARCH_EMBEDDINGS_DIR", str(emb))
    corpus = _write_corpus(
        tmp_path / "corpus",
        {"a.txt": "The cat sleeps on the sofa. A dog barks at the postman.\n",
         "b.txt": "Die Soldaten stehen am Meer. Der Berg ist hoch.\n"},
    )  # fmt: skip
    sentences = 4

    # a cold build with --no-cache leaves the cache empty
    out = _index(str(corpus), "--index", str(tmp_path / "a"), "--no-cache")
    assert f"indexed 2 documents, {sentences} sentences" in out
    assert _cached_vectors(emb) == 0, "--no-cache wrote to the embedding cache"

    # the control: a cached build fills it (sentences and the two document vectors)...
    out = _index(str(corpus), "--index", str(tmp_path / "b"))
    assert "from the cache" not in out
    assert _cached_vectors(emb) == sentences + 2
    # ...and a cached rebuild reads it back, and says so
    out = _index(str(corpus), "--index", str(tmp_path / "b"), "--rebuild")
    assert f"{sentences} of {sentences} sentences from the cache" in out

    # with --no-cache the same rebuild embeds everything again: no hits reported
    out = _index(str(corpus), "--index", str(tmp_path / "a"), "--no-cache", "--rebuild")
    assert f"indexed 2 documents, {sentences} sentences" in out
    assert "from the cache" not in out, out

    # and no cached vector is read: with every cached vector replaced by one and the same, a
    # cached rebuild ranks all sentences alike, a --no-cache rebuild still tells them apart
    _poison(emb)
    _index(str(corpus), "--index", str(tmp_path / "b"), "--rebuild")
    assert len(set(_similarities(tmp_path / "b", "a sleeping cat"))) == 1
    _index(str(corpus), "--index", str(tmp_path / "a"), "--no-cache", "--rebuild")
    sims = _similarities(tmp_path / "a", "a sleeping cat")
    assert len(sims) == sentences and len(set(sims)) == sentences, sims
