"""Kill a real writer process at chosen or random moments and check what it leaves behind.

Used by tests/test_faults.py (a bounded, seeded run) and benchmarks/reliability.py (a longer one).
The writer runs ``build_index`` on real term matrices and faiss files in its own process; only the
embedding model is a fake (one-hot keyword vectors, slowed down so kills land inside embedding
as well as everywhere else).

Run as a module it is that writer: ``python -m tests.fault_harness CORPUS INDEX [--prune] [--delay S]``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VOCAB = ["cat", "dog", "ocean", "mountain", "truppen", "soldaten"]
CRASH_POINTS = ("bm25", "vectors", "before-commit", "after-commit")  # the components' names, then the commit's


def marker(i: int) -> str:
    """A word found in document ``i`` only."""
    return f"marker{i:04d}"


def write_corpus(folder: Path, docs: dict[int, int]) -> None:
    """One file per document number, its text depending on the document's version."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.txt"):
        if int(old.stem[3:]) not in docs:
            old.unlink()
    for i, version in docs.items():
        topic = VOCAB[i % len(VOCAB)]
        text = (
            f"Document {marker(i)} in version v{version}. It is about the {topic} and nothing else.\n\n"
            f"A second paragraph, {topic} again, revision v{version}. The end of {marker(i)}.\n"
        )
        (folder / f"doc{i:04d}.txt").write_text(text, encoding="utf-8")


def corpus_state(docs: dict[int, int]) -> dict[str, str]:
    """What an index of ``docs`` must hold: document id → the version word in its text."""
    return {f"doc{i:04d}.txt": f"v{v}" for i, v in docs.items()}


@dataclass
class Tally:
    """What a fault-injection run did."""

    kills: int = 0
    finished_before_kill: int = 0
    killed_in: dict[str, int] = field(default_factory=dict)
    killed_at: dict[str, int] = field(default_factory=dict)  # kills at each named crash point
    states_checked: int = 0
    documents_checked: int = 0
    documents_lost: int = 0
    half_applied: int = 0
    inconsistent: int = 0
    recoveries: int = 0
    notes: list[str] = field(default_factory=list)


PHASES = {
    "ready": "reading, hashing, language detection",
    "indexing keywords": "keyword index",
    "embedding sentences": "embedding",
    "embedded": "saving, fsync, commit, cleanup",
    "done": "write returned, process exiting",
}


