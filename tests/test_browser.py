"""The search page end to end in headless Chromium (Debian's package, driven by Playwright; nothing
downloads a browser): a German question, highlighted evidence, mode switch, the document view,
keyboard use, a narrow screen, a shared URL. Saves screenshots: into $SEARCH_SCREENSHOTS when set
(`SEARCH_SCREENSHOTS=docs pytest tests/test_browser.py` refreshes the one in docs/), else tmp."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from playwright.sync_api import expect

from search import build_index
from search.serve import IndexHolder

from .conftest import EXAMPLE, FakeEncoder, animal_corpus
from .live_server import live_server

QUESTION = "Wer will britische Soldaten in die Ukraine schicken?"
TITLE = "Bericht über die Koalition der Willigen"
pytestmark = pytest.mark.model


def _chromium() -> str:
    path = os.environ.get("SEARCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip(
            "NO BROWSER: Chromium is not installed, so the search page was NOT tested end to end "
            "(apt-get install chromium, or set SEARCH_CHROMIUM; .ci/run installs it)"
        )
    return path


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory, real_encoder) -> Iterator[str]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("browser") / "index"
    build_index(EXAMPLE.parent, folder, encoder=real_encoder)
    holder = IndexHolder(folder, encoder=real_encoder)
    with live_server(holder) as url:
        yield url
    holder.close()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def page(browser, base_url: str):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="de-DE")
    page = context.new_page()
    page.problems = []  # console errors (a CSP violation is one), failed requests, requests to elsewhere
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.on("requestfailed", lambda r: page.problems.append(f"failed: {r.url}"))
    page.on("request", lambda r: r.url.startswith((base_url, "data:")) or page.problems.append(f"external: {r.url}"))
    yield page
    context.close()


def _screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("SEARCH_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_german_question_mode_switch_and_document(page, base_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(base_url + "/")
    expect(page.locator("#about")).to_have_text("1 document · 39 sentences · multilingual-e5-small")
    assert page.evaluate("document.activeElement.id") == "q"  # the box has the focus: just type
    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    page.wait_for_selector("#results .result")
    assert page.inner_text("#status").startswith("10 passages in hybrid mode")
    query = parse_qs(urlparse(page.url).query)
    assert query == {"q": [QUESTION], "mode": ["hybrid"]}

    first = page.locator("#results .result").first
    passage = first.locator(".passage").inner_text()
    assert "Wir sind bereit, britische Truppen in der Ukraine einzusetzen" in passage
    assert "„Die militärischen Pläne sind abgeschlossen." in passage  # umlauts and „quotes“ intact
    terms = first.locator("mark.term").all_inner_texts()
    assert "britische" in terms and "Ukraine" in terms
    evidence = "".join(first.locator(".evidence").all_text_contents())
    assert "Wir sind bereit, britische Truppen" in evidence
    scores = first.locator(".scores").inner_text()
    # the scores shown are the API's, rounded to three places; the marks are the marks it sent
    api = page.request.get(base_url + "/api/search", params={"q": QUESTION, "k": 10}).json()["results"][0]
    shown = (
        f"score {api['score']:.3f}\nkeyword {api['scores']['keyword']:.3f}\nsemantic {api['scores']['semantic']:.3f}"
    )
    assert scores == shown and api["scores"]["keyword"] > 1 and api["scores"]["semantic"] > 0.8
    assert terms == [api["passage"][s:e] for s, e in api["highlights"]]
    why = first.locator("details.why")
    assert not why.locator("dl").is_visible()  # on demand only
    why.locator("summary").click()
    explained = why.locator("dl").inner_text()
    assert explained.startswith(f"keyword\n{api['scores']['keyword']:.3f}, rank ")
    assert f"semantic\n{api['scores']['semantic']:.3f}, rank " in explained
    assert "fusion\nconvex: 1 × (0.20 × keyword + 0.80 × semantic)" in explained
    assert "feedback\nquery moved towards koalition-der-willigen.txt × 1" in explained
    page.screenshot(path=str(_screenshots(tmp_path) / "search-page.png"))

    # switch to keyword mode with the keyboard: focus the mode radios, arrow to the next one
    page.focus('input[name="mode"][value="hybrid"]')
    page.keyboard.press("ArrowRight")
    expect(page.locator("#status")).to_contain_text("keyword mode")
    assert "semantic –" in page.locator("#results .result .scores").first.inner_text()
    assert parse_qs(urlparse(page.url).query)["mode"] == ["keyword"]
    page.check('input[name="mode"][value="semantic"]')
    expect(page.locator("#status")).to_contain_text("semantic mode")
    assert "keyword –" in page.locator("#results .result .scores").first.inner_text()
    page.go_back()  # back to keyword mode, from the URL
    expect(page.locator("#status")).to_contain_text("keyword mode")
    assert page.is_checked('input[name="mode"][value="keyword"]')

    # open the first result in its document, by keyboard
    top = page.locator("#results .result").first
    top_passage = top.locator(".passage").text_content()
    top.locator(".doc-link").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#current-passage")
    assert page.locator("#doc").get_attribute("open") is not None
    assert page.inner_text("#doc-title") == EXAMPLE.name
    current = page.locator("#doc-text .current")
    assert current.first.is_visible()
    assert "".join(current.all_text_contents()) == top_passage
    assert page.locator("#doc-text mark.term").count() >= 3
    assert page.inner_text("#doc-text").startswith(EXAMPLE.read_text(encoding="utf-8")[:80])
    page.screenshot(path=str(_screenshots(tmp_path) / "document-view.png"))
    page.keyboard.press("Escape")
    expect(page.locator("#doc")).not_to_have_attribute("open", "")
    assert page.problems == []


def test_more_results_pages_on_exactly(page, base_url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base_url + "/?" + urlencode({"q": QUESTION, "mode": "hybrid"}))
    page.wait_for_selector("#results .result")
    more = page.locator("#more")
    expect(more).to_be_visible()
    more.click()
    expect(page.locator("#results .result")).to_have_count(20)
    assert page.inner_text("#status").startswith("20 passages in hybrid mode")
    ranks = [int(r) for r in page.locator("#results .result").evaluate_all("els => els.map(e => e.dataset.rank)")]
    assert ranks == list(range(1, 21))
    assert page.evaluate("document.activeElement.closest('.result').dataset.rank") == "11"  # the new page's first
    deep = page.request.get(base_url + "/api/search", params={"q": QUESTION, "k": 20}).json()["results"]
    shown = page.locator("#results .result .passage").all_text_contents()
    assert shown == [r["passage"] for r in deep]  # the two pages are the first 20 of one longer list
    for _ in range(3):  # 39 sentences: the fourth page is short, and then there is no more
        if more.is_visible():
            more.click()
            expect(more).to_be_enabled()  # disabled while its page loads
    expect(more).to_be_hidden()
    n = page.locator("#results .result").count()
    assert 20 < n < 40 and page.inner_text("#status").startswith(f"{n} passages")
    assert page.problems == []


def test_shared_url_and_narrow_screen(browser, base_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(base_url + "/?q=Who+wants+to+send+troops+to+Ukraine%3F&mode=semantic")
    page.wait_for_selector("#results .result")
    assert page.input_value("#q") == "Who wants to send troops to Ukraine?"
    assert page.is_checked('input[name="mode"][value="semantic"]')
    assert "Truppen" in page.locator("#results .result .passage").first.inner_text()
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 375px screen"
    page.screenshot(path=str(_screenshots(tmp_path) / "search-page-narrow.png"))
    context.close()


def test_errors_and_empty_results_are_shown(page, base_url: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base_url + "/")
    page.fill("#q", "Quantenchromodynamik")
    page.check('input[name="mode"][value="keyword"]')
    expect(page.locator("#status")).to_contain_text("No passage matches")
    assert page.locator("#results .result").count() == 0
    page.goto(base_url + "/?q=" + "x" * 1001)  # longer than the API accepts: the page says why
    expect(page.locator("#status")).to_contain_text("Error:")
    assert "at most 1000 characters" in page.inner_text("#status")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("/")  # the shortcut puts the focus back into the box
    assert page.evaluate("document.activeElement.id") == "q"


@contextmanager
def served(browser, corpus: Path, enc: FakeEncoder, folder: Path) -> Iterator[tuple[Any, str]]:  # type: ignore[no-untyped-def]
    """``corpus`` indexed into ``folder`` with ``enc``, served on loopback, and a fresh browser page with its URL."""
    build_index(corpus, folder, encoder=enc)
    holder = IndexHolder(folder, encoder=enc)
    try:
        with live_server(holder) as url:
            context = browser.new_context()
            try:
                yield context.new_page(), url
            finally:
                context.close()
    finally:
        holder.close()


def test_more_like_this_lists_the_nearest_documents(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    corpus, enc = animal_corpus(tmp_path / "animals", ["1-cats.txt", "2-mixed.txt", "3-dogs.txt"])
    with served(browser, corpus, enc, tmp_path / "idx") as (page, url):
        page.goto(url + "/?q=Cats+purr&mode=keyword")
        page.wait_for_selector("#results .result")
        first = page.locator("#results .result").first
        assert first.locator(".doc-link").inner_text() == "1-cats.txt"
        first.locator(".like-link").click()
        expect(page.locator("#status")).to_have_text("2 documents like 1-cats.txt")
        docs = page.locator("#results .result .doc-link").all_inner_texts()
        assert docs == ["2-mixed.txt", "3-dogs.txt"]  # cat+dog is nearer to cat+fish than dog alone
        assert page.locator("#results .result .evidence").first.inner_text() == "The cat sleeps."
        expect(page.locator("#more")).to_be_hidden()


def test_facet_panel_filters_and_a_pdf_result_shows_its_page(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    fixtures = Path(__file__).parent / "fixtures" / "documents"
    corpus = tmp_path / "docs"
    (corpus / "berichte").mkdir(parents=True)
    shutil.copy(fixtures / "bericht.pdf", corpus / "berichte" / "bericht.pdf")
    shutil.copy(fixtures / "bericht.docx", corpus / "bericht.docx")
    shutil.copy(fixtures / "bericht.epub", corpus / "bericht.epub")
    with served(browser, corpus, FakeEncoder(["cat"]), tmp_path / "idx") as (page, url):
        page.goto(url + "/?q=Haushaltsausschuss&mode=keyword")
        page.wait_for_selector("#results .result")
        types = page.locator('#facets .facet[data-field="type"] .facet-value')
        assert sorted(types.all_inner_texts()) == ["docx (1)", "epub (1)", "pdf (1)"]
        page.locator('#facets .facet-value[data-value="pdf"]').click()
        expect(page.locator("#results .result .doc-link")).to_have_text([f"{TITLE} — berichte/bericht.pdf"])
        assert "where=type%3Dpdf" in page.url  # the filter is in the URL: the search can be shared
        expect(page.locator('#facets .facet-value[data-value="pdf"]')).to_have_attribute("aria-pressed", "true")
        expect(page.locator("#results .result .page-no")).to_have_text("p. 3")
        page.screenshot(path=str(_screenshots(tmp_path) / "facets.png"))
        page.locator("#results .result .doc-link").click()
        breaks = page.locator("#doc-text [data-page]")
        expect(breaks).to_have_count(3)
        page.screenshot(path=str(_screenshots(tmp_path) / "pages.png"))
        assert page.locator('#doc-text [data-page="2"]').inner_text().startswith("Straßen und Brücken")
        page.locator("#doc-close").click()
        page.goto(page.url)  # the shared URL: same filter, same single result
        expect(page.locator("#results .result .doc-link")).to_have_text([f"{TITLE} — berichte/bericht.pdf"])
        page.locator('#facets .facet-value[data-value="pdf"]').click()  # again: unfiltered
        expect(page.locator("#results .result")).to_have_count(3)
