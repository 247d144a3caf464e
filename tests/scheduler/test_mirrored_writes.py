"""A write reaches the live, rollback and challenger collections together, or none of them.

Reliability issue, items 2 and 3: metadata Qdrant cannot store failed at the upsert after a first
batch reached the live collection only; a failure in a later target left earlier targets written;
and dropping a challenger failed writes that had already reached the live collection.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from shared_homes import clone_home

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.adapters.crashpoints import FAIL_ENV_VAR, InjectedFailure
from clicktune.adapters.errors import InvalidDocumentsError, ModelNotFoundError
from clicktune.adapters.qdrant import close_shared_clients
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.challenger import ChallengerPhase
from clicktune.scheduler.reindex import BlueGreenReindexer

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine


def _settings(home: Path) -> ClicktuneSettings:
    return ClicktuneSettings(home=home, progress=False, challenger_refresh_seconds=0.0,
                             challenger_settle_seconds=0.0, interleave_share=1.0)


@pytest.fixture(scope="module")
def docs() -> list[tuple[str, str]]:
    corpus = BeirDataset.load(BUNDLED_SCIFACT).corpus
    return [(doc.doc_id, doc.content[:300]) for doc in list(corpus.values())[:40]]


@pytest.fixture(scope="module")
def three_targets(template_home: Path, tmp_path_factory: pytest.TempPathFactory, variant_model, docs,
                  embedded_engine: str) -> Path:
    """A home where v0002 serves 40 abstracts, v0001 is kept for rollback and v0003 runs as challenger."""
    home = clone_home(template_home, tmp_path_factory.mktemp("targets") / "home")
    settings = _settings(home)
    registry = ModelRegistry.from_settings(settings)
    with ClicktuneEmbeddings(settings, watch=False) as embeddings:
        store = ClicktuneVectorStore(settings, embeddings=embeddings)
        store.add_texts([t for _, t in docs], ids=[d for d, _ in docs])
        BlueGreenReindexer(store.handle).run(registry.register(variant_model, parent="v0001"))
        phase = ChallengerPhase(store.handle, store.feedback, settings)
        BlueGreenReindexer(store.handle).run(registry.register(variant_model, parent="v0002"),
                                             hand_off=lambda live, built, _: phase.start(live, built, {"passed": True}))
    close_shared_clients()
    return home


@pytest.fixture
def store(three_targets: Path, tmp_path: Path):
    home = clone_home(three_targets, tmp_path / "home")  # weights linked, metadata copied
    shutil.copytree(three_targets, home, ignore=shutil.ignore_patterns("registry"), dirs_exist_ok=True)
    embeddings = ClicktuneEmbeddings(_settings(home), watch=False)
    store = ClicktuneVectorStore(_settings(home), embeddings=embeddings)
    assert [t.collection for t in store._write_targets(store.collections.require_live())] == [
        "docs__v0002", "docs__v0001", "docs__v0003"]
    yield store
    embeddings.close()
    close_shared_clients()


def _contents(store: ClicktuneVectorStore) -> dict[str, dict[str, str]]:
    """Each target's documents, id -> text."""
    found = {}
    for collection in ("docs__v0002", "docs__v0001", "docs__v0003"):
        version = store.collections.version_of(collection)
        ids = sorted(store.handle.index.doc_ids(version))
        found[collection] = store.handle.index.texts(version, ids)
    return found


class Opaque:
    """An object Qdrant has no JSON form for."""