def run_writer(
    corpus: Path,
    index: Path,
    *,
    prune: bool = False,
    delay: float = 0.002,
    crash_at: str | None = None,
    kill_after: float | None = None,
) -> tuple[int, float, str]:
    """Run the writer; kill it ``kill_after`` seconds after it is ready.

    Returns the exit code, the seconds it ran after being ready, and the phase it last reported.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("SEARCH_CRASH_AT", None)
    if crash_at:
        env["SEARCH_CRASH_AT"] = crash_at
    cmd = [sys.executable, "-m", "tests.fault_harness", str(corpus), str(index), "--delay", str(delay)]
    if prune:
        cmd.append("--prune")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)
    assert proc.stdout is not None
    lines = [proc.stdout.readline().strip()]
    started = time.perf_counter()
    reader = threading.Thread(target=lambda: lines.extend(line.strip() for line in proc.stdout), daemon=True)  # type: ignore[union-attr]
    reader.start()
    if lines[0] == "ready" and kill_after is not None:
        time.sleep(kill_after)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    elapsed = time.perf_counter() - started
    reader.join(timeout=10)
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"writer failed ({proc.returncode}): {stderr[-2000:]}")
    phase = next((PHASES[line] for line in reversed(lines) if line in PHASES), "starting")
    return proc.returncode, elapsed, phase


def verify(index: Path, allowed: Sequence[dict[str, str] | None], tally: Tally) -> dict[str, str] | None:
    """Check the committed index: consistent, exactly one allowed state, every document found.

    ``None`` in ``allowed`` means "no index committed yet" is acceptable. Returns the state found.
    """
    from search import Index
    from search.check import check_index
    from search.errors import IndexNotFoundError
    from tests.conftest import FakeEncoder

    tally.states_checked += 1
    try:
        ix = Index.open(index, encoder=FakeEncoder(VOCAB))
    except IndexNotFoundError:
        if None not in allowed:
            tally.documents_lost += len(allowed[0] or {})
            tally.notes.append(f"{index}: no committed index where one was expected")
        return None
    with ix:
        failed = [c for c in check_index(index) if not c.ok]
        if failed:
            tally.inconsistent += 1
            tally.notes.append("; ".join(f"{c.name}: {c.detail}" for c in failed))
        found = {d.id: d.text.split(" in version ")[1].split(".")[0] for d in ix.documents}
        if found not in allowed:
            tally.half_applied += 1
            tally.notes.append(f"state matches none of the allowed ones ({len(found)} documents)")
        for d in ix.documents:
            tally.documents_checked += 1
            word = d.text.split()[1]
            hits = ix.search(word, mode="keyword", k=3)
            sem = ix.search(word, mode="hybrid", k=50)
            if not any(h.doc == d.id for h in hits) or not any(h.doc == d.id for h in sem):
                tally.documents_lost += 1
                tally.notes.append(f"{d.id} not found by {word}")
    return found


def inject(
    tmp: Path,
    *,
    random_kills: int,
    seed: int,
    n_docs: int = 40,
    log: Callable[[str], None] | None = None,
) -> Tally:
    """Build, then update, killing the writer at every named crash point and at ``random_kills`` random moments.

    After each kill the index must be consistent and hold exactly the state before or after the
    write with every document findable, and a clean re-run must finish the job.
    """
    rng = random.Random(seed)
    tally = Tally()
    v1 = {i: 1 for i in range(n_docs)}
    v2 = {i: (2 if i % 3 == 0 else 1) for i in range(5, n_docs + 10)}  # 5 gone, a third changed, 10 new
    phases = [("build", None, v1, False), ("update", v1, v2, True)]
    for phase, before, after, prune in phases:
        start = tmp / f"start-{phase}"  # the committed index every case of this phase starts from
        _prepare(start, before)
        # how long an undisturbed write of this phase takes, to spread random kills over it
        probe = tmp / f"probe-{phase}"
        shutil.copytree(start, probe)
        write_corpus(probe / "corpus", after)
        _, duration, _ = run_writer(probe / "corpus", probe / "index", prune=prune)
        plan: list[tuple[str | None, float | None]] = [(point, None) for point in CRASH_POINTS]
        plan += [(None, rng.uniform(0.0, duration)) for _ in range(random_kills)]
        for n, (point, after_s) in enumerate(plan):
            case = tmp / f"{phase}-{n}"
            shutil.copytree(start, case)
            write_corpus(case / "corpus", after)
            code, _, last = run_writer(case / "corpus", case / "index", prune=prune, crash_at=point, kill_after=after_s)
            if code == -signal.SIGKILL:
                tally.kills += 1
                where = f"{last} (at crash point {point})" if point else last
                tally.killed_in[where] = tally.killed_in.get(where, 0) + 1
                if point:
                    tally.killed_at[point] = tally.killed_at.get(point, 0) + 1
            else:
                tally.finished_before_kill += 1
            allowed = [corpus_state(before) if before else None, corpus_state(after)]
            verify(case / "index", allowed, tally)
            run_writer(case / "corpus", case / "index", prune=prune)  # the next run finishes the job
            if verify(case / "index", [corpus_state(after)], tally) == corpus_state(after):
                tally.recoveries += 1
            if log:
                where = point or f"{after_s:.3f} s"
                log(f"{phase} kill at {where}: {'killed' if code else 'finished first'}")
    return tally


def _prepare(case: Path, before: dict[int, int] | None) -> None:
    """A fresh folder holding the committed index of ``before`` (or nothing)."""
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir(parents=True)
    if before:
        write_corpus(case / "corpus", before)
        code, _, _ = run_writer(case / "corpus", case / "index")
        assert code == 0


def _main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", type=Path)
    parser.add_argument("index", type=Path)
    parser.add_argument("--prune", action="store_true")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args(argv)

    from search.writer import build_index
    from tests.conftest import FakeEncoder

    class SlowEncoder(FakeEncoder):
        def encode_passages(self, texts, progress=None):  # type: ignore[no-untyped-def]
            out = []
            for i in range(0, len(texts), 4):
                time.sleep(args.delay)
                out.append(self.encode_queries(texts[i : i + 4]))
            print("embedded", flush=True)
            return np.vstack(out)

    class PhasePrinter:
        def start(self, task: str, total: int) -> None:
            print(task, flush=True)

        def advance(self, n: int) -> None:
            pass

    print("ready", flush=True)
    build_index(
        args.corpus, args.index, encoder=SlowEncoder(VOCAB), prune=args.prune, progress=PhasePrinter(), lang="en"
    )
    print("done", flush=True)


if __name__ == "__main__":
    _main()
