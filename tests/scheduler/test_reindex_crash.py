"""(c) A reindex SIGKILLed at each of its steps, in a subprocess on a persistent embedded Qdrant."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from shared_homes import clone_home

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.adapters.qdrant import close_shared_clients
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.reindex import BlueGreenReindexer

BEFORE_SWAP = ["reindex.created", "reindex.copied", "reindex.indexed", "reindex.verified", "reindex.before_swap"]
AFTER_SWAP = ["reindex.after_swap", "reindex.after_promote"]

_SCRIPT = textwrap.dedent(
    """
    import sys
    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.qdrant import IndexHandle
    from clicktune.scheduler.reindex import BlueGreenReindexer
    settings = ClicktuneSettings(home=sys.argv[1], progress=False)
    BlueGreenReindexer(IndexHandle.from_settings(settings)).run("v0002")
    print("finished")
    """
)


@pytest.fixture(scope="module")
def indexed_home(template_home: Path, tmp_path_factory: pytest.TempPathFactory, variant_model) -> Path:
    """v0001 live over 40 SciFact abstracts in a persistent embedded Qdrant; v0002 registered."""
    home = clone_home(template_home, tmp_path_factory.mktemp("crash-template"))
    settings = ClicktuneSettings(home=home, progress=False)
    ModelRegistry.from_settings(settings).register(variant_model, parent="v0001")
    docs = list(BeirDataset.load(BUNDLED_SCIFACT).corpus.values())[:40]
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        ClicktuneVectorStore(settings, embeddings=emb).add_texts([d.content for d in docs], ids=[d.doc_id for d in docs])
    close_shared_clients()
    return home


def _copy_home(indexed_home: Path, target: Path) -> Path:
    shutil.copytree(indexed_home, target)
    return target


def _kill_run(home: Path, crash_at: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CLICKTUNE_CRASH_AT": crash_at}
    return subprocess.run([sys.executable, "-c", _SCRIPT, str(home)], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("crash_at", BEFORE_SWAP + AFTER_SWAP)
def test_c_sigkill_at_each_step(indexed_home: Path, tmp_path: Path, crash_at: str) -> None:
    home = _copy_home(indexed_home, tmp_path / "home")
    proc = _kill_run(home, crash_at)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "finished" not in proc.stdout

    settings = ClicktuneSettings(home=home, progress=False)
    try:
        with ClicktuneEmbeddings(settings, watch=False) as emb:
            store = ClicktuneVectorStore(settings, embeddings=emb)
            live = store.collections.require_live()
            if crash_at in BEFORE_SWAP:
                assert live.collection == "docs__v0001"
                assert store.registry.current() == "v0001"
                assert store.collections.count("docs__v0001") == 40
            else:
                assert live.collection == "docs__v0002"  # the swap happened; CURRENT catches up below
            hits = store.similarity_search("cerebral white matter in newborns", k=3)
            assert len(hits) == 3
            assert {h.metadata["model_version"] for h in hits} == {h.metadata["query_model_version"] for h in hits}

            reindexer = BlueGreenReindexer(store.handle)
            if crash_at in BEFORE_SWAP:
                assert "docs__v0002" in [c.collection for c in store.collections.versions()]
                report = reindexer.run("v0002")
                assert report.points == 40
                assert report.removed_orphans == ["docs__v0002"]
            else:
                reindexer.reconcile()
            assert store.collections.require_live().collection == "docs__v0002"
            assert store.registry.current() == "v0002"
            assert [c.collection for c in store.collections.versions()] == ["docs__v0001", "docs__v0002"]
            assert store.collections.count("docs__v0002") == 40
            assert store.similarity_search("cerebral white matter in newborns", k=1)[0].metadata["model_version"] == "v0002"
    finally:
        close_shared_clients()
