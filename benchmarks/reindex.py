"""Re-indexing cost: an unchanged corpus, and a full rebuild whose sentences are all in the embedding cache.

On scifact (5,183 abstracts, 45,557 sentences), each step a fresh `search index` process:
1. first build, embedding cache off (everything embedded);
2. the same command again: an unchanged corpus (issue 5: under 10% of the first build);
3. `--rebuild` with the cache on, after a build that filled it: every sentence chunked and analysed
   again, no sentence embedded again.

    python benchmarks/reindex.py       # ~5 minutes; writes benchmarks/results/reindex.md
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DATA, ROOT, stamp, write_results

CORPUS = DATA / "scifact" / "corpus.jsonl"


def timed(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "search", "index", *args, "-q"], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - t


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "SEARCH_EMBEDDINGS_DIR": str(Path(tmp) / "emb")}
        index = str(Path(tmp) / "index")
        first = timed([str(CORPUS), "--index", index, "--no-cache"], env)
        unchanged = timed([str(CORPUS), "--index", index], env)
        timed([str(CORPUS), "--index", index, "--rebuild"], env)  # fills the cache
        cached = timed([str(CORPUS), "--index", index, "--rebuild"], env)
    figures = {**stamp("python benchmarks/reindex.py"), "first_s": first, "unchanged_s": unchanged, "cached_s": cached}
    lines = [
        "# Re-indexing scifact (45,557 sentences)",
        "",
        f"`{figures['command']}` on {figures['date']}, {figures['machine']}.",
        "",
        "| run | seconds | share of the first build |",
        "|---|---|---|",
        f"| first build, nothing cached | {first:.1f} | 100% |",
        f"| same corpus again (incremental: nothing changed) | {unchanged:.1f} | {unchanged / first:.1%} |",
        f"| `--rebuild`, every sentence in the embedding cache | {cached:.1f} | {cached / first:.1%} |",
    ]
    write_results("reindex", figures, lines)


if __name__ == "__main__":
    main()
