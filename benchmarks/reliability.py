"""Issue 3's fault-injection run: kill a real writer at many points and count what is lost.

A build of 40 documents and then an update (5 removed with --prune, a third changed, 10 added)
are each interrupted by SIGKILL at every named point of the commit protocol (after the keyword
index, after the vectors, just before and just after the manifest rename) and at N random
moments (seeded; uniform over an undisturbed write's duration). After every kill the index is
checked (`info --check`'s checks), its state must be exactly the one before or the one after the
write, every document in it must be found by its own unique word (keyword and hybrid), and a
clean re-run must finish the job. Only the embedding model is a fake; the term matrices and faiss are real.

    python benchmarks/reliability.py [--kills 40] [--seed 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import stamp, write_results

from tests.fault_harness import CRASH_POINTS, inject


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=40, help="random kills per phase (build, update)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tally = inject(Path(tmp), random_kills=args.kills, seed=args.seed, log=print)
    seconds = time.perf_counter() - t
    cases = 2 * (len(CRASH_POINTS) + args.kills)
    figures = {
        **stamp(f"python benchmarks/reliability.py --kills {args.kills} --seed {args.seed}"),
        "cases": cases,
        "kills": tally.kills,
        "finished_before_kill": tally.finished_before_kill,
        "killed_in": dict(sorted(tally.killed_in.items())),
        "states_checked": tally.states_checked,
        "documents_checked": tally.documents_checked,
        "documents_lost": tally.documents_lost,
        "half_applied_states": tally.half_applied,
        "inconsistent_states": tally.inconsistent,
        "recovered_by_next_run": tally.recoveries,
        "seconds": round(seconds, 1),
        "notes": tally.notes,
    }
    skip = ("notes", "command", "killed_in")
    rows = "\n".join(f"| {k.replace('_', ' ')} | {v} |" for k, v in figures.items() if k not in skip)
    phases = "\n".join(f"| {k} | {v} |" for k, v in sorted(tally.killed_in.items()))
    write_results(
        "reliability",
        figures,
        "# Fault injection\n\n"
        f"`{figures['command']}`\n\n"
        + (__doc__ or "").split("\n\n")[1].replace("\n", " ")
        + "\n\n| figure | value |\n|---|---|\n"
        + rows
        + "\n\nWhere the writer was when it died (the last phase it reported):\n\n| phase | kills |\n|---|---|\n"
        + phases
        + "\n\n"
        + ("Problems: " + "; ".join(tally.notes) if tally.notes else "No problems found.")
        + "\n",
    )


if __name__ == "__main__":
    main()
