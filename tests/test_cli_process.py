"""`python -m search` as a real process: internal errors (exit 70, SEARCH_DEBUG), Ctrl-C (exit 130,
the previous index intact), and SEARCH_CACHE_DIR for the default model's one-time conversion.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from search.cli import app

from .conftest import ROOT, interruptible
from .test_cli_eval import big_docs

pytestmark = pytest.mark.model

INTERNAL = "internal error: RuntimeError: boom from a test (set SEARCH_DEBUG=1 for a traceback)"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SEARCH_DEBUG", "COLUMNS")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def _search(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "search", *args], cwd=ROOT, env=env or _env(), capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def _patched(exc: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`search ARGS` in a process where opening an index raises ``exc`` (a bug the CLI does not expect)."""
    code = (
        "import sys\n"
        "import search.index\n"
        "def broken(*args, **kwargs):\n"
        f"    raise {exc}\n"
        "search.index.Index.open = broken\n"
        f"sys.argv = ['search', *{list(args)!r}]\n"
        "from search.cli import main\n"
        "main()\n"
    )
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


# -- exit 70 and SEARCH_DEBUG --------------------------------------------------------------------


def test_internal_error_is_one_message_and_exit_70(tmp_path: Path) -> None:
    proc = _patched('RuntimeError("boom from a test")', "info", "--index", str(tmp_path), env=_env())
    assert proc.returncode == 70, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert " ".join(proc.stderr.split()) == INTERNAL


def test_internal_error_is_a_single_line(tmp_path: Path) -> None:
    proc = _patched('RuntimeError("boom from a test")', "info", "--index", str(tmp_path), env=_env())
    assert proc.stderr.splitlines() == [INTERNAL]


def test_search_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = _patched('RuntimeError("boom from a test")', "info", "--index", str(tmp_path), env=_env(SEARCH_DEBUG="1"))
    assert proc.returncode == 1, proc.stderr  # Python's own exit for an uncaught exception
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert proc.stderr.rstrip().splitlines()[-1] == "RuntimeError: boom from a test"
    assert "internal error" not in proc.stderr


def test_user_errors_are_not_internal(tmp_path: Path) -> None:
    # the control: an error the engine knows keeps its own code, with or without SEARCH_DEBUG
    for env in (_env(), _env(SEARCH_DEBUG="1")):
        proc = _search("info", "--index", str(tmp_path / "none"), env=env)
        assert proc.returncode == 3 and proc.stderr.startswith("error: no index at")
        assert "Traceback" not in proc.stderr


def test_index_and_eval_errors_are_one_line_when_piped(tmp_path: Path) -> None:
    # their progress display, cleared when the command fails, left a blank line before the error
    (tmp_path / "empty").mkdir()
    proc = _search("index", str(tmp_path / "empty"), "--index", str(tmp_path / "idx"), env=_env())
    assert proc.returncode == 2 and proc.stderr.splitlines() == [f"error: nothing to index in {tmp_path / 'empty'}"]
    proc = _search("eval", str(tmp_path / "none.jsonl"), "--index", str(tmp_path / "idx"), env=_env())
    assert proc.returncode != 0 and len(proc.stderr.splitlines()) == 1, proc.stderr


# -- Ctrl-C ----------------------------------------------------------------------------------------


def test_ctrl_c_says_interrupted(tmp_path: Path) -> None:
    proc = _patched("KeyboardInterrupt", "info", "--index", str(tmp_path), env=_env())
    assert proc.returncode == 130
    assert "interrupted" in proc.stderr


def test_ctrl_c_during_index_keeps_the_previous_index(tmp_path: Path) -> None:
    index = tmp_path / "idx"
    small = tmp_path / "small"
    small.mkdir()
    (small / "note.txt").write_text("The cat sleeps on the sofa. A dog barks at the postman.\n", encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["index", str(small), "--index", str(index)]).exit_code == 0
    entries = sorted(p.name for p in index.iterdir())
    manifest = (index / "manifest.json").read_text()

    big = small / "big.jsonl"  # added to the same corpus: an update of some seconds, still interrupted mid-way
    docs = big_docs(3, 1500)  # (under 5,000 sentences: the keyword lane stays in this process)
    big.write_text("".join(json.dumps({"_id": k, "text": v}) + "\n" for k, v in docs.items()), encoding="utf-8")
    command = [sys.executable, "-m", "search", "index", str(small), "--index", str(index), "--no-cache"]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=interruptible,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (index / "g000002").exists():  # the writer has started the next generation
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        assert proc.poll() is None, "the update finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "internal error" not in stderr

    # the previous index, untouched, and nothing half-written beside it
    assert sorted(p.name for p in index.iterdir()) == entries
    assert (index / "manifest.json").read_text() == manifest
    check = runner.invoke(app, ["info", "--check", "--index", str(index)])
    assert check.exit_code == 0 and "consistent" in check.output, check.output
    info = json.loads(runner.invoke(app, ["info", "--json", "--index", str(index)]).stdout)
    assert info["counts"]["documents"] == 1 and info["generation"] == "g000001"
    found = runner.invoke(app, ["query", "cat", "--mode", "keyword", "--json", "--index", str(index)])
    assert [r["doc"] for r in json.loads(found.stdout)["results"]] == ["note.txt"]
    # and the writer's lock went with the process: the next writer is not told the index is busy
    remove = runner.invoke(app, ["remove", "no-such-doc", "--index", str(index)])
    assert remove.exit_code == 2 and "not in the index: no-such-doc" in remove.output


# -- SEARCH_CACHE_DIR: the default model is converted and exported there ------------------------------


def test_search_cache_dir_receives_the_converted_default_model(tmp_path: Path) -> None:
    """A cold cache: the default model is converted and exported once (some tens of seconds), then reused."""
    cache, default_home = tmp_path / "cache", tmp_path / "xdg"
    env = _env(SEARCH_CACHE_DIR=str(cache), XDG_CACHE_HOME=str(default_home))
    env.pop("SEARCH_EMBEDDINGS_DIR", None)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "note.txt").write_text("Die Soldaten stehen am Meer. Der Berg ist hoch.\n", encoding="utf-8")
    try:
        first = _search("index", str(corpus), "--index", str(tmp_path / "a"), env=env, timeout=600)
        assert first.returncode == 0, first.stderr
        converted = [p.parent for p in (cache / "models").rglob("modules.json")]
        exported = list((cache / "models").rglob("*.onnx"))
        assert converted and exported, sorted(str(p) for p in (cache / "models").rglob("*"))
        assert list((cache / "embeddings").glob("*.sqlite"))
        assert not (default_home / "hybrid-search").exists()  # (onnxruntime keeps its own files there)
        models = {p: p.stat().st_mtime_ns for p in (cache / "models").rglob("*") if p.is_file()}

        second = _search("index", str(corpus), "--index", str(tmp_path / "b"), env=env)
        assert second.returncode == 0, second.stderr
        assert "2 of 2 sentences from the cache" in second.stderr
        assert {p: p.stat().st_mtime_ns for p in (cache / "models").rglob("*") if p.is_file()} == models
        query = _search("query", "Soldaten", "--json", "--index", str(tmp_path / "b"), env=env)
        assert json.loads(query.stdout)["results"][0]["doc"] == "note.txt"
    finally:
        shutil.rmtree(cache, ignore_errors=True)  # several hundred MB
