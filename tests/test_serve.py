"""`search serve`: every endpoint and every error through FastAPI's test client, the real model on
the example corpus; index updates picked up without a restart; concurrent queries on one model."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from search import build_index, serve
from search.cli import app as cli_app
from search.serve import DocumentOut, IndexHolder, SearchOut, create_app

from .conftest import EXAMPLE, RESULT_KEYS, FakeEncoder, assert_result_json
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


def test_search_json_is_the_cli_json(client: TestClient, served: tuple[Path, IndexHolder]) -> None:
    params = {"q": "Koalition der Willigen Healey", "mode": "keyword", "k": 3}
    api = client.get("/api/search", params=params).json()
    cli = CliRunner().invoke(
        cli_app, ["query", params["q"], "--index", str(served[0]), "--mode", "keyword", "-k", "3", "--json"]
    )
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
        ({"q": "Truppen", "k": 101}, 422, "k: Input should be less than or equal to 100"),
        ({"q": "Truppen", "k": "ten"}, 422, "k: Input should be a valid integer"),
        ({"q": "Truppen", "mode": "fuzzy"}, 422, "mode: Input should be 'keyword', 'semantic' or 'hybrid'"),
        ({"q": "Truppen", "fusion": "max"}, 422, "fusion: Input should be 'convex' or 'rrf'"),
        ({"q": "Truppen", "alpha": 1.5}, 422, "alpha: Input should be less than or equal to 1"),
        ({"q": "Truppen", "candidates": 0}, 422, "candidates: Input should be greater than or equal to 1"),
        ({"q": "Truppen", "feedback": -1}, 422, "feedback: Input should be greater than or equal to 0"),
        ({"q": "Truppen", "feedback_weight": 11}, 422, "feedback_weight: Input should be less than or equal to 10"),
        ({"q": "   "}, 400, "empty query"),
        ({"q": "\x01\x02"}, 400, "empty query"),
    ],
)
def test_search_errors_are_clear_4xx(client: TestClient, params: dict, status: int, message: str) -> None:
    r = client.get("/api/search", params=params)
    assert r.status_code == status
    body = r.json()
    assert message in body["error"]
    assert "\n" not in body["error"]


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
    r = client.get(f"/api/documents/{EXAMPLE.name}", params={"q": "Truppen", "k": 500})
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


def test_openapi_and_docs_are_served_locally(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {"/api/search", "/api/documents/{doc_id}", "/api/info", "/healthz"} <= set(spec["paths"])
    search_op = spec["paths"]["/api/search"]["get"]
    assert search_op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/SearchOut")
    assert {"200", "400", "422"} <= set(search_op["responses"])
    assert set(spec["components"]["schemas"]["ResultOut"]["properties"]) == RESULT_KEYS
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


def _until(ask: Callable[[], httpx.Response], seconds: float = 20.0) -> httpx.Response:
    """Ask until the answer has results: the new generation is opened in the background."""
    deadline = time.monotonic() + seconds
    while True:
        answer = ask()
        if answer.json()["results"] or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


def test_server_picks_up_an_updated_index(tmp_path: Path, tiny_corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "RELOAD_CHECK_S", 0.0)
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


class _Overlap:
    """Wraps an encoder and records how many queries were inside the model at once."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner = inner
        self.name, self.fingerprint, self.dim = inner.name, inner.fingerprint, inner.dim
        self.inside = 0
        self.most = 0
        self._lock = threading.Lock()

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            time.sleep(0.05)  # long enough for the other requests to arrive while this one is inside
            return self.inner.encode_queries(texts)
        finally:
            with self._lock:
                self.inside -= 1

    def encode_passages(self, texts, progress=None):  # type: ignore[no-untyped-def]
        return self.inner.encode_passages(texts, progress)


def test_concurrent_queries_share_the_model_without_queueing(served: tuple[Path, IndexHolder], real_encoder) -> None:  # type: ignore[no-untyped-def]
    probe = _Overlap(real_encoder)
    holder = IndexHolder(served[0], encoder=probe, warm=False)
    questions = [QUESTION, "Who wants to send troops to Ukraine?", "Pistorius", "Frieden in Europa"] * 4
    with live_server(holder) as base, httpx.Client(base_url=base, timeout=30) as http:
        expected = {q: http.get("/api/search", params={"q": q, "k": 3}).json() for q in set(questions)}
        probe.most = 0
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda q: http.get("/api/search", params={"q": q, "k": 3}), questions))
    holder.close()
    assert all(a.status_code == 200 for a in answers)
    for q, a in zip(questions, answers, strict=True):
        got = [(r["doc"], r["start"]) for r in a.json()["results"]]
        assert got == [(r["doc"], r["start"]) for r in expected[q]["results"]]
    assert probe.most >= 4, f"at most {probe.most} queries were inside the model at once"


def test_serve_command_errors_are_one_line(tmp_path: Path, served: tuple[Path, IndexHolder]) -> None:
    runner = CliRunner()
    missing = runner.invoke(cli_app, ["serve", "--index", str(tmp_path / "none"), "--port", "0"])
    assert missing.exit_code == 3
    lines = missing.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("opening") and lines[1].startswith("error: no index")
    with serve.listen("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        busy = runner.invoke(cli_app, ["serve", "--index", str(served[0]), "--port", str(port)])
    assert busy.exit_code == 7
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and "Traceback" not in busy.output


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
