"""What clicktune creates on disk is owner-only by default (files 0600, folders 0700), whatever the
umask; ``file_access="group"`` widens it to 0660 / 0770; what already exists keeps its mode."""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.adapters.clicklog import ClickLog, Impression, ShownResult
from clicktune.adapters.qdrant.client import close_shared_clients, qdrant_client_from_settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    old = os.umask(0o022)  # the common default, which leaves files world-readable
    yield
    os.umask(old)


def _feedback(settings: ClicktuneSettings) -> ClickLog:
    log = ClickLog.from_settings(settings)
    log.log_impression(Impression(search_id=str(uuid.uuid4()), query="q", model_version="v0001",
                                  collection="docs__v0001", results=[ShownResult(doc_id="a", rank=1, score=1.0)]))
    return log


def _registry_files(root: Path) -> tuple[list[Path], list[Path]]:
    everything = [root, *root.rglob("*")]
    return [p for p in everything if p.is_file()], [p for p in everything if p.is_dir()]


def test_the_feedback_database_and_the_registry_are_owner_only(tmp_path: Path, umask: None) -> None:
    home = tmp_path / "home"
    settings = ClicktuneSettings(home=home, progress=False)
    log = _feedback(settings)
    db = home / "feedback.db"
    assert {p.name: _mode(p) for p in home.glob("feedback.db*")} == {
        "feedback.db": 0o600, "feedback.db-wal": 0o600, "feedback.db-shm": 0o600}
    log.close()
    assert _mode(home) == 0o700 and _mode(db) == 0o600

    registry = ModelRegistry.from_settings(settings)
    registry.bootstrap()
    registry.update_info("v0001", metrics={"ndcg@10": 0.5})
    files, folders = _registry_files(home / "registry")
    names = {p.relative_to(home / "registry").as_posix() for p in files}
    assert {"CURRENT", ".lock", "models/v0001/clicktune.json", "models/v0001/model.safetensors"} <= names
    assert {p.name: _mode(p) for p in files if _mode(p) != 0o600} == {}
    assert {p.name: _mode(p) for p in folders if _mode(p) != 0o700} == {}


@pytest.mark.both_engines
def test_the_embedded_qdrant_folder_is_owner_only(tmp_path: Path, umask: None, embedded_engine: str) -> None:
    settings = ClicktuneSettings(home=tmp_path / "home", embedded_engine=embedded_engine)
    try:
        qdrant_client_from_settings(settings).get_collections()
    finally:
        close_shared_clients()
    assert _mode(tmp_path / "home") == 0o700 and _mode(tmp_path / "home" / "qdrant") == 0o700


def test_group_access_widens_to_the_group_and_existing_folders_keep_their_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)  # the operator's folder
    old = os.umask(0o077)  # a umask neither narrows nor widens the rule
    try:
        settings = ClicktuneSettings(home=shared / "home", registry_dir=shared / "registry", file_access="group")
        assert settings.file_modes.file == 0o660 and settings.file_modes.folder == 0o770
        _feedback(settings).close()
        registry = ModelRegistry.from_settings(settings)
        registry.bootstrap()
    finally:
        os.umask(old)
    assert _mode(shared) == 0o755
    assert _mode(shared / "home") == 0o770 and _mode(shared / "home" / "feedback.db") == 0o660
    files, folders = _registry_files(shared / "registry")
    assert {p.name: _mode(p) for p in files if _mode(p) != 0o660} == {}
    assert {p.name: _mode(p) for p in folders if _mode(p) != 0o770} == {}
    assert ClicktuneSettings().file_access == "owner"
