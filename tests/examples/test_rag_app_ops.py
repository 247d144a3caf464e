"""The example app's operations pages: ``/metrics`` scraped after real asks and a click (parsed by
prometheus-client's own parser), and ``/dashboard`` in a real headless Chromium (screenshot taken, page not
empty, no console error). Same pieces as test_rag_app.py, whose fixtures these tests share.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("fastapi", reason="the example app needs fastapi (the dev or server extra)")

from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client import REGISTRY  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from test_rag_app import browser_path, feedback_events, rag, server  # noqa: E402, F401 - fixtures

FAMILIES = {
    "clicktune_searches", "clicktune_interleaved_searches", "clicktune_search_latency_seconds", "clicktune_clicks",
    "clicktune_impression_log_failures", "clicktune_click_through_ratio", "clicktune_click_through_searches",
    "clicktune_phase_running", "clicktune_phase_wins", "clicktune_phase_losses", "clicktune_phase_ties",
    "clicktune_phase_z", "clicktune_phase_looks", "clicktune_phase_look_z", "clicktune_phase_look_boundary",
    "clicktune_runs", "clicktune_step_duration_seconds", "clicktune_live_version_info",
    "clicktune_live_promoted_timestamp_seconds",
}


def test_metrics_after_asks_and_a_click(rag: tuple[ModuleType, Path]) -> None:  # noqa: F811 - the fixture
    module, home = rag
    with TestClient(module.create_app(home)) as client:
        def counted(name: str, **labels: str) -> float:
            return REGISTRY.get_sample_value(name, labels) or 0.0

        searches, stored = counted("clicktune_searches_total", alias="docs"), counted("clicktune_clicks_total",
                                                                                        result="stored")
        questions = client.get("/questions").json()
        sources = [client.post("/ask", json={"question": q}).json()["sources"] for q in questions[:2]]
        click = {"search_id": sources[0][0]["search_id"], "doc_id": sources[0][0]["doc_id"]}
        assert client.post(f"{module.CLICK_MOUNT}/clicks", json=click).status_code in (200, 201)

        response = client.get("/metrics", follow_redirects=False)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    assert FAMILIES <= set(families), sorted(FAMILIES - set(families))
    samples = {(s.name, frozenset(s.labels.items())): s.value for f in families.values() for s in f.samples}

    def sample(name: str, **labels: str) -> float:
        return samples[(name, frozenset(labels.items()))]

    assert sample("clicktune_searches_total", alias="docs") == searches + 2
    assert sample("clicktune_clicks_total", result="stored") == stored + 1
    assert sample("clicktune_search_latency_seconds_count", alias="docs", model_version="v0001") >= 2
    # the state gauges agree with the click log on disk
    events = [e for e in feedback_events(home) if e.impression.challenge_id is None]
    assert sample("clicktune_click_through_searches", alias="docs", model_version="v0001") == len(events)
    within_1 = sum(any(e.impression.results[0].doc_id == c.doc_id for c in e.clicks) for e in events)
    assert sample("clicktune_click_through_ratio", alias="docs", model_version="v0001", at="1") == within_1 / len(events)
    assert sample("clicktune_live_version_info", alias="docs", version="v0001") == 1


def test_the_dashboard_in_a_browser(browser_path: str, server: str, rag: tuple[ModuleType, Path],  # noqa: F811
                                    tmp_path: Path) -> None:
    import httpx
    from playwright.sync_api import sync_playwright

    for question in ("Does folic acid lower serum homocysteine?", "Is obesity a risk factor for cancer?"):
        source = httpx.post(f"{server}ask", json={"question": question}).json()["sources"][1]
        httpx.post(f"{server}beacon/clicks", json={"search_id": source["search_id"], "doc_id": source["doc_id"]})
    shot = tmp_path / "dashboard.png"
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.set_default_timeout(15_000)
            response = page.goto(f"{server}dashboard")
            assert response is not None and response.status == 200
            page.screenshot(path=str(shot), full_page=True)
            live = page.locator("#live-version").inner_text()
            charts = page.locator("figure.chart svg").count()
            body = page.locator("body").inner_text()
        finally:
            browser.close()
    assert problems == []
    assert live == "v0001" and charts == 2  # click-through and traffic (no challenger phase in the example)
    assert "Candidates" in body and "Searches and clicks per day" in body
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
