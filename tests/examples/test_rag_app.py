"""The example RAG app (examples/rag_app/app.py), end to end: its /ask route through FastAPI's TestClient,
and a real headless Chromium that types a question, clicks the first source and so sends the click
beacon, checked against the click log on disk.

Real pieces only: the packaged model, embedded Qdrant and SQLite in a tmp home, uvicorn on a loopback
port, Debian's Chromium driven by Playwright. The indexed home is shared by the module's tests, so the
30 abstracts are embedded once.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from shared_homes import REPO_ROOT, clone_home

pytest.importorskip("fastapi", reason="the example app needs fastapi (the dev or server extra)")

from fastapi.testclient import TestClient  # noqa: E402

from clicktune.adapters.clicklog import ClickLog, FeedbackEvent  # noqa: E402

pytestmark = pytest.mark.both_engines  # each embedded engine

APP_PATH = REPO_ROOT / "examples" / "rag_app" / "app.py"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def load_app_module() -> ModuleType:
    """examples/rag_app is a folder of scripts, not a package: load app.py by path."""
    spec = importlib.util.spec_from_file_location("rag_app_example", APP_PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # as an import would: pydantic and FastAPI resolve names through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rag(tmp_path_factory: pytest.TempPathFactory, template_home: Path, embedded_engine: str) -> tuple[ModuleType, Path]:
    """The app module and a home indexed by one start of the app (later starts index nothing), per engine."""
    module = load_app_module()
    home = clone_home(template_home, tmp_path_factory.mktemp("rag-app") / "home")
    with TestClient(module.create_app(home)):
        pass
    return module, home


def feedback_events(home: Path) -> list[FeedbackEvent]:
    log = ClickLog(f"sqlite:///{home / 'feedback.db'}")
    try:
        return list(log.iter_feedback())
    finally:
        log.close()


def test_ask_returns_the_answer_and_clickable_sources(rag: tuple[ModuleType, Path]) -> None:
    module, home = rag
    with TestClient(module.create_app(home)) as client:
        questions = client.get("/questions").json()
        assert questions and all(isinstance(q, str) for q in questions)
        r = client.post("/ask", json={"question": questions[0]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["answer"] == module.FAKE_ANSWER
        sources = body["sources"]
        assert [s["rank"] for s in sources] == list(range(1, module.N_SOURCES + 1))
        assert len({s["search_id"] for s in sources}) == 1  # one question, one search
        assert len({s["doc_id"] for s in sources}) == module.N_SOURCES
        assert client.post("/ask", json={"question": ""}).status_code == 422

        # the search is in the log with exactly these results, so a click on any of them is accepted
        logged = {e.impression.search_id: e for e in feedback_events(home)}
        event = logged[sources[0]["search_id"]]
        assert event.impression.query == questions[0]
        assert [s.doc_id for s in event.impression.results] == [s["doc_id"] for s in sources]

        click = {"search_id": sources[1]["search_id"], "doc_id": sources[1]["doc_id"]}
        r = client.post(f"{module.CLICK_MOUNT}/clicks", json=click)
        assert r.status_code == 201 and r.json() == {"stored": 1, "duplicates": 0}
        r = client.post(f"{module.CLICK_MOUNT}/clicks", json={**click, "doc_id": "not-shown"})
        assert r.status_code == 422 and r.json()["error"] == "DocNotShownError"

        page = client.get(f"/doc/{sources[0]['doc_id']}")
        assert page.status_code == 200 and sources[0]["title"][:20] in page.text
        assert client.get("/doc/no-such-doc").status_code == 404
        assert "navigator.sendBeacon" in client.get("/").text


# --- the browser test ------------------------------------------------------------------------


def chromium_path() -> str | None:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def browser_unavailable() -> str | None:
    """Why the browser test cannot run here, or None: said in full, so a skip is never a mystery."""
    if chromium_path() is None:
        return ("no Chromium binary on PATH (looked for " + ", ".join(CHROMIUM_CANDIDATES) + "): install "
                "Debian's `chromium` package (.ci/run does) to run the example app's browser test")
    if importlib.util.find_spec("playwright") is None:
        return "the `playwright` package (dev extra) is not installed: it drives Chromium in the browser test"
    return None


@pytest.fixture
def browser_path() -> str:
    reason = browser_unavailable()
    if reason is not None:
        pytest.skip(reason)
    path = chromium_path()
    assert path is not None
    return path


@pytest.fixture
def server(rag: tuple[ModuleType, Path]) -> Iterator[str]:
    """The app under uvicorn in a thread on a free loopback port; yields its base URL."""
    uvicorn = pytest.importorskip("uvicorn", reason="the app is served by uvicorn (in the dev extra)")
    module, home = rag
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound here and handed over: no race for the port
    port = sock.getsockname()[1]
    config = uvicorn.Config(module.create_app(home), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the example app did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def test_a_browser_click_on_a_source_reaches_the_click_log(
    browser_path: str, server: str, rag: tuple[ModuleType, Path]
) -> None:
    from playwright.sync_api import sync_playwright

    _module, home = rag
    question = "Does folic acid lower serum homocysteine?"
    started = time.monotonic()
    with sync_playwright() as p:
        # Debian's Chromium, not a Playwright-downloaded build; headless, and no sandbox (CI runs as root).
        browser = p.chromium.launch(executable_path=browser_path, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(server)
            page.fill("#question", question)
            page.click("#submit")
            first = page.locator("a.source").first
            first.wait_for()
            shown_search_id = first.get_attribute("data-search-id")
            shown_doc_id = first.get_attribute("data-doc-id")
            first.click()
            page.wait_for_url(f"**/doc/{shown_doc_id}")  # the link is followed: the beacon outlives the page
            assert page.locator("#text").inner_text()
        finally:
            browser.close()

    # The beacon is sent asynchronously by the browser; give the server a moment to store it.
    deadline = time.monotonic() + 10
    while True:
        events = [e for e in feedback_events(home) if e.impression.query == question]
        if (events and events[0].clicks) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(events) == 1, "the question was not logged as exactly one search"
    impression, clicks = events[0].impression, events[0].clicks
    assert impression.search_id == shown_search_id  # the page showed the id the server logged
    assert impression.results[0].doc_id == shown_doc_id and impression.results[0].rank == 1
    assert [(c.search_id, c.doc_id) for c in clicks] == [(impression.search_id, shown_doc_id)]
    assert time.monotonic() - started < 30, "the browser part must stay well under 30 s"


def test_the_browser_test_says_why_it_would_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a browser the skip names what is missing and how to get it, not a bare 'skipped'."""
    monkeypatch.setenv("PATH", os.devnull)
    reason = browser_unavailable()
    assert reason is not None and "install Debian's `chromium`" in reason
