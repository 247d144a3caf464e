"""Which embedded engine a home gets: the edge engine for a new one, local mode for one it already holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.qdrant import close_shared_clients
from clicktune.adapters.qdrant.client import embedded_engine
from clicktune.adapters.qdrant.edge import is_edge_client
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore


@pytest.fixture(autouse=True)
def _no_engine_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLICKTUNE_EMBEDDED_ENGINE", raising=False)


def _store(home: Path, **settings) -> tuple[ClicktuneVectorStore, ClicktuneEmbeddings]:
    config = ClicktuneSettings(home=home, progress=False, watch_registry=False, **settings)
    embeddings = ClicktuneEmbeddings(config, watch=False)
    return ClicktuneVectorStore(config, embeddings=embeddings), embeddings


def test_a_new_home_gets_the_edge_engine(home: Path) -> None:
    store, embeddings = _store(home)
    store.add_texts(["a first document"], ids=["one"])
    assert is_edge_client(store.client) and embedded_engine(store.settings) == "edge"
    embeddings.close()
    close_shared_clients()


def test_a_home_that_local_mode_holds_keeps_local_mode_and_its_documents(home: Path) -> None:
    store, embeddings = _store(home, embedded_engine="local")
    store.add_texts(["kept across the upgrade", "another one"], ids=["kept", "other"])
    assert not is_edge_client(store.client)
    embeddings.close()
    close_shared_clients()

    reopened, embeddings = _store(home)  # embedded_engine="auto", the default
    assert not is_edge_client(reopened.client)
    assert [d.id for d in reopened.similarity_search("kept across the upgrade", k=1)] == ["kept"]
    embeddings.close()
    close_shared_clients()


def test_the_engine_can_be_chosen(home: Path) -> None:
    assert embedded_engine(ClicktuneSettings(home=home, embedded_engine="local")) == "local"
    assert embedded_engine(ClicktuneSettings(home=home, qdrant_path=":memory:")) == "edge"
    with pytest.raises(ValueError, match="embedded_engine"):
        ClicktuneSettings(home=home, embedded_engine="faiss")
