"""Issue 4's load test: `search serve` on loopback under 50 concurrent clients for 20 s.

Two indexes: the example corpus (queries: the 35 judged questions of queries/koalition.jsonl)
and the ~100,000-sentence corpus of benchmarks/speed.py (its 200 collection queries). The server
is the real command (`python -m search serve`, its own process, model loaded once). The clients
are wrk's (Debian package `wrk`: 50 connections on 2 threads, a Lua script cycling through the
queries), each sending its next query as soon as the last answer arrived (closed loop); latency
is measured at the client, so it includes queueing. Without wrk, or with `--client python`,
asyncio tasks with httpx in this process do the same; on 2 cores that client takes about a core
for itself (~5 ms of CPU a request), so its figures measure the client as much as the server.
An error is a failed connection, a timeout (30 s) or any status but 200; every query is also
checked once before and after the run for a 200 with a JSON result list.

    python benchmarks/serve_load.py                   # writes benchmarks/results/serve.{md,json}
    python benchmarks/serve_load.py --seconds 5 --small   # example corpus only, for trying changes

The 100k index is built once into ~/.cache/hybrid-search/bench/ (embedding cache on: this is
not a build benchmark) and reused by later runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import httpx
import numpy as np
from _common import RESULTS, ROOT, log, stamp, write_results

BENCH = Path(os.environ.get("SEARCH_CACHE_DIR") or Path.home() / ".cache" / "hybrid-search") / "bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vm_kb(pid: int, key: str) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(status.split(f"{key}:")[1].split()[0])


class Server:
    """`python -m search serve` in its own process, until the block ends."""

    def __init__(self, index: Path) -> None:
        self.index = index
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        cmd = [sys.executable, "-m", "search", "serve", "--index", str(self.index), "--port", str(self.port)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t = time.perf_counter()
        self.proc = subprocess.Popen([*cmd, "--log-level", "warning"], env=env, stderr=subprocess.PIPE, text=True)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read() if self.proc.stderr else ''}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        self.startup_s = time.perf_counter() - t
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


async def load(url: str, queries: list[str], mode: str, clients: int, seconds: float) -> dict:
    """``clients`` closed-loop clients for ``seconds``; every answer's latency and status."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:
        # warm-up: every query once, not measured
        for q in queries[: min(len(queries), 20)]:
            await http.get("/api/search", params={"q": q, "mode": mode, "k": 10})
        stop = time.perf_counter() + seconds

        async def client(n: int) -> None:
            rng = random.Random(n)
            while time.perf_counter() < stop:
                q = rng.choice(queries)
                t = time.perf_counter()
                try:
                    r = await http.get("/api/search", params={"q": q, "mode": mode, "k": 10})
                    ok = r.status_code == 200 and isinstance(r.json().get("results"), list)
                    key = "" if ok else f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                if key:
                    errors[key] = errors.get(key, 0) + 1
                else:
                    latencies.append((time.perf_counter() - t) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        wall = time.perf_counter() - t0
    lat = np.asarray(latencies)
    return {
        "mode": mode,
        "clients": clients,
        "client": "python (asyncio + httpx)",
        "seconds": round(wall, 1),
        "requests": len(latencies) + sum(errors.values()),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "throughput_qps": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "max_ms": round(float(lat.max()), 1),
    }


WRK_SCRIPT = """
local paths = {%s}
local n = 0
function init(args)
  n = math.random(#paths)
end
function request()
  n = n %% #paths + 1
  return wrk.format("GET", paths[n])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nRESULT {"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, "status": %%d, ' ..
    '"timeout": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def load_wrk(url: str, queries: list[str], mode: str, clients: int, seconds: float) -> dict:
    """The same closed loop as :func:`load`, driven by wrk."""
    paths = [f"/api/search?{urlencode({'q': q, 'mode': mode, 'k': 10})}" for q in queries]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % ", ".join(json.dumps(p) for p in paths))
    try:

        def wrk(duration: str) -> str:
            threads = str(min(2, clients))  # wrk wants at least one connection per thread
            cmd = ["wrk", "-t", threads, "-c", str(clients), "-d", duration, "--timeout", "30s", "-s", f.name, url]
            return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

        wrk("3s")  # warm-up, not measured
        out = wrk(f"{seconds:.0f}s")
    finally:
        os.unlink(f.name)
    r = json.loads(out.split("RESULT ", 1)[1])
    errors = {k: r[k] for k in ("connect", "read", "write", "status", "timeout") if r[k]}
    wall = r["duration_us"] / 1e6
    ok = r["requests"] - r["status"]
    return {
        "mode": mode,
        "clients": clients,
        "client": "wrk",
        "seconds": round(wall, 1),
        "requests": r["requests"],
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "throughput_qps": round(ok / wall, 1),
        "p50_ms": round(r["p50_us"] / 1000, 1),
        "p95_ms": round(r["p95_us"] / 1000, 1),
        "p99_ms": round(r["p99_us"] / 1000, 1),
        "max_ms": round(r["max_us"] / 1000, 1),
    }


def check_answers(url: str, queries: list[str], mode: str) -> int:
    """Every query once: how many did not come back as 200 with a JSON result list."""
    bad = 0
    with httpx.Client(base_url=url, timeout=60) as http:
        for q in queries:
            r = http.get("/api/search", params={"q": q, "mode": mode, "k": 10})
            bad += not (r.status_code == 200 and isinstance(r.json().get("results"), list))
    return bad


def example_queries() -> list[str]:
    lines = (ROOT / "queries" / "koalition.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def big_index() -> Path:
    import speed  # benchmarks/speed.py: the same 100k corpus and queries

    from search import build_index
    from search.errors import IndexFormatError
    from search.store import read_manifest

    folder = BENCH / "serve-100k"
    try:
        read_manifest(folder)
        return folder
    except IndexFormatError:  # built by an older version: rebuild (the embedding cache keeps it short)
        rebuild = True
    except Exception:
        rebuild = False
    log("building the 100,000-sentence index once (reused by later runs)")
    corpus, _ = speed.build_corpus(BENCH / "serve-100k-corpus", 100_000)
    build_index(corpus, folder, lang="auto", rebuild=rebuild)
    return folder


def run_set(name: str, index: Path, queries: list[str], modes: list[str], args: argparse.Namespace) -> dict:
    with Server(index) as server:
        health = httpx.get(server.url + "/healthz").json()
        log(f"{name}: {health['sentences']:,} sentences, server up in {server.startup_s:.1f} s")
        runs = []
        # every mode under load, then hybrid with a single client: a request's own latency over HTTP
        for mode, clients in [*((m, args.clients) for m in modes), ("hybrid", 1)]:
            bad = check_answers(server.url, queries, mode)
            if args.client == "wrk":
                r = load_wrk(server.url, queries, mode, clients, args.seconds)
            else:
                r = asyncio.run(load(server.url, queries, mode, clients, args.seconds))
            r["bad_answers_before_after"] = bad + check_answers(server.url, queries, mode)
            r["errors"] += r["bad_answers_before_after"]
            log(
                f"  {mode}: {r['throughput_qps']} q/s, p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, errors {r['errors']}"
            )
            runs.append(r)
        rss = vm_kb(server.proc.pid, "VmHWM") / 1024
    return {
        "index": name,
        "sentences": health["sentences"],
        "documents": health["documents"],
        "queries": len(queries),
        "startup_s": round(server.startup_s, 1),
        "server_peak_rss_mb": round(rss),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Load test of `search serve` (issue 4)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--small", action="store_true", help="the example corpus only")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk" if shutil.which("wrk") else "python")
    args = parser.parse_args()
    from search import build_index

    command = (
        "python benchmarks/serve_load.py"
        + (" --small" if args.small else "")
        + (f" --seconds {args.seconds:g}" if args.seconds != 20 else "")
        + (f" --client {args.client}" if args.client != "wrk" else "")
    )
    figures: dict = {**stamp(command), "sets": []}
    example = BENCH / "serve-example"
    build_index(ROOT / "corpus", example, lang="auto", rebuild=True)
    modes = ["hybrid", "keyword", "semantic"]
    figures["sets"].append(run_set("example corpus", example, example_queries(), modes, args))
    if not args.small:
        import speed

        figures["sets"].append(run_set("100k sentences", big_index(), speed.load_queries(), modes, args))
    write(figures, args)


def write(f: dict, args: argparse.Namespace) -> None:
    lines = [
        "# Serving under load",
        "",
        f"`{f['command']}` on {f['date']}, {f['machine']}. `search serve` in its own process on loopback; "
        f"{args.clients} closed-loop clients ({f['sets'][0]['runs'][0]['client']}, on the same cores as the server) "
        f"for {args.seconds:.0f} s per mode, k = 10, default fusion. Latency at the client, queueing included. "
        "Errors: failed connections, timeouts, any status but 200, and answers without a result list when every "
        "query was checked once before and after the run.",
        "",
        "| index | mode | clients | requests | errors | throughput | p50 | p95 | p99 | max |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in f["sets"]:
        for r in s["runs"]:
            name = f"{s['index']} ({s['sentences']:,} sentences)"
            lines.append(
                f"| {name} | {r['mode']} | {r['clients']} | {r['requests']:,} | {r['errors']} | "
                f"{r['throughput_qps']} q/s | {r['p50_ms']} ms | {r['p95_ms']} ms | {r['p99_ms']} ms | "
                f"{r['max_ms']} ms |"
            )
    lines += ["", "| index | server start (model load) | server peak RSS |", "|---|---:|---:|"]
    for s in f["sets"]:
        lines.append(f"| {s['index']} | {s['startup_s']} s | {s['server_peak_rss_mb']} MB |")
    lines += [
        "",
        "Reading it: with 50 clients each waiting for its answer before asking again, a request's latency",
        "is mostly its wait in the queue (≈ clients ÷ throughput); the single-client rows are what one",
        "request costs over HTTP. The server answers on a thread pool; query embedding (ONNX Runtime, one",
        "thread per query), faiss and numpy release the GIL and run side by side, analysis, ranking and",
        "JSON do not. At 100k sentences a hybrid query spends most of its time in the exact faiss scan",
        "(~6 ms) and the query embedding (~6 ms on one thread). The scan reads all 154 MB of vectors per",
        "query and is bound by memory bandwidth: in one process, 180 scans/s on one thread and only 266/s on",
        "four, while query embedding goes from 163/s to 350/s. Batching concurrent queries into one scan,",
        "or 8-bit vectors, would be the next step for throughput at this size.",
    ]
    write_results("serve", f, lines)
    log(f"wrote {RESULTS / 'serve.md'}")


if __name__ == "__main__":
    main()
