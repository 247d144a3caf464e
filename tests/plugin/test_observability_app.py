"""``create_observability_app(store)``: ``/metrics`` scraped after real searches and clicks (parsed by
prometheus-client's own parser) and ``/dashboard``; mounted under a prefix as an app would."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the observability app needs fastapi (the server or dev extra)")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from clicktune.adapters import ClicktuneSettings  # noqa: E402
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore  # noqa: E402
from clicktune.plugin.observability import create_observability_app  # noqa: E402

DOCS = {
    "fracture-1": "Vitamin D supplements lower the risk of hip fractures.",
    "contract-7": "A contract without consideration is void.",
    "rates-3": "The central bank raised rates by fifty basis points.",
}


@pytest.fixture
def store(settings: ClicktuneSettings):
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        store.add_texts(list(DOCS.values()), ids=list(DOCS))
        yield store


def scrape(client: TestClient, path: str = "/metrics") -> dict[tuple[str, frozenset], float]:
    response = client.get(path, follow_redirects=False)  # the page itself, not a redirect to /metrics/
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def test_metrics_count_the_searches_and_clicks_and_report_click_through(store: ClicktuneVectorStore) -> None:
    app = FastAPI()
    app.mount("/ops", create_observability_app(store, cache_seconds=0))
    alias = {"alias": store.alias}
    latency = {**alias, "model_version": "v0001"}
    with TestClient(app) as client:
        before = scrape(client, "/ops/metrics")

        def delta(after: dict, name: str, **labels: str) -> float:
            key = (name, frozenset(labels.items()))
            return after[key] - before.get(key, 0.0)

        first = store.similarity_search("vitamin D and bones", k=3)
        store.similarity_search("what voids a contract", k=3)
        store.max_marginal_relevance_search("interest rates", k=2, fetch_k=3)
        store.record_click(first[0].metadata["clicktune"]["search_id"], first[0].id)
        store.record_click(first[0].metadata["clicktune"]["search_id"], first[0].id)  # a duplicate
        after = scrape(client, "/ops/metrics")

        assert delta(after, "clicktune_searches_total", **alias) == 3
        assert delta(after, "clicktune_interleaved_searches_total", **alias) == 0  # no challenger
        assert delta(after, "clicktune_search_latency_seconds_count", **latency) == 3
        assert delta(after, "clicktune_search_latency_seconds_sum", **latency) > 0
        assert delta(after, "clicktune_clicks_total", result="stored") == 1
        assert delta(after, "clicktune_clicks_total", result="duplicate") == 1
        # the state, from the feedback database: 3 searches by v0001, one clicked at rank 1
        ctr = {"alias": store.alias, "model_version": "v0001"}
        assert after[("clicktune_click_through_searches", frozenset(ctr.items()))] == 3
        assert after[("clicktune_click_through_ratio", frozenset({**ctr, "at": "1"}.items()))] == pytest.approx(1 / 3)
        assert after[("clicktune_live_version_info", frozenset({**alias, "version": "v0001"}.items()))] == 1
        assert after[("clicktune_phase_running", frozenset(alias.items()))] == 0


def test_a_search_with_no_live_collection_is_not_counted(settings: ClicktuneSettings) -> None:
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)  # nothing indexed: no alias yet
        with TestClient(create_observability_app(store, cache_seconds=0)) as client:
            before = scrape(client).get(("clicktune_searches_total", frozenset({"alias": store.alias}.items())), 0)
            assert store.similarity_search("anything") == []
            after = scrape(client).get(("clicktune_searches_total", frozenset({"alias": store.alias}.items())), 0)
    assert after == before


def test_the_dashboard_is_one_page_about_the_stores_alias(store: ClicktuneVectorStore) -> None:
    pytest.importorskip("altair", reason="the dashboard needs the ops extra")
    docs = store.similarity_search("vitamin D and bones", k=3)
    store.record_click(docs[0].metadata["clicktune"]["search_id"], docs[0].id)
    with TestClient(create_observability_app(store)) as client:
        page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f"<span class=alias>{store.alias}</span>" in page.text and "id=live-version>v0001<" in page.text
    assert page.text.count("<svg") == 2  # click-through and traffic; no phase has run


def test_without_the_ops_extra_the_dashboard_says_what_to_install(store: ClicktuneVectorStore,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "altair", None)  # what Python does for a package that is not installed
    monkeypatch.delitem(sys.modules, "clicktune.adapters.observability.dashboard", raising=False)
    with TestClient(create_observability_app(store)) as client:
        page = client.get("/dashboard")
        assert client.get("/metrics").status_code == 200  # the metrics need no extra
    assert page.status_code == 501 and "pip install 'clicktune[ops]'" in page.text and "altair" in page.text
