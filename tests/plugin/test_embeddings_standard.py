"""LangChain's own standard suites, run against ClicktuneEmbeddings with the real packaged model."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from shared_homes import clone_home

from clicktune.plugin import ClicktuneEmbeddings


class _Params:
    _home: Path

    @pytest.fixture(autouse=True)
    def _fresh_home(self, request: pytest.FixtureRequest, template_home: Path, tmp_path: Path) -> None:
        request.cls._home = clone_home(template_home, tmp_path / "home")

    @property
    def embeddings_class(self) -> type[ClicktuneEmbeddings]:
        return ClicktuneEmbeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"home": self._home, "watch": False, "progress": False}


class TestClicktuneEmbeddingsUnit(_Params, EmbeddingsUnitTests):
    @property
    def init_from_env_params(self) -> tuple[dict, dict, dict]:
        return (
            {"CLICKTUNE_HOME": str(self._home), "CLICKTUNE_BATCH_SIZE": "7"},
            {"watch": False},
            {"batch_size": 7},
        )


class TestClicktuneEmbeddingsIntegration(_Params, EmbeddingsIntegrationTests):
    pass
