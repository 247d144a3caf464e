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

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine

# The first and last crash points before the commit point, and every one after it: the points in
# between (reindex.copied, reindex.indexed, reindex.verified) leave the same state as these two (the
# alias on the old, complete collection; an orphan to drop), and the crash soak
# (tests/scheduler/test_crash_soak.py, benchmarks/soak.py) kills reindexes at random moments besides.
BEFORE_SWAP = ["reindex.created", "reindex.before_swap"]
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
def indexed_home(template_home: Path, tmp_path_factory: pytest.TempPathFactory, variant_model,
                 embedded_engine: str) -> Path:
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
def test_a_sigkill_at_any_reindex_step_leaves_a_complete_live_collection(indexed_home: Path, tmp_path: Path, crash_at: str) -> None:
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
            assert {h.metadata["clicktune"]["model_version"] for h in hits} == {h.metadata["clicktune"]["query_model_version"] for h in hits}

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
            assert store.similarity_search("cerebral white matter in newborns", k=1)[0].metadata["clicktune"]["model_version"] == "v0002"
    finally:
        close_shared_clients()


_ROLLBACK_SCRIPT = textwrap.dedent(
    """
    import sys
    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.qdrant import IndexHandle
    from clicktune.scheduler.reindex import rollback
    rollback(IndexHandle.from_settings(ClicktuneSettings(home=sys.argv[1], progress=False)))
    print("finished")
    """
)


def _ids(store: ClicktuneVectorStore, collection: str) -> set[str]:
    return store.handle.index.doc_ids(store.collections.version_of(collection))


def test_a_rollback_killed_after_its_swap_then_writes_then_reindex_keeps_every_write(
    indexed_home: Path, tmp_path: Path
) -> None:
    """Killed between the alias swap and CURRENT: the app then writes to the collection the alias
    serves; the next run must bring CURRENT to the alias, not the alias back to the stale collection."""
    home = _copy_home(indexed_home, tmp_path / "home")
    settings = ClicktuneSettings(home=home, progress=False)
    try:
        with ClicktuneEmbeddings(settings, watch=False) as emb:
            BlueGreenReindexer(ClicktuneVectorStore(settings, embeddings=emb).handle).run("v0002")
    finally:
        close_shared_clients()
    proc = subprocess.run([sys.executable, "-c", _ROLLBACK_SCRIPT, str(home)],
                          env={**os.environ, "CLICKTUNE_CRASH_AT": "rollback.after_swap"},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    try:
        with ClicktuneEmbeddings(settings, watch=False) as emb:
            store = ClicktuneVectorStore(settings, embeddings=emb)
            assert store.collections.require_live().collection == "docs__v0001"
            before = _ids(store, "docs__v0001")
            store.add_texts(["A note written after the interrupted rollback."], ids=["late-note"])
            deleted = sorted(before)[0]
            store.delete([deleted])
            expected = (before | {"late-note"}) - {deleted}
            BlueGreenReindexer(store.handle).reconcile()
            live = store.collections.require_live()
            assert live.collection == "docs__v0001" and store.registry.current() == "v0001"
            assert _ids(store, live.collection) == expected
            report = BlueGreenReindexer(store.handle).run("v0002")  # the next reindex builds from the truth
            assert report.swapped and _ids(store, "docs__v0002") == expected
    finally:
        close_shared_clients()


_PHASE_SCRIPT = textwrap.dedent(
    """
    import sys
    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.qdrant import IndexHandle
    from clicktune.scheduler.challenger import ChallengerPhase
    settings = ClicktuneSettings(home=sys.argv[1], progress=False)
    handle = IndexHandle.from_settings(settings)
    phase = ChallengerPhase(handle, ClickLog.from_settings(settings))
    end = getattr(phase, sys.argv[2])
    end(phase.active(), {"decision": sys.argv[2], "reason": "crash test"})
    print("finished")
    """
)


@pytest.mark.parametrize(("action", "crash_at"), [
    ("promote", "challenger.before_swap"), ("promote", "challenger.after_swap"),
    ("promote", "challenger.after_promote"), ("drop", "challenger.after_end"),
])
def test_sigkill_while_ending_a_challenger_phase(indexed_home: Path, tmp_path: Path, action: str, crash_at: str) -> None:
    from clicktune.scheduler.challenger import ChallengerPhase
    from clicktune.scheduler.loop import RetrainLoop

    home = _copy_home(indexed_home, tmp_path / "home")
    settings = ClicktuneSettings(home=home, progress=False, min_new_clicks=10_000, challenger_settle_seconds=0)
    try:
        with ClicktuneEmbeddings(settings, watch=False) as emb:
            store = ClicktuneVectorStore(settings, embeddings=emb)
            phase = ChallengerPhase(store.handle, store.feedback, settings)
            BlueGreenReindexer(store.handle).run("v0002", hand_off=lambda live, built, _: phase.start(live, built, {}))
    finally:
        close_shared_clients()
    proc = subprocess.run([sys.executable, "-c", _PHASE_SCRIPT, str(home), action],
                          env={**os.environ, "CLICKTUNE_CRASH_AT": crash_at}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    try:
        with ClicktuneEmbeddings(settings, watch=False) as emb:
            store = ClicktuneVectorStore(settings, embeddings=emb)
            hits = store.similarity_search("cerebral white matter in newborns", k=4)
            assert len(hits) == 4 and all(h.metadata["clicktune"]["model_version"] == h.metadata["clicktune"]["query_model_version"] for h in hits)
            before = _ids(store, store.collections.require_live().collection)
            store.add_texts(["A note written right after the kill."], ids=["late-note"])
            deleted = sorted(before)[0]
            store.delete([deleted])
            expected = (before | {"late-note"}) - {deleted}

            outcome = RetrainLoop(settings, handle=store.handle, feedback=store.feedback).tick()  # the next run
            assert outcome.status in ("running", "skipped"), outcome.reason
            live = store.collections.require_live()
            assert store.registry.current() == live.version
            assert _ids(store, live.collection) == expected
            running = store.feedback.challengers.active("docs")
            if crash_at == "challenger.before_swap":  # resumed: still running, champion serving, writes mirrored
                assert running is not None and live.version == "v0001" and outcome.status == "running"
                assert _ids(store, "docs__v0002") == expected
            elif action == "promote":  # the swap happened: the promotion is finished, the champion kept
                assert running is None and live.version == "v0002"
                assert store.feedback.challengers.history()[0].status == "promoted"
                assert _ids(store, "docs__v0001") == expected  # rollback still loses nothing
            else:
                assert running is None and live.version == "v0001"
    finally:
        close_shared_clients()
