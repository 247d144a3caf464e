"""Blue-green re-indexing with the real model and embedded Qdrant: no mocks of either."""

from __future__ import annotations

import random
import threading
import time

import pytest
from loop_fixtures import lose_lease

from clicktune.adapters import ClicktuneSettings, ModelRegistry, VersionNotFoundError
from clicktune.adapters.errors import LeaseLostError, NothingToRollBackError
from clicktune.adapters.qdrant import (
    AliasIsCollectionError,
    AliasNotFoundError,
    IndexHandle,
    NothingToReindexError,
    VersionAlreadyLiveError,
)
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.loop import RetrainLoop, lock_name
from clicktune.scheduler.reindex import BlueGreenReindexer, rollback

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine


@pytest.fixture(scope="module")
def scifact_docs() -> list[tuple[str, str]]:
    corpus = BeirDataset.load(BUNDLED_SCIFACT).corpus
    return [(doc.doc_id, doc.content) for doc in list(corpus.values())[:150]]


@pytest.fixture
def store(settings: ClicktuneSettings, variant_model):
    """A live v0001 collection of 60 SciFact abstracts, and v0002 registered (not yet live)."""
    registry = ModelRegistry.from_settings(settings)
    registry.register(variant_model, parent="v0001")
    embeddings = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=embeddings)
    yield store
    embeddings.close()


def _index(store: ClicktuneVectorStore, docs: list[tuple[str, str]]) -> None:
    store.add_texts([t for _, t in docs], [{"source": "scifact", "n": i} for i, _ in enumerate(docs)],
                    ids=[d for d, _ in docs])


def _live_contents(store: ClicktuneVectorStore) -> dict[str, tuple[str, dict]]:
    live = store.collections.require_live()
    documents = store.get_by_ids(sorted(store.handle.index.doc_ids(live.version)))
    return {d.id: (d.page_content, d.metadata) for d in documents}


def test_reindex_swaps_alias_then_current(store: ClicktuneVectorStore, scifact_docs) -> None:
    _index(store, scifact_docs[:40])
    before = store.similarity_search(scifact_docs[3][1], k=3)
    assert before[0].id == scifact_docs[3][0] and before[0].metadata["clicktune"]["model_version"] == "v0001"

    report = BlueGreenReindexer(store.handle).run("v0002")
    assert report.points == 40 and report.target == "docs__v0002"
    assert store.collections.require_live().collection == "docs__v0002"
    assert store.registry.current() == "v0002"
    assert [c.collection for c in store.collections.versions()] == ["docs__v0001", "docs__v0002"]
    after = store.similarity_search(scifact_docs[3][1], k=3)
    assert after[0].id == scifact_docs[3][0]
    assert {d.metadata["clicktune"]["model_version"] for d in after} == {"v0002"}
    assert {d.metadata["clicktune"]["query_model_version"] for d in after} == {"v0002"}
    assert store.get_by_ids([scifact_docs[5][0]])[0].metadata == {"source": "scifact", "n": 5}


def test_a_reader_searches_through_reindex_and_swap(store: ClicktuneVectorStore, scifact_docs) -> None:
    _index(store, scifact_docs[:60])
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: list[tuple[str, str]] = []
    queries = [t[:200] for _, t in scifact_docs[:60]]

    def reader() -> None:
        i = 0
        while not stop.is_set():
            try:
                for doc in store.similarity_search(queries[i % len(queries)], k=5):
                    seen.append((doc.metadata["clicktune"]["model_version"], doc.metadata["clicktune"]["query_model_version"]))
            except BaseException as exc:  # noqa: BLE001 - the test counts every failure
                errors.append(exc)
            i += 1

    thread = threading.Thread(target=reader)
    thread.start()
    time.sleep(0.3)
    BlueGreenReindexer(store.handle).run("v0002")
    time.sleep(0.3)
    stop.set()
    thread.join()
    assert errors == []
    assert all(model == query for model, query in seen)
    versions = {model for model, _ in seen}
    assert versions == {"v0001", "v0002"}, f"reader should have seen both sides of the swap: {versions}"


