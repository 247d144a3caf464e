"""Shared fixtures: a real registry bootstrapped once from the packaged model, cheaply cloned per test.

Model weights in a registry are immutable, so a per-test registry hard-links the template's weight
files instead of copying 90 MB; small files (metadata, CURRENT) are copied.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from shared_homes import clone_home  # noqa: E402


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from clicktune.adapters import ClicktuneSettings, ModelRegistry

    home = tmp_path_factory.mktemp("template-home")
    ModelRegistry.from_settings(ClicktuneSettings(home=home)).bootstrap()
    return home


@pytest.fixture
def home(template_home: Path, tmp_path: Path) -> Path:
    """A fresh clicktune home whose registry already holds v0001 (the packaged base model)."""
    return clone_home(template_home, tmp_path / "home")


@pytest.fixture
def settings(home: Path):
    from clicktune.adapters import ClicktuneSettings

    return ClicktuneSettings(home=home, progress=False, qdrant_path=":memory:")


@pytest.fixture(scope="session")
def variant_model(template_home: Path):
    """A genuinely different model (perturbed embeddings) standing in for a fine-tuned version."""
    from model_variants import perturbed_copy

    from clicktune.adapters import ClicktuneSettings, ModelRegistry

    registry = ModelRegistry.from_settings(ClicktuneSettings(home=template_home))
    return perturbed_copy(registry.load_model("v0001"), seed=1)
