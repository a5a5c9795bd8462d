"""`search serve --ray` (issue 15, item 4): a sharded index served by Ray Serve on the real local
cluster of conftest.py (a head with 0 CPUs, two 1-CPU workers, all on 127.0.0.1): a deployment per
shard with two replicas each and a router. Its answers equal one index's; a replica killed during a
load run is restarted by Ray, and meanwhile every request either gets the right results or a 503;
a new generation written while serving is picked up."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from search import build_index
from search.cli import app
from search.serve import IndexHolder, create_app
from search.serve_ray import APP, serve_on_ray
from search.sharding import build_sharded

pytestmark = pytest.mark.distributed
DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "xquad-de"
QUERIES = [
    {"q": "Wer baute die Eisenbahn?"},
    {"q": "Fluss Rhein Quelle", "mode": "keyword"},
    {"q": "Universität Studenten", "mode": "semantic", "k": 7},
    {"q": "Wie viele Einwohner hat die Stadt?", "fusion": "rrf", "explain": "true"},
    {"q": '"Normalspur" OR Schmalspur*', "syntax": "on", "mode": "keyword"},
    {"q": "Krieg Armee", "feedback": 3, "k": 5},
]


def _free_port() -> int:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def _get(url: str, timeout: float = 60.0) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory, real_encoder: Any) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("serve-ray")
    corpus = root / "corpus"
    corpus.mkdir()
    rows = (DATA / "corpus.jsonl").read_text(encoding="utf-8").splitlines()[:80]
    (corpus / "corpus.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    build_index(corpus, root / "one", encoder=real_encoder)
    build_sharded(corpus, root / "sh", 2, encoder=real_encoder)
    return corpus, root / "one", root / "sh"


@pytest.fixture(scope="module")
def served(cluster: Any, indexes: tuple[Path, Path, Path]) -> Iterator[str]:
    """The sharded index on Ray Serve (2 shards x 2 replicas), by the function `search serve --ray` runs."""
    ready: list[str] = []
    failed: list[BaseException] = []
    stop = threading.Event()

    def run() -> None:
        try:
            address, port = cluster.address, _free_port()
            serve_on_ray(indexes[2], address, port=port, replicas=2, ready=lambda u, _: ready.append(u), stop=stop)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 240
    while not ready and not failed and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ready, f"Ray Serve did not come up: {failed}"
    try:
        yield ready[0]
    finally:
        stop.set()
        thread.join(120)
        assert not thread.is_alive()


@pytest.fixture(scope="module")
def reference(indexes: tuple[Path, Path, Path], real_encoder: Any) -> Iterator[TestClient]:
    holder = IndexHolder(indexes[1], encoder=real_encoder)
    try:
        yield TestClient(create_app(holder))
    finally:
        holder.close()


def _same(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    assert [(r["rank"], r["doc"], r["start"], r["end"]) for r in got] == [
        (r["rank"], r["doc"], r["start"], r["end"]) for r in want
    ]
    assert [r["score"] for r in got] == pytest.approx([r["score"] for r in want], abs=1e-6)
    assert [r["highlights"] for r in got] == [r["highlights"] for r in want]


def test_ray_serve_answers_as_one_index(served: str, reference: TestClient) -> None:
    for params in QUERIES:
        status, got = _get(f"{served}api/search?{urllib.parse.urlencode(params)}")
        want = reference.get("/api/search", params=params).json()
        assert status == 200, got
        assert got["shards"] == {"answered": 2, "total": 2}
        assert got["results"], params
        _same(got["results"], want["results"])
        if params.get("explain"):
            for g, w in zip(got["results"], want["results"], strict=True):
                assert g["explain"]["keyword"]["raw"] == pytest.approx(w["explain"]["keyword"]["raw"], abs=1e-6)
    doc = got["results"][0]["doc"]
    status, similar = _get(f"{served}api/documents/{urllib.parse.quote(doc)}/similar?k=3")
    want_similar = reference.get(f"/api/documents/{doc}/similar", params={"k": 3}).json()
    assert status == 200 and [r["doc"] for r in similar["results"]] == [r["doc"] for r in want_similar["results"]]
    status, page = (lambda r: (r.status, r.read()))(urllib.request.urlopen(served, timeout=30))
    assert status == 200 and b"<html" in page.lower()
    status, bad = _get(f"{served}api/search?{urllib.parse.urlencode({'q': 'x' * 1001})}")
    assert (status, bad["error"]) == (422, reference.get("/api/search", params={"q": "x" * 1001}).json()["error"])


def test_replicas_killed_under_load_are_restarted(served: str, reference: TestClient) -> None:
    """SIGKILL both replicas of shard-000 while 4 clients send 120 requests: each answer is the right
    list or a 503 naming the shard, never a list with a shard missing; Ray starts new replicas."""
    from ray import serve

    handle = serve.get_deployment_handle("shard-000", app_name=APP)
    pids = {handle.pid.remote().result(timeout_s=30) for _ in range(20)}
    assert len(pids) == 2  # two replicas answer
    queries = [QUERIES[i % 4] for i in range(120)]
    want = [reference.get("/api/search", params=p).json()["results"] for p in queries]
    outcomes: list[tuple[int, dict[str, Any]]] = [(0, {})] * len(queries)

    def ask(i: int) -> None:
        outcomes[i] = _get(f"{served}api/search?{urllib.parse.urlencode(queries[i])}", timeout=90)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(ask, i) for i in range(len(queries))]
        for f in futures[:10]:  # the first ten answered before the kill (with 4 clients, the 10th answered
            f.result()  # alone does not mean the three before it have)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        for f in futures:
            f.result()
    statuses = [s for s, _ in outcomes]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[:10].count(200) == 10 and 200 in statuses[20:]
    for (status, body), expected in zip(outcomes, want, strict=True):
        if status == 200:
            assert body["shards"] == {"answered": 2, "total": 2}
            _same(body["results"], expected)
        else:
            assert "shard-000" in body["error"] and "try again" in body["error"]
    deadline = time.monotonic() + 120
    now: set[int] = set()
    while time.monotonic() < deadline:  # Ray Serve replaces the dead replicas
        now = {handle.pid.remote().result(timeout_s=30) for _ in range(20)}
        if len(now) == 2 and not now & pids:
            break
        time.sleep(1)
    assert len(now) == 2 and not now & pids
    status, body = _get(f"{served}api/search?{urllib.parse.urlencode(QUERIES[0])}")
    assert status == 200 and body["shards"] == {"answered": 2, "total": 2}


def test_a_shard_that_does_not_answer_is_a_503_naming_it() -> None:
    """What the router makes of a shard's call that fails (its replica gone): not a shorter list."""
    from search.errors import ServeError
    from search.serve_ray import ShardUnavailableError, _answer

    class Gone:
        def result(self, timeout_s: float) -> Any:
            raise RuntimeError("The actor died unexpectedly before finishing this task.")

    with pytest.raises(ShardUnavailableError, match=r"shard-001 did not answer \(RuntimeError: The actor died") as e:
        _answer(1, Gone())
    assert isinstance(e.value, ServeError) and e.value.exit_code == 7  # the API's 503 (serve._error_handlers)