def test_writes_during_reindex_are_kept(store: ClicktuneVectorStore, scifact_docs) -> None:
    base = scifact_docs[:80]
    _index(store, base)
    expected = {doc_id: (text, {"source": "scifact", "n": i}) for i, (doc_id, text) in enumerate(base)}
    extra = scifact_docs[80:150]
    lock = threading.Lock()
    started = threading.Event()

    def writer(worker: int) -> None:
        rng = random.Random(worker)
        mine = [d for i, d in enumerate(base) if i % 3 == worker]
        new = [d for i, d in enumerate(extra) if i % 3 == worker]
        started.wait()
        for step in range(12):
            op = step % 3
            if op == 0 and new:  # add a new document
                doc_id, text = new.pop()
                meta = {"source": "writer", "worker": worker}
                store.add_texts([text], [meta], ids=[doc_id])
                with lock:
                    expected[doc_id] = (text, meta)
            elif op == 1 and mine:  # update an existing one
                doc_id, text = mine.pop(rng.randrange(len(mine)))
                meta = {"source": "updated", "step": step}
                store.add_texts([text + " (revised)"], [meta], ids=[doc_id])
                with lock:
                    expected[doc_id] = (text + " (revised)", meta)
            elif mine:  # delete one
                doc_id, _ = mine.pop(rng.randrange(len(mine)))
                store.delete([doc_id])
                with lock:
                    expected.pop(doc_id)
            time.sleep(0.05)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
    for t in threads:
        t.start()
    reindexer = BlueGreenReindexer(store.handle, batch_size=8)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.update(report=reindexer.run("v0002")))
    runner.start()
    time.sleep(0.5)
    started.set()
    for t in threads:
        t.join()
    runner.join()
    report = result["report"]
    assert report.replayed > 0, "writers should have overlapped the copy"
    assert store.collections.require_live().version == "v0002"
    assert _live_contents(store) == expected
    # A document revised during the copy is embedded by the new model in the new collection.
    revised = next(doc_id for doc_id, (text, _) in expected.items() if text.endswith("(revised)"))
    hit = store.similarity_search(expected[revised][0], k=1)[0]
    assert hit.id == revised and hit.metadata["clicktune"]["model_version"] == "v0002"
    # and mirrored to the kept previous collection, so a rollback loses nothing either
    rollback(store.handle)
    assert _live_contents(store) == expected


def test_rollback_needs_no_encoding_and_a_second_rollback_is_refused(store: ClicktuneVectorStore, scifact_docs, settings) -> None:
    _index(store, scifact_docs[:30])
    query = scifact_docs[7][1][:300]
    ranking_v1 = [d.id for d in store.similarity_search(query, k=5)]
    BlueGreenReindexer(store.handle).run("v0002")
    assert store.similarity_search(query, k=1)[0].metadata["clicktune"]["model_version"] == "v0002"

    def no_encoding(version: str):
        raise AssertionError(f"rollback tried to load/encode with {version}")

    handle = IndexHandle.from_settings(settings, client=store.client, registry=store.registry, encoder=no_encoding)
    assert rollback(handle) == "v0001"
    assert store.collections.require_live().collection == "docs__v0001"
    assert store.registry.current() == "v0001"
    results = store.similarity_search(query, k=5)
    assert [d.id for d in results] == ranking_v1
    assert {(d.metadata["clicktune"]["model_version"], d.metadata["clicktune"]["query_model_version"]) for d in results} == {("v0001", "v0001")}
    with pytest.raises(NothingToRollBackError):
        rollback(handle)


def test_reindex_refuses_bad_input_with_typed_errors(store: ClicktuneVectorStore, scifact_docs, settings, variant_model) -> None:
    reindexer = BlueGreenReindexer(store.handle)
    with pytest.raises(NothingToReindexError, match="add documents"):
        reindexer.run("v0002")  # no alias yet
    with pytest.raises(AliasNotFoundError):
        store.collections.require_live()
    assert store.similarity_search("anything") == []

    store.add_texts(["only one"], ids=["x"])
    store.delete(["x"])
    with pytest.raises(NothingToReindexError, match="empty"):
        reindexer.run("v0002")
    _index(store, scifact_docs[:20])
    live = store.collections.require_live().collection
    count = store.client.count(live).count
    with pytest.raises(ValueError, match="2 texts but 1 ids"):
        store.add_texts(["a", "b"], ids=["a"])
    with pytest.raises(ValueError, match="2 texts but 1 metadatas"):
        store.add_texts(["a", "b"], ids=["a", "b"], metadatas=[{}])
    assert store.client.count(live).count == count  # nothing half-written
    with pytest.raises(VersionNotFoundError):
        reindexer.run("v0042")
    with pytest.raises(VersionAlreadyLiveError):
        reindexer.run("v0001")

    # A model with another dimension is allowed: the new collection gets the new size.
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    base = store.registry.load_model("v0001")
    smaller = SentenceTransformer(modules=[*base, Dense(384, 128)])
    v3 = store.registry.register(smaller, parent="v0001")
    reindexer.run(v3)
    info = store.client.get_collection(f"docs__{v3}")
    assert info.config.params.vectors.size == 128
    hit = store.similarity_search(scifact_docs[4][1], k=1)[0]
    assert hit.id == scifact_docs[4][0] and hit.metadata["clicktune"]["model_version"] == v3

    # An alias name that is a real collection is refused with a clear error.
    from qdrant_client import models

    store.client.create_collection("contracts", vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE))
    clash = ClicktuneVectorStore(settings, alias="contracts", embeddings=store.embeddings, client=store.client)
    with pytest.raises(AliasIsCollectionError, match="real Qdrant collection"):
        clash.similarity_search("x")
    with pytest.raises(AliasIsCollectionError):
        clash.add_texts(["x"])


