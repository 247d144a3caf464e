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


def test_unknown_setting_raises_naming_the_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"unknown clicktune setting 'max_seq_lenght' \(did you mean 'max_seq_length'"):
        load_settings(max_seq_lenght=64)
    with pytest.raises(ConfigurationError, match="did you mean 'batch_size'"):
        load_settings(ClicktuneSettings(home=tmp_path), batch_sise=8)
    with pytest.raises(ConfigurationError, match="unknown clicktune setting 'flux'"):
        ClicktuneSettings(flux=1)  # type: ignore[call-arg]


def test_unknown_clicktune_variable_raises_naming_the_closest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CLICKTUNE_MAX_SEQ_LENGHT", "64")
    with pytest.raises(ConfigurationError, match="CLICKTUNE_MAX_SEQ_LENGHT .*did you mean 'CLICKTUNE_MAX_SEQ_LENGTH'"):
        ClicktuneSettings()
    monkeypatch.delenv("CLICKTUNE_MAX_SEQ_LENGHT")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OTHER_APP_KEY=1\nCLICKTUNE_HOEM=/srv/ct\n")
    with pytest.raises(ConfigurationError, match="CLICKTUNE_HOEM .*did you mean 'CLICKTUNE_HOME'"):
        ClicktuneSettings()


def test_clicktune_variables_that_are_not_settings_are_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CLICKTUNE_DEBUG", "CLICKTUNE_CRASH_AT", "CLICKTUNE_FAIL_AT", "CLICKTUNE_TEST_PG_URL"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("clicktune_batch_size", "7")  # names are case-insensitive, as pydantic-settings reads them
    assert ClicktuneSettings().batch_size == 7
