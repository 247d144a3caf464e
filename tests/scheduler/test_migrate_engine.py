"""``clicktune migrate-engine``: a local-mode home moved to the edge engine, whole, and crash-safe."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from shared_homes import clone_home

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.adapters.qdrant import close_shared_clients
from clicktune.adapters.qdrant.client import embedded_engine
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.cli import main

N = 30
QUERIES = ["vitamin D deficiency", "tumor suppressor mutation", "antibiotic resistance in bacteria"]


@pytest.fixture(scope="module")
def local_home(template_home: Path, tmp_path_factory: pytest.TempPathFactory, variant_model) -> Path:
    """A home made on local mode: v0001 indexed, then re-indexed to v0002 (two collections, the alias on v0002)."""
    home = clone_home(template_home, tmp_path_factory.mktemp("local-home"))
    settings = ClicktuneSettings(home=home, progress=False, embedded_engine="local")
    ModelRegistry.from_settings(settings).register(variant_model, parent="v0001")
    docs = list(BeirDataset.load(BUNDLED_SCIFACT).corpus.values())[:N]
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        ClicktuneVectorStore(settings, embeddings=emb).add_texts(
            [d.content for d in docs], metadatas=[{"title": d.title} for d in docs], ids=[d.doc_id for d in docs])
    close_shared_clients()
    assert main(["--home", str(home), "reindex", "--version", "v0002"]) == 0  # auto keeps local mode here
    close_shared_clients()
    return home


def _served(home: Path) -> dict:
    """What the home serves: engine, alias target, every document, and the ranking of a few queries."""
    settings = ClicktuneSettings(home=home, progress=False)
    try:
        with ClicktuneEmbeddings(settings, watch=False) as emb:
            store = ClicktuneVectorStore(settings, embeddings=emb, log_impressions=False)
            docs = store.get_by_ids([d.doc_id for d in list(BeirDataset.load(BUNDLED_SCIFACT).corpus.values())[:N]])
            return {
                "engine": embedded_engine(settings),
                "live": store.collections.require_live().collection,
                "collections": sorted(c.collection for c in store.collections.versions()),
                "documents": sorted((d.id, d.page_content, d.metadata["title"]) for d in docs),
                "rankings": [[d.id for d in store.similarity_search(q, k=5)] for q in QUERIES],
            }
    finally:
        close_shared_clients()


def test_migrate_engine_moves_every_collection_document_and_alias_and_keeps_a_backup(
    local_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    home = Path(shutil.copytree(local_home, tmp_path / "home"))
    before = _served(home)
    assert before["engine"] == "local" and len(before["documents"]) == N
    capsys.readouterr()
    assert main(["--home", str(home), "migrate-engine"]) == 0
    assert "is on the edge engine now" in capsys.readouterr().out
    after = _served(home)
    assert after["engine"] == "edge"
    assert {k: v for k, v in after.items() if k != "engine"} == {k: v for k, v in before.items() if k != "engine"}
    assert (home / "qdrant.local-backup" / "meta.json").is_file() and not (home / "qdrant.edge-migration").exists()
    assert main(["--home", str(home), "rollback"]) == 0  # v0001's collection came along: rollback still works
    close_shared_clients()
    assert _served(home)["live"] == "docs__v0001"
    capsys.readouterr()
    assert main(["--home", str(home), "migrate-engine"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_a_folder_in_use_is_refused_and_left_as_it_was(local_home: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    home = Path(shutil.copytree(local_home, tmp_path / "home"))
    settings = ClicktuneSettings(home=home, progress=False)
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        ClicktuneVectorStore(settings, embeddings=emb).similarity_search("x", k=1)  # the app holds the folder
        capsys.readouterr()
        assert main(["--home", str(home), "migrate-engine"]) == 1
        assert "is open in another process" in capsys.readouterr().err
    close_shared_clients()
    assert (home / "qdrant" / "meta.json").is_file() and not (home / "qdrant.edge-migration").exists()
    assert not (home / "qdrant.local-backup").exists()


@pytest.mark.parametrize("crash_at", ["migrate.copied_collection", "migrate.marked", "migrate.moved_aside"])
def test_a_sigkill_during_the_migration_leaves_a_home_that_serves_everything(local_home: Path, tmp_path: Path,
                                                                              crash_at: str) -> None:
    home = Path(shutil.copytree(local_home, tmp_path / "home"))
    before = _served(home)
    env = {**os.environ, "CLICKTUNE_CRASH_AT": crash_at}
    killed = subprocess.run([sys.executable, "-m", "clicktune.scheduler.cli", "--home", str(home), "migrate-engine"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    if crash_at == "migrate.moved_aside":
        assert not (home / "qdrant").exists()
        assert main(["--home", str(home), "status", "--json"]) == 0  # finds the home, and finishes the swap
        close_shared_clients()
    # Opened as it is after the kill: the old folder (before the copy is marked complete), or the finished
    # rename (a kill between the two renames is finished by the first process to open the home).
    served = _served(home)
    assert served["engine"] == ("edge" if crash_at == "migrate.moved_aside" else "local")
    assert {k: v for k, v in served.items() if k != "engine"} == {k: v for k, v in before.items() if k != "engine"}
    # Run again: it completes (or finds nothing to do), and nothing is lost.
    assert main(["--home", str(home), "migrate-engine"]) == 0
    close_shared_clients()
    after = _served(home)
    assert after["engine"] == "edge"
    assert {k: v for k, v in after.items() if k != "engine"} == {k: v for k, v in before.items() if k != "engine"}