def test_failed_verification_leaves_everything_as_it_was(store: ClicktuneVectorStore, scifact_docs) -> None:
    """A candidate that maps every document to the same vector cannot find anything: refused."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Dense

    _index(store, scifact_docs[:40])
    constant = Dense(384, 16)
    with torch.no_grad():
        constant.linear.weight.zero_()
        constant.linear.bias.fill_(1.0)
    broken = SentenceTransformer(modules=[*store.registry.load_model("v0001"), constant])
    v3 = store.registry.register(broken, parent="v0001")
    from clicktune.adapters.qdrant import ReindexVerificationError

    with pytest.raises(ReindexVerificationError, match="does not find itself"):
        BlueGreenReindexer(store.handle, verify_queries=8).run(v3)
    assert store.collections.require_live().collection == "docs__v0001"
    assert store.registry.current() == "v0001"
    assert [c.collection for c in store.collections.versions()] == ["docs__v0001"]


# A run that lost its lease changes nothing (reliability issue, defect 6) -------------------------


def test_a_run_that_lost_its_lease_neither_swaps_nor_rolls_back(store: ClicktuneVectorStore, scifact_docs,
                                                                settings: ClicktuneSettings) -> None:
    """A second worker took the lock after the first one's lease ran out, while the first still worked:
    the first must not move the alias or CURRENT (the new holder owns them now)."""
    _index(store, scifact_docs[:30])
    # model_copy skips the settings' 10 s floor: a 2 s lease keeps the test short
    loop = RetrainLoop(settings.model_copy(update={"lock_lease_seconds": 2}), handle=store.handle,
                       feedback=store.feedback)
    name = lock_name(store.collections.alias)
    with loop.lease() as lease:
        lose_lease(store.feedback, name, 2)
        with pytest.raises(LeaseLostError):
            BlueGreenReindexer(store.handle, guard=lease.ensure_held).run("v0002")
        assert store.collections.require_live().collection == "docs__v0001"
        assert store.registry.current() == "v0001" and store.registry.pointer().history == []
        assert [c.collection for c in store.collections.versions()] == ["docs__v0001"]  # the candidate's is gone
    assert store.feedback.lock_holder(name)[0] == "another-worker"  # our release left the new holder's lock
    assert store.feedback.release_lock(name, "another-worker")

    with loop.lease() as lease:
        BlueGreenReindexer(store.handle, guard=lease.ensure_held).run("v0002")  # held: it swaps
        assert store.collections.require_live().collection == "docs__v0002"
        lose_lease(store.feedback, name, 2)
        with pytest.raises(LeaseLostError):
            rollback(store.handle, guard=lease.ensure_held)
        assert store.collections.require_live().collection == "docs__v0002"
        assert store.registry.current() == "v0002" and store.registry.previous() == "v0001"
    assert store.similarity_search(scifact_docs[3][1], k=1)[0].metadata["clicktune"]["model_version"] == "v0002"


# keep_versions is applied (reliability issue, defect 9) ------------------------------------------


def test_keep_versions_bounds_the_model_folders_on_disk_and_rollback_still_works(settings: ClicktuneSettings,
                                                                                 variant_model, scifact_docs) -> None:
    """apply_retention was called only from tests: with keep_versions=2, four folders stayed."""
    settings = settings.model_copy(update={"keep_versions": 2})
    with ClicktuneEmbeddings(settings, watch=False) as embeddings:
        store = ClicktuneVectorStore(settings, embeddings=embeddings)
        _index(store, scifact_docs[:30])
        for _ in range(3):
            version = store.registry.register(variant_model, parent=store.registry.current())
            BlueGreenReindexer(store.handle).run(version)
        assert store.registry.current() == "v0004"
        assert sorted(p.name for p in store.registry.models_dir.iterdir()) == ["v0003", "v0004"]
        assert [c.collection for c in store.collections.versions()] == ["docs__v0003", "docs__v0004"]
        assert rollback(store.handle) == "v0003"
        assert store.collections.require_live().collection == "docs__v0003" and store.registry.current() == "v0003"
        hit = store.similarity_search(scifact_docs[4][1], k=1)[0]
        assert hit.id == scifact_docs[4][0] and hit.metadata["clicktune"]["model_version"] == "v0003"


def test_reindexing_to_the_version_kept_for_rollback_is_refused_and_keeps_its_collection(
    store: ClicktuneVectorStore, scifact_docs
) -> None:
    """Found by the crash soak: rebuilding the rollback collection dropped it first, so a kill mid-build
    left rollback a partial copy missing every write acknowledged since the promotion."""
    from clicktune.adapters.qdrant import VersionKeptForRollbackError

    _index(store, scifact_docs[:30])
    BlueGreenReindexer(store.handle).run("v0002")
    store.add_texts(["written after the promotion"], ids=["late"])
    with pytest.raises(VersionKeptForRollbackError, match="clicktune rollback"):
        BlueGreenReindexer(store.handle).run("v0001")
    assert "late" in _ids(store, "docs__v0001") and len(_ids(store, "docs__v0001")) == 31
    assert rollback(store.handle) == "v0001"
    assert store.get_by_ids(["late"])[0].id == "late"


def _ids(store: ClicktuneVectorStore, collection: str) -> set[str]:
    return store.handle.index.doc_ids(store.collections.version_of(collection))


def test_after_a_rollback_the_version_before_is_not_served_again_without_reindexing(
    store: ClicktuneVectorStore, scifact_docs, variant_model
) -> None:
    """Found by the crash soak: v1 -> v2 -> v3, rollback to v2, then a second rollback served v1's
    collection, which had stopped receiving writes when v2 replaced v1: every add since was lost and
    every delete undone. Rollback is one step back to a complete collection; further back re-encodes."""
    store.registry.register(variant_model, parent="v0001")  # v0003
    _index(store, scifact_docs[:20])
    BlueGreenReindexer(store.handle).run("v0002")
    BlueGreenReindexer(store.handle).run("v0003")
    store.add_texts(["written while v0003 served"], ids=["late"])
    assert rollback(store.handle) == "v0002"
    assert store.handle.rollback_version("v0002") is None  # writers mirror nowhere stale
    store.add_texts(["written after the rollback"], ids=["later"])
    store.delete([scifact_docs[0][0]])
    with pytest.raises(NothingToRollBackError, match="clicktune reindex --version v0001"):
        rollback(store.handle)
    assert store.collections.require_live().collection == "docs__v0002"
    assert {"late", "later"} <= _ids(store, "docs__v0002") and scifact_docs[0][0] not in _ids(store, "docs__v0002")
    # Re-encoding v0001 from the live collection is allowed, and makes rollback possible again.
    BlueGreenReindexer(store.handle).run("v0001")
    assert {"late", "later"} <= _ids(store, "docs__v0001")
    assert rollback(store.handle) == "v0002"
    assert store.registry.pointer().rollback_ready is False


def test_a_refused_approval_swaps_nothing_and_the_report_carries_the_verdict(
    store: ClicktuneVectorStore, scifact_docs
) -> None:
    """The offline check is the reindex's approver: its verdict comes back on the report (the loop
    reads it there), a refusal drops the built collection, and an approval is recorded as well."""
    from clicktune.scheduler.gate import OfflineCheckResult

    _index(store, scifact_docs[:20])
    seen: list[tuple[str, str]] = []

    def refuse(live: str, built: str) -> OfflineCheckResult:
        seen.append((live, built))
        return OfflineCheckResult(False, "test refusal", "ndcg@10", 0.02, "v0001", "v0002")

    report = BlueGreenReindexer(store.handle).run("v0002", approve=refuse)
    assert seen == [("v0001", "v0002")]  # approve(live version, built version)
    assert not report.swapped and report.approval.reason == "test refusal"
    assert report.as_dict()["approval"]["passed"] is False
    assert [c.collection for c in store.collections.versions()] == ["docs__v0001"]
    assert store.registry.current() == "v0001"
    approved = BlueGreenReindexer(store.handle).run(
        "v0002", approve=lambda live, built: OfflineCheckResult(True, "ok", "ndcg@10", 0.02, "v0001", "v0002"))
    assert approved.swapped and approved.approval.passed and store.registry.current() == "v0002"
