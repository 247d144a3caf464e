"""The registry on a real folder with the real packaged model."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from clicktune.adapters import (
    ClicktuneSettings,
    CorruptRegistryError,
    InvalidVersionError,
    ModelRegistry,
    NoLiveVersionError,
    NothingToRollBackError,
    VersionNotFoundError,
)
from clicktune.adapters.registry.store import parse_version


@pytest.fixture
def registry(settings: ClicktuneSettings) -> ModelRegistry:
    return ModelRegistry.from_settings(settings)


def test_bootstrap_makes_v0001_live(registry: ModelRegistry) -> None:
    assert registry.versions() == ["v0001"]
    assert registry.current() == "v0001"
    info = registry.get("v0001")
    assert info.status == "live"
    assert info.parent is None
    assert info.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert info.embedding_dim == 384
    assert (registry.path("v0001") / "modules.json").is_file()


def test_bootstrap_on_empty_folder(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "reg")
    assert registry.pointer() is None
    with pytest.raises(NoLiveVersionError, match="bootstrap"):
        registry.current()  # reading never writes a model
    assert registry.versions() == [] and registry.pointer() is None
    assert registry.bootstrap() == "v0001"  # explicit
    assert registry.bootstrap() == registry.current() == "v0001"  # and only once
    assert registry.versions() == ["v0001"]


def test_register_promote_rollback(registry: ModelRegistry, variant_model) -> None:
    v2 = registry.register(variant_model, {"training": {"pairs": 12}, "metrics": {"ndcg@10": 0.5}}, parent="v0001")
    assert v2 == "v0002"
    info = registry.get(v2)
    assert info.status == "candidate" and info.parent == "v0001"
    assert info.training == {"pairs": 12} and info.metrics == {"ndcg@10": 0.5}
    assert registry.current() == "v0001"  # registering never changes what is live

    registry.promote(v2)
    assert registry.current() == "v0002"
    assert registry.previous() == "v0001"
    assert registry.get("v0002").status == "live"
    assert registry.get("v0001").status == "retired"

    assert registry.rollback() == "v0001"
    assert registry.current() == "v0001"
    assert registry.get("v0001").status == "live"
    with pytest.raises(NothingToRollBackError):
        registry.rollback()


def test_retention_keeps_current_and_predecessor(registry: ModelRegistry, variant_model) -> None:
    for _ in range(4):
        registry.register(variant_model)
    registry.promote("v0002")
    registry.promote("v0003")  # CURRENT=v0003, predecessor v0002
    removed = registry.apply_retention(keep_last=2)
    assert "v0003" in registry.versions() and "v0002" in registry.versions()
    assert removed == ["v0001", "v0004", "v0005"]
    assert registry.versions() == ["v0002", "v0003"]
    with pytest.raises(ValueError):
        registry.apply_retention(keep_last=1)


def test_typed_errors_for_bad_input(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidVersionError, match="v0001"):
        registry.get("latest")
    for almost in ("v0002\n", " v0002", "v0002 ", "v002", "V0002"):
        with pytest.raises(InvalidVersionError, match="expected the form v0001"):
            parse_version(almost)  # the whole name, nothing before or after it
    assert parse_version("v0002") == 2 and parse_version("v10000") == 10000
    with pytest.raises(VersionNotFoundError, match="v0009"):
        registry.get("v0009")
    with pytest.raises(VersionNotFoundError):
        registry.promote("v0009")


def test_corrupt_files_raise_typed_errors(registry: ModelRegistry) -> None:
    info = registry.path("v0001") / "clicktune.json"
    original = info.read_text()
    info.write_text("{not json")
    with pytest.raises(CorruptRegistryError, match="clicktune.json"):
        registry.get("v0001")
    info.write_text(original)

    current = registry.root / "CURRENT"
    current.write_text("garbage")
    with pytest.raises(CorruptRegistryError, match="CURRENT"):
        registry.current()
    current.write_text(json.dumps({"version": "v0042", "history": []}))
    with pytest.raises(CorruptRegistryError, match="v0042"):
        registry.current()


def test_repair_rebuilds_the_history_current_had(registry: ModelRegistry, variant_model) -> None:
    for _ in range(3):
        registry.register(variant_model)
    registry.promote("v0002")
    registry.promote("v0003")
    registry.rollback()
    registry.promote("v0004")  # CURRENT: v0004 over [v0001, v0002]; v0003 was rolled back
    current = registry.root / "CURRENT"
    current.write_text("{")
    pointer, kept = registry.repair("v0004")
    assert (pointer.version, pointer.history) == ("v0004", ["v0001", "v0002"])
    assert kept is not None and kept.read_text() == "{"
    assert registry.rollback() == "v0002" and registry.rollback() == "v0001"
    assert registry.repair("v0001") is None  # CURRENT reads: nothing to repair


def test_repair_without_recorded_histories_takes_every_earlier_live_version(
    registry: ModelRegistry, variant_model
) -> None:
    registry.register(variant_model)
    registry.register(variant_model)
    registry.promote("v0003")
    for version in registry.versions():  # metadata written before histories were recorded
        info = registry.path(version) / "clicktune.json"
        info.write_text(json.dumps({k: v for k, v in json.loads(info.read_text()).items()
                                    if k not in ("promoted_at", "promoted_history")}))
    (registry.root / "CURRENT").write_text("garbage")
    pointer, _ = registry.repair(None)  # no alias to follow: the version whose metadata says live
    assert (pointer.version, pointer.history) == ("v0003", ["v0001"])


_REGISTER_SCRIPT = textwrap.dedent(
    """
    import sys
    from clicktune.adapters import ModelRegistry
    registry = ModelRegistry(sys.argv[1])
    model = registry.load_model("v0001")
    print("loaded", flush=True)
    registry.register(model, {"training": {"note": "killed"}})
    print("registered", flush=True)
    """
)


@pytest.mark.parametrize(
    "crash_at", ["registry.staging_created", "registry.model_saved", "registry.before_rename"]
)
def test_sigkill_during_register_leaves_no_version(registry: ModelRegistry, crash_at: str) -> None:
    env = {**os.environ, "CLICKTUNE_CRASH_AT": crash_at}
    proc = subprocess.run(
        [sys.executable, "-c", _REGISTER_SCRIPT, str(registry.root)], env=env, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "registered" not in proc.stdout
    assert registry.versions() == ["v0001"]
    assert any(registry.staging_dir.iterdir()), "the crash point should have left a staging folder"
    reopened = ModelRegistry(registry.root)
    assert not any(reopened.staging_dir.iterdir()), "a dead writer's staging folder is removed on open"
    assert reopened.register(reopened.load_model("v0001")) == "v0002"


def test_sigkill_at_a_random_moment_of_save(registry: ModelRegistry) -> None:
    """No crash point: kill -9 as soon as the save has started writing files."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _REGISTER_SCRIPT, str(registry.root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "loaded"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(p.is_file() for p in registry.staging_dir.rglob("*")):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert registry.versions() in (["v0001"], ["v0001", "v0002"])
    for version in registry.versions():  # whatever is visible is complete
        registry.get(version)
        registry.load_model(version)


def test_concurrent_registers_get_distinct_versions(registry: ModelRegistry, variant_model) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(3) as pool:
        versions = list(pool.map(lambda _: registry.register(variant_model), range(3)))
    assert sorted(versions) == ["v0002", "v0003", "v0004"]


def test_a_rollback_is_recorded_so_repair_keeps_it_from_being_rolled_back_again(
    registry: ModelRegistry, variant_model
) -> None:
    for _ in range(2):
        registry.register(variant_model)
    registry.promote("v0002")
    registry.promote("v0003")
    assert registry.pointer().rollback_ready
    registry.rollback()
    assert registry.pointer().rollback_ready is False and registry.get("v0002").live_by_rollback
    (registry.root / "CURRENT").write_text("{")
    pointer, _ = registry.repair("v0002")
    assert pointer.rollback_ready is False
    registry.promote("v0003")
    assert registry.pointer().rollback_ready and not registry.get("v0003").live_by_rollback
