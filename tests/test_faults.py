"""Fault injection: the writer is SIGKILLed at named points and at seeded random moments."""

from __future__ import annotations

from pathlib import Path

from .fault_harness import CRASH_POINTS, inject


def test_killed_writer_never_loses_or_half_applies(tmp_path: Path) -> None:
    tally = inject(tmp_path, random_kills=3, seed=20261125, n_docs=30)
    assert tally.notes == []
    assert tally.killed_at == dict.fromkeys(CRASH_POINTS, 2)  # every named point kills, in the build and the update
    assert tally.kills >= 2 * len(CRASH_POINTS)  # random ones may come too late
    assert tally.documents_lost == tally.half_applied == tally.inconsistent == 0
    assert tally.recoveries == 2 * (len(CRASH_POINTS) + 3)
    assert tally.documents_checked > 0
