"""Shared fixtures: a real registry bootstrapped once from the packaged model, cheaply cloned per test;
and a feedback database on real SQLite and, when one answers, real PostgreSQL (``db_url``).

Model weights in a registry are immutable, so a per-test registry hard-links the template's weight
files instead of copying 90 MB; small files (metadata, CURRENT) are copied.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

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


#: The embedded engines behaviour and invariant tests run on (``pytestmark = pytest.mark.both_engines``).
ENGINES = ("edge", "local")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_engines"):
        metafunc.parametrize("embedded_engine", ENGINES, indirect=True, scope="module")


@pytest.fixture(scope="module", autouse=True)
def embedded_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """The engine of a ``both_engines`` module's current run, as ``CLICKTUNE_EMBEDDED_ENGINE`` (so the
    processes a crash test starts use it too); elsewhere ``auto``, the default. Module fixtures that
    build a home take this fixture, so each engine gets its own."""
    engine = getattr(request, "param", None)
    if engine is None:
        yield "auto"
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CLICKTUNE_EMBEDDED_ENGINE", engine)
        yield engine


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


PG_URL = os.environ.get("CLICKTUNE_TEST_PG_URL")


def _pg_reason() -> str | None:
    if not PG_URL:
        return "CLICKTUNE_TEST_PG_URL is not set (make test sets it to the local PostgreSQL)"
    try:
        with create_engine(PG_URL).connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:  # noqa: BLE001 - any failure means "no server to test against"
        return f"PostgreSQL at CLICKTUNE_TEST_PG_URL does not answer: {type(exc).__name__}"
    return None


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A feedback database URL nobody else uses: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedback.db'}"
        return
    reason = _pg_reason()
    if reason:
        pytest.skip(reason)
    schema = f"ct_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"create schema {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with admin.begin() as conn:
        conn.execute(text(f"drop schema {schema} cascade"))
    admin.dispose()
