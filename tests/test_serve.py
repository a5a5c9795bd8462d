"""`search serve`: every endpoint and every error through FastAPI's test client, the real model on
the example corpus; index updates picked up without a restart; concurrent queries on one model."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from search import build_index, serve
from search import holder as holder_module
from search.cli import app as cli_app
from search.holder import IndexHolder
from search.serve import DocumentOut, SearchOut, create_app

from .conftest import EXAMPLE, PAGE_KEYS, RESULT_KEYS, FakeEncoder, assert_result_json
from .live_server import live_server

QUESTION = "Wer will britische Soldaten in die Ukraine schicken?"
pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, real_encoder) -> Iterator[tuple[Path, IndexHolder]]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("serve") / "index"
    build_index(EXAMPLE.parent, folder, encoder=real_encoder)
    holder = IndexHolder(folder, encoder=real_encoder)
    yield folder, holder
    holder.close()


@pytest.fixture(scope="module")
def client(served: tuple[Path, IndexHolder]) -> TestClient:
    return TestClient(create_app(served[1]))


DOC_TEXT = EXAMPLE.read_text(encoding="utf-8")


def test_search_answers_the_german_question(client: TestClient) -> None:
    r = client.get("/api/search", params={"q": QUESTION, "mode": "hybrid", "k": 5})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    data = r.json()
    SearchOut.model_validate(data, strict=True)  # the schema /docs documents is the one sent
    assert data["query"] == QUESTION and data["mode"] == "hybrid"
    assert len(data["results"]) == 5
    for item in data["results"]:
        assert_result_json(item, DOC_TEXT)
    top = data["results"][0]
    assert "britische Truppen in der Ukraine einzusetzen" in top["passage"]
    assert "britische" in top["evidence"]["terms"]
    s, e = top["evidence"]["sentence"]
    assert "Wir sind bereit, britische Truppen" in top["passage"][s:e]
    for s, e in top["highlights"]:
        assert top["passage"][s:e] in top["evidence"]["terms"]


def test_pages_and_feedback_documents(client: TestClient) -> None:
    get = lambda **p: client.get("/api/search", params={"q": QUESTION, **p}).json()  # noqa: E731
    deep = get(k=12)
    page = get(k=5, offset=7)
    SearchOut.model_validate(page, strict=True)
    assert [r["rank"] for r in page["results"]] == [8, 9, 10, 11, 12]
    assert page["results"] == deep["results"][7:]
    assert get(k=5, offset=10_000)["results"] == []  # past the last passage: empty, not an error
    assert deep["feedback_docs"] == [EXAMPLE.name]  # hybrid: the one document moved the query
    assert get(feedback=0)["feedback_docs"] == []
    assert "feedback_docs" not in get(mode="keyword")


def test_explain_on_request(client: TestClient) -> None:
    plain = client.get("/api/search", params={"q": QUESTION, "k": 3}).json()
    data = client.get("/api/search", params={"q": QUESTION, "k": 3, "explain": "true"}).json()
    SearchOut.model_validate(data, strict=True)
    assert [r["score"] for r in data["results"]] == [r["score"] for r in plain["results"]]
    assert all("explain" not in r for r in plain["results"])
    for r in data["results"]:
        e = r["explain"]
        fusion = e["fusion"]
        both = fusion["weights"][0] * e["keyword"]["normalised"] + fusion["weights"][1] * e["semantic"]["normalised"]
        assert r["score"] == pytest.approx(fusion["scale"] * both, abs=1e-12)
        assert e["feedback"]["docs"] == data["feedback_docs"]


def test_search_json_is_the_cli_json(client: TestClient, served: tuple[Path, IndexHolder]) -> None:
    q = "Koalition der Willigen Healey"
    api = client.get("/api/search", params={"q": q, "mode": "keyword", "k": 3}).json()
    cli = CliRunner().invoke(cli_app, ["query", q, "--index", str(served[0]), "--mode", "keyword", "-k", "3", "--json"])
    assert cli.exit_code == 0, cli.output
    assert api == json.loads(cli.stdout)


def test_modes_and_fusion_options(client: TestClient) -> None:
    get = lambda **p: client.get("/api/search", params={"q": QUESTION, "k": 10, **p}).json()["results"]  # noqa: E731
    keyword, semantic = get(mode="keyword"), get(mode="semantic")
    assert all(r["scores"]["semantic"] is None and r["scores"]["keyword"] > 0 for r in keyword)
    assert all(r["scores"]["keyword"] is None and r["scores"]["semantic"] > 0 for r in semantic)
    only_sem = get(mode="hybrid", alpha=1.0)
    assert [r["start"] for r in only_sem] == [r["start"] for r in semantic]
    rrf = get(mode="hybrid", fusion="rrf")
    assert all(r["score"] < 0.05 for r in rrf)  # 1/(60+rank) sums, not cosine-scale scores
    english = client.get("/api/search", params={"q": "Who wants to send troops to Ukraine?", "mode": "semantic"})
    assert "Truppen" in english.json()["results"][0]["passage"]


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({}, 422, "q: Field required"),
        ({"q": ""}, 422, "q: String should have at least 1 character"),
        ({"q": "x" * 1001}, 422, "q: String should have at most 1000 characters"),
        ({"q": "Truppen", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
        ({"q": "Truppen", "k": 1001}, 422, "k: Input should be less than or equal to 1000"),
        ({"q": "Truppen", "offset": -1}, 422, "offset: Input should be greater than or equal to 0"),
        ({"q": "Truppen", "offset": 10_001}, 422, "offset: Input should be less than or equal to 10000"),
        ({"q": "Truppen", "k": "ten"}, 422, "k: Input should be a valid integer"),
        ({"q": "Truppen", "mode": "fuzzy"}, 422, "mode: Input should be 'keyword', 'semantic' or 'hybrid'"),
        ({"q": "Truppen", "fusion": "max"}, 422, "fusion: Input should be 'convex' or 'rrf'"),
        ({"q": "Truppen", "alpha": 1.5}, 422, "alpha: Input should be less than or equal to 1"),
        ({"q": "Truppen", "alpha": -0.1}, 422, "alpha: Input should be greater than or equal to 0"),
        ({"q": "Truppen", "alpha": "nan"}, 422, "alpha: Input should be a finite number"),
        ({"q": "Truppen", "min_score": "inf"}, 422, "min_score: Input should be a finite number"),
        ({"q": "Truppen", "window": -1}, 422, "window: Input should be greater than or equal to 0"),
        ({"q": "Truppen", "window": 11}, 422, "window: Input should be less than or equal to 10"),
        ({"q": "Truppen", "doc_weight": -1}, 422, "doc_weight: Input should be greater than or equal to 0"),
        ({"q": "Truppen", "doc_weight": 10.5}, 422, "doc_weight: Input should be less than or equal to 10"),
        ({"q": "Truppen", "candidates": 0}, 422, "candidates: Input should be greater than or equal to 1"),
        ({"q": "Truppen", "feedback": -1}, 422, "feedback: Input should be greater than or equal to 0"),
        ({"q": "Truppen", "feedback_weight": 11}, 422, "feedback_weight: Input should be less than or equal to 10"),
        ({"q": "   "}, 400, "empty query"),
        ({"q": "\x01\x02"}, 400, "empty query"),
        # the library's words, not the CLI's flags (--where, --syntax)
        ({"q": "Truppen", "where": "colour"}, 400, "where takes FIELD=VALUE (e.g. type=pdf), not 'colour'"),
        ({"q": "Truppen", "after": "gestern"}, 400, "after takes a date like 2024-03-15"),
        ({"q": "Truppen AND", "syntax": "on"}, 400, "(AND has no term after it); set syntax off to search plain words"),
    ],
)
def test_search_errors_are_clear_4xx(client: TestClient, params: dict, status: int, message: str) -> None:
    r = client.get("/api/search", params=params)
    assert r.status_code == status
    body = r.json()
    assert message in body["error"]
    assert "\n" not in body["error"] and "--" not in body["error"]


def test_document_with_the_results_passages_marked(client: TestClient) -> None:
    doc_id = EXAMPLE.name
    whole = client.get(f"/api/documents/{doc_id}").json()
    assert whole["id"] == doc_id and whole["text"] == DOC_TEXT and whole["passages"] == []
    marked = client.get(f"/api/documents/{doc_id}", params={"q": QUESTION, "k": 5}).json()
    DocumentOut.model_validate(marked, strict=True)
    results = client.get("/api/search", params={"q": QUESTION, "k": 5}).json()["results"]
    assert [p["rank"] for p in marked["passages"]] == [r["rank"] for r in results]
    for p, r in zip(marked["passages"], results, strict=True):
        assert marked["text"][p["start"] : p["end"]] == r["passage"]
        assert [marked["text"][s:e] for s, e in p["highlights"]] == [r["passage"][s:e] for s, e in r["highlights"]]
        s, e = p["evidence"]["sentence"]
        rs, re_ = r["evidence"]["sentence"]
        assert marked["text"][s:e] == r["passage"][rs:re_]


def test_document_errors(client: TestClient) -> None:
    r = client.get("/api/documents/not-there.txt")
    assert r.status_code == 404 and r.json() == {"error": "no document 'not-there.txt' in the index"}
    r = client.get(f"/api/documents/{EXAMPLE.name}", params={"q": "Truppen", "k": 1001})
    assert r.status_code == 422 and "k:" in r.json()["error"]


def test_info_health_and_unknown_routes(client: TestClient) -> None:
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["documents"] == 1 and health["model_loaded"] is True
    assert health["model"] == "multilingual-e5-small"
    before = client.get("/api/info").json()
    client.get("/api/search", params={"q": "Healey"})
    info = client.get("/api/info").json()
    assert info["counts"]["documents"] == 1 and info["generation"] == health["generation"]
    assert info["model"]["name"] == "multilingual-e5-small"
    assert info["server"]["queries"] == before["server"]["queries"] + 1
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    for path in ("/healthz", "/"):  # what load balancers and link checkers send
        assert client.head(path).status_code == 200, path
    wrong = client.post("/api/search", params={"q": "Healey"})
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"  # HTTP requires the Allow header


def test_openapi_and_docs_are_served_locally(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/documents/{doc_id}", "/api/info", "/healthz"} <= set(spec["paths"])
    search_op = spec["paths"]["/api/search"]["get"]
    assert search_op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SearchOut")
    assert {"200", "400", "422"} <= set(search_op["responses"])
    assert set(spec["components"]["schemas"]["ResultOut"]["properties"]) == RESULT_KEYS | PAGE_KEYS | {"explain"}
    assert {"/api/documents/{doc_id}/similar", "/api/document", "/api/similar"} <= set(spec["paths"])
    first = spec["paths"]["/api/document"]["get"]["parameters"][0]
    assert (first["name"], first["in"], first["required"]) == ("doc_id", "query", True)
    params = {p["name"] for p in search_op["parameters"]}
    assert {"q", "mode", "k", "fusion", "alpha"} <= params
    docs = client.get("/docs").text
    assets = re.findall(r'(?:src|href)="([^"]+)"', docs)
    assert assets and all(a.startswith("/") for a in assets), assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and all(r.startswith(("/", "#", "data:")) for r in refs), refs
    for name in ("app.js", "style.css"):
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and "http://" not in asset.text and "https://" not in asset.text


def _until(ask: Callable[[], Any], seconds: float = 20.0) -> Any:  # a TestClient answer (httpx or httpx2)
    """Ask until the answer has results: the new generation is opened in the background."""
    deadline = time.monotonic() + seconds
    while True:
        answer = ask()
        if answer.json()["results"] or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_server_picks_up_an_updated_index(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(holder_module, "RELOAD_CHECK_S", 0.0)
    enc = FakeEncoder(["cat", "dog", "ocean", "sea", "mountain", "truppen", "soldaten", "volcano"])
    folder = tmp_path / "index"
    build_index(tiny_corpus, folder, encoder=enc)
    holder = IndexHolder(folder, encoder=enc)
    client = TestClient(create_app(holder))
    assert client.get("/api/search", params={"q": "volcano", "mode": "keyword"}).json()["results"] == []
    first = holder.index
    (tiny_corpus / "sub").mkdir()
    (tiny_corpus / "sub" / "volcano.txt").write_text("The volcano erupted at dawn.\n", encoding="utf-8")
    build_index(tiny_corpus, folder, encoder=enc)
    found = _until(lambda: client.get("/api/search", params={"q": "volcano", "mode": "keyword"}))
    assert found.json()["results"][0]["doc"] == "sub/volcano.txt"
    assert found.headers["x-index-generation"] == "g000002"
    assert holder.reloads == 1 and holder.index is not first
    assert first._pin is None  # the old generation was closed: nothing used it any more
    doc = client.get("/api/documents/sub/volcano.txt", params={"q": "volcano"}).json()
    assert doc["text"] == "The volcano erupted at dawn.\n" and doc["passages"][0]["rank"] == 1
    # a damaged folder does not take the server down: it keeps answering from what it has open
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for damage in ("{not json", json.dumps({**manifest, "generation": "g000009"})):
        (folder / "manifest.json").write_text(damage, encoding="utf-8")
        for _ in range(3):
            again = client.get("/api/search", params={"q": "volcano", "mode": "keyword"})
            assert again.status_code == 200 and again.json()["results"][0]["doc"] == "sub/volcano.txt"
            while holder._reloading.locked():  # a reload attempt in the background: let it fail
                time.sleep(0.01)
    assert holder.reloads == 1 and holder.index.manifest.generation == "g000002"
    holder.close()


def test_create_app_opens_a_folder_and_closes_it_on_shutdown(
    tmp_path: Path, served: tuple[Path, IndexHolder], real_encoder
) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "index"
    shutil.copytree(served[0], folder)  # the example corpus, built with the default model
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(EXAMPLE, corpus / EXAMPLE.name)
    app = create_app(str(folder))  # a path string: the app opens the index and loads the model itself
    with TestClient(app) as client:
        health = client.get("/healthz").json()
        assert health["model_loaded"] is True and health["documents"] == 1 and health["generation"] == "g000001"
        top = client.get("/api/search", params={"q": QUESTION, "k": 1}).json()["results"][0]
        assert "britische Truppen in der Ukraine einzusetzen" in top["passage"]
        (corpus / "more.txt").write_text("Ein Vulkan brach im Morgengrauen aus.\n", encoding="utf-8")
        assert build_index(corpus, folder, encoder=real_encoder).generation == "g000002"
        assert (folder / "g000001").is_dir()  # the open app still reads it: the writer leaves it
    # shut down, the app has closed its index: the next write collects the old generations
    (corpus / "more.txt").write_text("Ein Vulkan brach am Abend aus.\n", encoding="utf-8")
    assert build_index(corpus, folder, encoder=real_encoder).generation == "g000003"
    assert sorted(p.name for p in folder.glob("g0*")) == ["g000003"]


def test_a_new_generation_is_looked_for_once_a_second(tmp_path: Path, tiny_corpus: Path) -> None:
    assert holder_module.RELOAD_CHECK_S == 1.0  # what the README promises
    enc = FakeEncoder(["cat", "dog", "ocean", "sea", "mountain", "truppen", "soldaten", "volcano"])
    folder, staged = tmp_path / "index", tmp_path / "staged"
    build_index(tiny_corpus, folder, encoder=enc)
    shutil.copytree(folder, staged)
    (tiny_corpus / "volcano.txt").write_text("The volcano erupted at dawn.\n", encoding="utf-8")
    new = build_index(tiny_corpus, staged, encoder=enc).generation  # the next generation, made ready beside
    t0 = time.monotonic()
    holder = IndexHolder(folder, encoder=enc)  # it has just looked: the next look is a second away
    client = TestClient(create_app(holder))
    # the writer's commit, made instant here: the new generation's folder in place, then the manifest renamed
    shutil.copytree(staged / new, folder / new)
    os.replace(staged / "manifest.json", folder / "manifest.json")
    seen: list[tuple[float, str, bool]] = []  # (request sent, seconds after t0; generation; volcano found)
    while not (seen and seen[-1][2]) and time.monotonic() - t0 < 10:
        sent = time.monotonic() - t0
        answer = client.get("/api/search", params={"q": "volcano", "mode": "keyword"})
        seen.append((sent, answer.headers["x-index-generation"], bool(answer.json()["results"])))
        time.sleep(0.02)
    holder.close()
    early = [s for s in seen if s[0] < 1.0]
    assert all(generation == "g000001" and not found for _, generation, found in early), early
    last_sent, generation, found = seen[-1]
    assert found and generation == new, seen
    assert 1.0 <= last_sent < 4.0, seen  # looked again after a second, then opened it in the background
    assert len(early) >= 5, seen  # and the commit came well inside that first second
    assert holder.reloads == 1


# long questions (the API takes up to 1,000 characters): each embedding is ~100 ms of one core's work
LONG_QUESTIONS = [
    f"{q} " * (900 // (len(q) + 1))
    for q in (
        QUESTION,
        "Who wants to send troops to Ukraine?",
        "Welche Rolle spielt Frankreich in der Koalition der Willigen?",
        "Frieden in Europa und Sicherheitsgarantien nach dem Krieg",
        "Was sagte Pistorius über die Bundeswehr?",
        "nuclear cooperation between France and Britain",
        "Wie viele Soldaten wollten die europäischen Mächte stellen?",
        "Trump und Putin trafen sich in Alaska",
    )
]
MIN_CPU_S = 0.002  # what a query inside the model must compute in one sampling window to count as running


class _ModelProbe:
    """Wraps an encoder's encode_queries (adding no delay) and watches, through each thread's CPU
    clock, whether queries inside the model compute side by side or wait for one another."""

    def __init__(self, inner: Callable[[Sequence[str]], np.ndarray]) -> None:
        self.inner = inner
        self.inside: dict[int, tuple[int, int]] = {}  # thread -> (its CPU clock, which call)
        self.calls: list[tuple[float, float]] = []  # each call's CPU time: its own thread's, the process's
        self.side_by_side = 0  # windows in which two queries inside the model both computed
        self.windows = 0  # windows in which two or more queries were inside the model throughout
        self._lock = threading.Lock()
        self._n = 0

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        ident = threading.get_ident()
        own, process = time.thread_time(), time.process_time()
        with self._lock:
            self._n += 1
            self.inside[ident] = (time.pthread_getcpuclockid(ident), self._n)
        try:
            return self.inner(texts)
        finally:
            with self._lock:
                del self.inside[ident]
                self.calls.append((time.thread_time() - own, time.process_time() - process))

    @contextmanager
    def watching(self, every_s: float = 0.02) -> Iterator[None]:
        stop = threading.Event()

        def sample() -> dict[tuple[int, int], float]:
            with self._lock:  # a thread cannot leave the model (and end) while its clock is read
                return {(t, n): time.clock_gettime(clock) for t, (clock, n) in self.inside.items()}

        def watch() -> None:
            before = sample()
            while not stop.wait(every_s):
                now = sample()
                throughout = [k for k in now if k in before]  # the same call at both ends of the window
                if len(throughout) >= 2:
                    self.windows += 1
                    if sum(now[k] - before[k] >= MIN_CPU_S for k in throughout) >= 2:
                        self.side_by_side += 1
                before = now

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()


def test_concurrent_queries_run_side_by_side_in_the_servers_own_model(
    served: tuple[Path, IndexHolder], monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = IndexHolder(served[0])  # as `search serve` opens it: its own model, its own thread settings
    encoder = holder.index.encoder
    probe = _ModelProbe(encoder.encode_queries)
    monkeypatch.setattr(encoder, "encode_queries", probe)
    questions = LONG_QUESTIONS * 2
    try:
        with live_server(holder) as base, httpx.Client(base_url=base, timeout=60) as http:
            ask = lambda q: http.get("/api/search", params={"q": q, "k": 3, "mode": "semantic"})  # noqa: E731
            expected = {q: ask(q).json() for q in LONG_QUESTIONS}  # one at a time
            alone = list(probe.calls)
            with probe.watching(), ThreadPoolExecutor(len(questions)) as pool:
                answers = list(pool.map(ask, questions))
    finally:
        holder.close()
    assert all(a.status_code == 200 for a in answers)
    for q, a in zip(questions, answers, strict=True):
        got = [(r["doc"], r["start"]) for r in a.json()["results"]]
        assert got == [(r["doc"], r["start"]) for r in expected[q]["results"]]
    # one thread per query embedding: a query alone computes on its request's thread, no pool threads
    # beside it (ONNX Runtime's pool threads would compute, and spin, on the other core)
    assert len(alone) == len(LONG_QUESTIONS)
    own, process = (sum(c) for c in zip(*alone, strict=True))
    assert own >= 0.8 * process, f"the queries' own threads did {own:.3f} s of the {process:.3f} s computed"
    # queries inside the model at the same time compute at the same time: a model that ran one query
    # at a time (a lock, or the GIL held) would show one computing and the others waiting, whether
    # the machine's other core is free or busy
    assert probe.side_by_side >= 3, f"{probe.side_by_side} of {probe.windows} windows with two queries computing"


def _one_error_line(stderr: str, folder: Path) -> str:
    """`search serve` says what it opens (loading the model takes seconds), then fails in one line."""
    lines = stderr.strip().splitlines()
    assert lines[:-1] == [f"opening {folder} and loading the model …"], lines
    assert lines[-1].startswith("error: ") and "Traceback" not in stderr
    return lines[-1]


def test_serve_command_errors_are_one_line(tmp_path: Path, served: tuple[Path, IndexHolder]) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli_app, ["serve", "--index", str(tmp_path / "none"), "--port", "0"])
    assert missing.exit_code == 3
    assert _one_error_line(missing.stderr, tmp_path / "none").startswith(f"error: no index at {tmp_path / 'none'}")
    with serve.listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        busy = runner.invoke(cli_app, ["serve", "--index", str(served[0]), "--port", str(port)])
    assert busy.exit_code == 7
    assert _one_error_line(busy.stderr, served[0]).startswith(f"error: cannot listen on 127.0.0.1:{port}: ")


def test_serve_command_serves_the_page_and_the_api(served: tuple[Path, IndexHolder]) -> None:
    """`search serve` as a user starts it: a process that prints its URL and answers."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "search", "serve", "--index", str(served[0]), "--port", "0", "--log-level", "warning"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        assert proc.stderr is not None
        for line in proc.stderr:
            found = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
            if found:
                url = found.group(1)
                break
        assert url, "the server did not print its address"
        for _ in range(100):  # it prints the address just before uvicorn starts accepting
            try:
                page = httpx.get(url, timeout=5)
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert page.status_code == 200 and "hybrid-search" in page.text
        top = httpx.get(url + "api/search", params={"q": QUESTION, "k": 1}, timeout=30).json()["results"][0]
        assert "britische Truppen" in top["passage"]
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert proc.returncode in (0, -15)