@pytest.mark.parametrize("bad, message", [
    (float("nan"), "is nan: Qdrant stores finite numbers only"),
    (float("inf"), "is inf: Qdrant stores finite numbers only"),
    ("caf\udce9", "unpaired surrogate"),
    (b"raw", "of type bytes.*decode it"),
    (Opaque(), "of type Opaque.*pass a str, a number"),
    ([1.0, {"deep": float("-inf")}], r"\[1\]\['deep'\] is -inf"),
    (np.int64(3), "of type int64.*pass int\\(\\) or float\\(\\)"),
    ({1.5, float("nan")}, r"is nan"),
    (2**64, "outside the 64-bit range"),
], ids=["nan", "inf", "lone-surrogate", "bytes", "object", "nested-inf", "numpy", "nan-in-a-set", "huge-int"])
def test_metadata_qdrant_cannot_store_is_refused_before_any_target_is_written(store, docs, bad, message) -> None:
    before = _contents(store)
    metadatas = [{"n": i, "source": "batch"} for i in range(100)]
    metadatas[79]["value"] = bad
    with pytest.raises(InvalidDocumentsError, match=rf"metadata 79\['value'\].*{message}"):
        store.add_texts([f"new note {i} on cell biology" for i in range(100)], metadatas,
                        ids=[f"new-{i}" for i in range(100)])
    assert _contents(store) == before  # live, rollback and challenger: not one of the first batch


def test_a_failure_in_a_later_target_puts_every_target_back(store, docs) -> None:
    """The challenger's model cannot load: the live and rollback collections, written first, get
    their documents back as they were (the updated one's old text, no new one)."""
    before = _contents(store)
    for weights in (store.registry.models_dir / "v0003").glob("*.safetensors"):
        weights.unlink()  # a hard link of the template's: the template keeps its copy
    updated = docs[3][0]
    with pytest.raises(ModelNotFoundError, match="models/v0003"):  # the loader's own error, unchanged
        store.add_texts([f"replacement {i}" for i in range(70)], ids=[updated, *[f"new-{i}" for i in range(69)]])
    after = _contents(store)
    assert after == before
    assert after["docs__v0002"][updated] == docs[3][1]


def test_a_delete_failing_in_a_mirror_target_is_undone_in_the_live_collection(store, docs, monkeypatch) -> None:
    before = _contents(store)
    monkeypatch.setenv(FAIL_ENV_VAR, "write.mirror")
    with pytest.raises(InjectedFailure):
        store.delete([docs[0][0], docs[1][0]])
    assert _contents(store) == before
    monkeypatch.delenv(FAIL_ENV_VAR)
    store.delete([docs[0][0]])
    assert all(docs[0][0] not in texts for texts in _contents(store).values())


def test_writers_racing_a_drop_never_see_a_failed_write_that_was_applied(store) -> None:
    """Each write either raises and is absent, or returns and is present: none fails after it landed."""
    phase = ChallengerPhase(store.handle, store.feedback, store.settings)
    running = phase.active()
    outcomes: dict[str, str] = {}
    lock = threading.Lock()
    dropped = threading.Event()

    def writer(n: int) -> None:
        since_drop = 0
        for i in range(200):
            doc_id = f"w{n}-{i}"
            try:
                store.add_texts([f"writer {n} note {i} on protein folding"], ids=[doc_id])
                outcome = "ok"
            except Exception as exc:  # noqa: BLE001 - recorded, then checked against what was stored
                outcome = f"{type(exc).__name__}: {exc}"
            with lock:
                outcomes[doc_id] = outcome
            since_drop += dropped.is_set()
            if since_drop >= 5:  # every writer keeps going past the drop
                return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    while len(outcomes) < 8:  # writers are mid-flight when the phase ends
        threading.Event().wait(0.01)
    phase.drop(running, {"decision": "drop", "reason": "test"})
    dropped.set()
    for thread in threads:
        thread.join()
    assert not store.collections.exists("docs__v0003")
    present = store.handle.index.doc_ids(store.collections.require_live().version)
    applied_but_failed = {i: o for i, o in outcomes.items() if o != "ok" and i in present}
    acknowledged_missing = {i for i, o in outcomes.items() if o == "ok" and i not in present}
    assert applied_but_failed == {}
    assert acknowledged_missing == set()
    assert [o for o in outcomes.values() if o != "ok"] == []  # and the drop fails none
