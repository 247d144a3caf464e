"""LangChain's standard vector-store suite (sync and async) with the real model and embedded Qdrant.

The suite compares returned documents with ``==``, metadata included, so it runs with
``annotate_results=False``: the annotations (``metadata["clicktune"]``: search_id, rank,
model_version, query_model_version) are the only difference, and test_search_results.py checks them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from clicktune.adapters import ClicktuneSettings
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine


class TestClicktuneVectorStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, settings: ClicktuneSettings) -> Iterator[ClicktuneVectorStore]:
        embeddings = ClicktuneEmbeddings(settings, watch=False)
        yield ClicktuneVectorStore(settings, embeddings=embeddings, annotate_results=False)
        embeddings.close()
