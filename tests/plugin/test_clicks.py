"""Searches log impressions; clicks on their results are stored; a broken log never breaks a search."""

from __future__ import annotations

import asyncio
import gc
import logging
from pathlib import Path

import pytest
from sqlalchemy import text

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.errors import ConfigurationError, DocNotShownError, UnknownSearchError
from clicktune.plugin import (
    ClicktuneEmbeddings,
    ClicktuneVectorStore,
    arecord_click,
    arecord_clicks,
    record_click,
    record_clicks,
    set_default_click_log,
)

pytestmark = pytest.mark.both_engines  # each embedded engine

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


def test_search_logs_an_impression_with_ranks(store: ClicktuneVectorStore) -> None:
    docs = store.similarity_search("vitamin D and bones", k=3, user_id="alice", session_id="s-1")
    sid = docs[0].metadata["clicktune"]["search_id"]
    assert [d.metadata["clicktune"]["rank"] for d in docs] == [1, 2, 3]
    assert {d.metadata["clicktune"]["search_id"] for d in docs} == {sid}
    impression = store.feedback.get_impression(sid)
    assert impression is not None
    assert impression.query == "vitamin D and bones" and impression.user_id == "alice"
    assert impression.model_version == "v0001" and impression.collection == "docs__v0001"
    assert [(r.doc_id, r.rank) for r in impression.results] == [(d.id, d.metadata["clicktune"]["rank"]) for d in docs]
    assert store.impression_logger.logged == 1


def test_logging_can_be_turned_off_and_then_no_search_id_is_handed_out(
    store: ClicktuneVectorStore, settings: ClicktuneSettings
) -> None:
    unlogged = store.similarity_search("contract", k=2, log_impression=False)
    quiet = ClicktuneVectorStore(settings, embeddings=store.embeddings, log_impressions=False)
    unlogged += quiet.similarity_search("contract", k=2)
    assert store.feedback.stats()["impressions"] == 0
    # An id for a search the log never saw could never take a click (UnknownSearchError): none is given.
    assert unlogged and {d.metadata["clicktune"]["search_id"] for d in unlogged} == {None}
    assert all(d.metadata["clicktune"]["rank"] >= 1 for d in unlogged)


def test_clicks_through_the_store_and_the_module_api(store: ClicktuneVectorStore) -> None:
    docs = store.similarity_search("interest rates", k=2)
    sid = docs[0].metadata["clicktune"]["search_id"]
    assert store.record_click(sid, docs[0].id, dwell=30.0, user="bob") is True
    assert store.record_click(sid, docs[0].id) is False
    set_default_click_log(store.feedback)
    try:
        assert record_click(sid, docs[1].id, grade=3) is True
        with pytest.raises(DocNotShownError):
            record_clicks([{"search_id": sid, "doc_id": "not-shown"}])
        with pytest.raises(UnknownSearchError):
            record_click("00000000-0000-4000-8000-000000000000", docs[0].id)
    finally:
        set_default_click_log(None)
    assert store.feedback.count_clicks() == 2


def test_a_failing_log_never_fails_the_search(store: ClicktuneVectorStore, caplog: pytest.LogCaptureFixture) -> None:
    store.similarity_search("warm up", k=1)  # the log exists and works
    with store.feedback.engine.begin() as conn:  # then breaks for real: its results table is gone
        conn.execute(text("DROP TABLE clicktune_impression_results"))
    with caplog.at_level(logging.WARNING):
        docs = store.similarity_search("vitamin D", k=2)
    assert len(docs) == 2 and docs[0].id == "fracture-1"
    assert store.impression_logger.failures == 1
    assert "not logged" in caplog.text


def test_click_log_from_settings_uses_the_feedback_url(settings: ClicktuneSettings) -> None:
    log = ClickLog.from_settings(settings)
    assert log.url == settings.resolved_feedback_url and log.dialect == "sqlite"


def test_async_clicks_through_the_store_and_the_module_api(store: ClicktuneVectorStore) -> None:
    docs = store.similarity_search("interest rates", k=3)
    sid = docs[0].metadata["clicktune"]["search_id"]

    async def app() -> list:
        set_default_click_log(store.feedback)
        try:
            return [await store.arecord_click(sid, docs[0].id, dwell=4.0),
                    await store.arecord_clicks([{"search_id": sid, "doc_id": docs[1].id}]),
                    await arecord_click(sid, docs[2].id, grade=2),
                    await arecord_clicks([{"search_id": sid, "doc_id": docs[2].id}])]
        finally:
            set_default_click_log(None)

    assert asyncio.run(app()) == [True, [True], True, [False]]
    assert store.feedback.count_clicks() == 3
    with pytest.raises(DocNotShownError):
        asyncio.run(store.arecord_click(sid, "not-shown"))


def test_module_record_click_follows_the_store_built_with_a_home(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # the environment's default home (./.clicktune) is somewhere else
    set_default_click_log(None)
    try:
        with ClicktuneEmbeddings(home=home, progress=False, watch=False) as emb:
            store = ClicktuneVectorStore(embeddings=emb, home=home, qdrant_path=":memory:")
            store.add_texts(list(DOCS.values()), ids=list(DOCS))
            doc = store.similarity_search("vitamin D", k=1)[0]
            assert record_click(doc.metadata["clicktune"]["search_id"], doc.id) is True
            assert store.feedback.count_clicks() == 1
            other = ClicktuneVectorStore(embeddings=emb, home=tmp_path / "other", qdrant_path=":memory:")
            with pytest.raises(ConfigurationError, match="different click logs.*set_default_click_log"):
                record_click(doc.metadata["clicktune"]["search_id"], doc.id)
            del other
            gc.collect()
            assert record_click(doc.metadata["clicktune"]["search_id"], doc.id) is False  # one store again
    finally:
        set_default_click_log(None)


def test_module_record_click_without_a_store_says_how_to_configure_it(
    store: ClicktuneVectorStore, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sid = store.similarity_search("vitamin D", k=1)[0].metadata["clicktune"]["search_id"]
    monkeypatch.chdir(tmp_path)
    set_default_click_log(None)  # forgets the store: the module falls back to ClicktuneSettings()
    try:
        with pytest.raises(UnknownSearchError, match="set_default_click_log\\(store.feedback\\)"):
            record_click(sid, "fracture-1")
    finally:
        set_default_click_log(None)


def test_an_lcel_chain_hands_back_the_search_id_its_retriever_logged(store: ClicktuneVectorStore) -> None:
    from langchain_core.runnables import RunnableLambda, RunnableParallel, RunnablePassthrough

    from clicktune.plugin import MixedSearchesError, search_id_of

    chain = RunnableParallel(docs=store.as_retriever(search_kwargs={"k": 2}), question=RunnablePassthrough()) | \
        RunnablePassthrough.assign(search_id=lambda x: search_id_of(x["docs"]),
                                   answer=RunnableLambda(lambda x: x["docs"][0].page_content))
    out = chain.invoke("interest rates")
    assert out["search_id"] == out["docs"][0].metadata["clicktune"]["search_id"]
    assert store.record_click(out["search_id"], out["docs"][1].id) is True
    assert search_id_of([]) is None
    assert search_id_of(store.similarity_search("contract", k=2, log_impression=False)) is None
    with pytest.raises(MixedSearchesError, match="2 searches"):
        search_id_of(store.similarity_search("contract", k=1) + store.similarity_search("rates", k=1))