def test_a_new_generation_is_picked_up(served: str, indexes: tuple[Path, Path, Path], real_encoder: Any) -> None:
    corpus, _, folder = indexes
    extra = corpus.parent / "more"
    shutil.copytree(corpus, extra)
    with (extra / "corpus.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"_id": "zz-new", "title": "", "text": "Der Quokkabär wohnt auf Rottnest."}) + "\n")
    build_sharded(extra, folder, 2, encoder=real_encoder)
    url = f"{served}api/search?{urllib.parse.urlencode({'q': 'Quokkabär', 'mode': 'keyword'})}"
    deadline = time.monotonic() + 60
    docs: list[str] = []
    while time.monotonic() < deadline and "zz-new" not in docs:
        status, body = _get(url)
        docs = [r["doc"] for r in body.get("results", [])] if status == 200 else []
        time.sleep(0.5)
    assert docs[:1] == ["zz-new"]


def test_cli_serve_ray_bad_input(tmp_path: Path, indexes: tuple[Path, Path, Path]) -> None:
    """An unsharded index, and a cluster nobody listens on: one line each, nothing started."""
    result = CliRunner().invoke(app, ["serve", "--index", str(indexes[1]), "--ray", "local"])
    assert result.exit_code == 7 and "--ray serves a sharded index" in result.output
    port = _free_port()
    result = CliRunner().invoke(app, ["serve", "--index", str(indexes[2]), "--ray", f"127.0.0.1:{port}"])
    assert result.exit_code == 1 and "cannot reach the Ray cluster" in result.output


def _descendants(root: int) -> list[int]:
    """``root`` and every process under it (Ray's raylet, GCS and workers are started beneath it)."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += [c for c, p in parent.items() if p == pid]
    return found


def _alive(pids: list[int]) -> list[int]:
    return [p for p in pids if (Path("/proc") / str(p)).exists() and "(Z)" not in _state(p)]


def _state(pid: int) -> str:
    try:
        return "(" + (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] + ")"
    except (FileNotFoundError, ProcessLookupError):
        return "(gone)"


def _listening(pids: list[int]) -> set[str]:
    """The local addresses the given processes listen on (TCP, from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in (Path("/proc") / str(pid) / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            pass
    found = set()
    for table in ("tcp", "tcp6"):
        for line in (Path("/proc/net") / table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                hexaddr = cols[1].split(":")[0]
                raw = bytes.fromhex(hexaddr)
                if len(raw) == 4:
                    found.add(".".join(str(b) for b in raw[::-1]))
                else:  # four little-endian 32-bit words
                    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    address = ipaddress.IPv6Address(words)
                    found.add(str(address.ipv4_mapped or address))
    return found


def test_cli_serve_ray_local_listens_on_loopback_and_stops(tmp_path: Path, indexes: tuple[Path, Path, Path]) -> None:
    """`search serve --ray local` in a process of its own: every socket of its cluster, Serve proxy and
    replicas listens on loopback only; SIGTERM takes the application and the cluster down, exit 0,
    no process of it left."""
    import subprocess
    import sys

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "search", "serve", "--index", str(indexes[2]), "--ray", "local", "--port", str(port)]
    log = (tmp_path / "serve.log").open("w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if "Ctrl+C stops" in (tmp_path / "serve.log").read_text():
                break
            time.sleep(0.5)
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
        status, body = _get(f"http://127.0.0.1:{port}/api/search?q=Eisenbahn&k=3")
        assert status == 200 and body["shards"] == {"answered": 2, "total": 2} and len(body["results"]) == 3
        started = _descendants(proc.pid)
        assert len(started) > 6  # GCS, raylet, Serve's controller and proxy, the replicas …
        addresses = _listening(started)
        assert addresses and addresses <= {"127.0.0.1", "::1"}, addresses
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0, (tmp_path / "serve.log").read_text()[-2000:]
        deadline = time.monotonic() + 30
        while _alive(started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _alive(started)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
