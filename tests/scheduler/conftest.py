"""Fixtures the scheduler's CLI tests share."""

from __future__ import annotations

from pathlib import Path

import pytest

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.adapters.qdrant import close_shared_clients
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore


@pytest.fixture
def cli_home(home: Path, variant_model) -> Path:
    """An embedded home: v0001 live with three documents, v0002 registered (a different model)."""
    settings = ClicktuneSettings(home=home, progress=False)
    ModelRegistry.from_settings(settings).register(variant_model, parent="v0001")
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        ClicktuneVectorStore(settings, embeddings=emb).add_texts(
            ["alpha beta", "gamma delta", "epsilon zeta"], ids=["a", "b", "c"])
    close_shared_clients()
    return home
