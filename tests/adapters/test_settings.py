from __future__ import annotations

from pathlib import Path

import pytest

from clicktune.adapters import ClicktuneSettings, ConfigurationError, load_settings


def test_embedded_defaults_under_dot_clicktune(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for var in ("CLICKTUNE_HOME", "CLICKTUNE_QDRANT_URL", "CLICKTUNE_FEEDBACK_URL"):
        monkeypatch.delenv(var, raising=False)
    s = ClicktuneSettings()
    assert s.resolved_registry_dir == Path(".clicktune/registry")
    assert s.resolved_qdrant_path == ".clicktune/qdrant"
    assert s.resolved_feedback_url == "sqlite:///.clicktune/feedback.db"
    assert s.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert s.collection_alias == "docs"


def test_environment_and_server_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKTUNE_QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("CLICKTUNE_QDRANT_API_KEY", "s3cret")
    monkeypatch.setenv("CLICKTUNE_FEEDBACK_URL", "postgresql+psycopg://u@db/clicks")
    monkeypatch.setenv("CLICKTUNE_COLLECTION_ALIAS", "contracts")
    s = ClicktuneSettings()
    assert s.resolved_qdrant_path is None
    assert s.qdrant_api_key is not None and s.qdrant_api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(s)
    assert s.resolved_feedback_url.startswith("postgresql")
    assert s.collection_alias == "contracts"


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"collection_alias": "docs__v0001"}, "__"),
        ({"qdrant_url": "http://x:6333", "qdrant_path": "/tmp/q"}, "not both"),
        ({"batch_size": 0}, "batch_size"),
        ({"keep_versions": 1}, "keep_versions"),
    ],
)
def test_bad_settings_raise_configuration_error(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(**overrides)


def test_overrides_on_existing_settings_are_validated(tmp_path: Path) -> None:
    base = ClicktuneSettings(home=tmp_path)
    assert load_settings(base, batch_size=8).batch_size == 8
    assert load_settings(base, batch_size=8).home == tmp_path
    with pytest.raises(ConfigurationError):
        load_settings(base, batch_size=-1)
