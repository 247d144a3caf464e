"""The challenger phase with the real model, embedded Qdrant and SQLite: serving, credit, writes, decisions."""

from __future__ import annotations

import random
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from loop_fixtures import lose_lease
from prometheus_client import REGISTRY
from shared_homes import clone_home

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.adapters.errors import ChallengerRunningError, ConfigurationError, LeaseLostError
from clicktune.adapters.qdrant import CollectionVersion, close_shared_clients
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.challenger import ChallengerPhase, SequentialSignTest
from clicktune.scheduler.loop import RetrainLoop, lock_name
from clicktune.scheduler.reindex import BlueGreenReindexer, rollback

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine

# The sequential sign test on hand-made outcomes ---------------------------------------------------


def test_looks_double_and_the_boundary_matches_known_values() -> None:
    test = SequentialSignTest(alpha=0.05, first_look=100, last_look=1600)
    assert test.looks == (100, 200, 400, 800, 1600)
    assert SequentialSignTest(0.05, 100, 100).boundary == pytest.approx(1.645, abs=0.01)  # one look: plain z test
    # Interim looks at z 3 spend little alpha, so the last look's bar stays near the one-look 1.645
    # (a constant Pocock boundary over these five looks would be about 2.2).
    assert 1.66 < test.boundary < 1.70
    assert SequentialSignTest(0.05, 100, 300).looks == (100, 200, 300)
    with pytest.raises(ConfigurationError, match="challenger_interim_z"):
        SequentialSignTest(alpha=0.05, first_look=100, last_look=3200, interim_z=2.0)


def test_decisions_on_hand_made_counts() -> None:
    test = SequentialSignTest(alpha=0.05, first_look=100, last_look=400)
    c = test.boundary
    # 70 wins, 30 losses in the first 100 decided searches: z = 4 >= c, promoted at the first look.
    clear_win = [1] * 70 + [-1] * 30 + [0] * 80
    verdict = test.decide(clear_win)
    assert verdict.decision == "promote" and verdict.wins == 70 and verdict.losses == 30 and verdict.ties == 0
    assert verdict.z == pytest.approx(4.0) and verdict.looks == [{"decided": 100, "z": 4.0, "boundary": 3.0}]
    # The counts are those the decision was taken on; searches logged after the deciding look are
    # counted apart and cannot move the recorded z below the boundary it crossed.
    assert (verdict.searches, verdict.logged) == (100, 180)
    late = test.decide([1] * 70 + [-1] * 30 + [0] * 5 + [-1] * 60)
    assert late.decision == "promote" and (late.searches, late.wins, late.losses, late.logged) == (100, 70, 30, 165)
    assert late.z == pytest.approx(4.0)
    assert test.decide([-1] * 70 + [1] * 30).decision == "drop"
    # Not enough decided searches for a look yet: keep going, however lopsided; ties never count.
    assert test.decide([1] * 99 + [0] * 1000).decision == "continue"
    # Looks use the first n decided searches in time order, so later searches cannot rewrite a look.
    even_then_good = [1, -1] * 50 + [1] * 100
    verdict = test.decide(even_then_good)
    assert verdict.looks[0] == {"decided": 100, "z": 0.0, "boundary": 3.0} and verdict.decision == "promote"
    assert verdict.looks[1]["decided"] == 200 and verdict.looks[1]["z"] >= 3.0
    # Between the last look's bar and the interim one: only the last look promotes it.
    modest = [1, 1, 1, -1, -1] * 40  # z 2.0 after 100, 2.83 after 200; 2.0 after 400 if the rest split
    assert test.decide(modest).decision == "continue"
    at_last = test.decide(modest + [1, -1] * 100)
    assert at_last.decision == "promote" and at_last.z == pytest.approx(2.0) and c < 2.0
    assert at_last.looks[-1] == {"decided": 400, "z": 2.0, "boundary": round(c, 4)}
    # Clearly worse at an interim look: dropped there, without waiting for the last look.
    assert test.decide([-1] * 70 + [1] * 30).reason.endswith("after 100 decided searches: worse")
    # No crossing by the last look: dropped; undecided at the time bound: dropped.
    assert test.decide([1, -1] * 200).decision == "drop"
    assert test.decide([1, -1] * 60, expired=True).decision == "drop"
    assert test.decide([1, -1] * 60).decision == "continue"


def test_an_equal_challenger_is_promoted_at_most_alpha_of_the_time() -> None:
    """Simulate many phases where wins and losses are coin flips: the false-promotion rate is <= alpha."""
    test = SequentialSignTest(alpha=0.05, first_look=100, last_look=1600)
    rng = np.random.default_rng(0)
    flips = rng.choice([-1, 1], size=(2000, 1600))
    promoted = sum(test.decide(row.tolist()).decision == "promote" for row in flips)
    assert promoted / 2000 <= 0.05 + 0.015  # Monte Carlo slack, about three standard errors
    naive = sum(any(row[:n].sum() / np.sqrt(n) >= 1.645 for n in test.looks) for row in flips)
    assert naive / 2000 > 0.09  # why the bar is higher than 1.645: peeking five times doubles the error


def test_a_better_challenger_is_promoted_with_high_power() -> None:
    test = SequentialSignTest(alpha=0.05, first_look=100, last_look=1600)
    rng = np.random.default_rng(1)
    wins = rng.random((300, 1600)) < 0.58  # a challenger winning 58% of decided searches
    promoted = sum(test.decide(np.where(row, 1, -1).tolist()).decision == "promote" for row in wins)
    assert promoted / 300 > 0.9


# The phase against real collections --------------------------------------------------------------


@pytest.fixture(scope="module")
def scifact_docs() -> list[tuple[str, str]]:
    corpus = BeirDataset.load(BUNDLED_SCIFACT).corpus
    return [(doc.doc_id, doc.content) for doc in list(corpus.values())[:120]]


def _phase_settings(home: Path) -> ClicktuneSettings:
    return ClicktuneSettings(home=home, progress=False, challenger_refresh_seconds=0.0,
                             challenger_settle_seconds=0.0, interleave_share=1.0)


@pytest.fixture(scope="module")
def phase_template(template_home: Path, tmp_path_factory: pytest.TempPathFactory, variant_model,
                   scifact_docs, embedded_engine: str) -> Path:
    """A home (embedded Qdrant on disk) where v0001 serves 60 abstracts and v0002, built beside it,
    faces it as the running challenger. Built once; each test gets a copy."""
    home = clone_home(template_home, tmp_path_factory.mktemp("phase") / "home")
    settings = _phase_settings(home)
    ModelRegistry.from_settings(settings).register(variant_model, parent="v0001")
    with ClicktuneEmbeddings(settings, watch=False) as embeddings:
        store = ClicktuneVectorStore(settings, embeddings=embeddings)
        docs = scifact_docs[:60]
        store.add_texts([t for _, t in docs], ids=[d for d, _ in docs])
        phase = ChallengerPhase(store.handle, store.feedback, settings)
        BlueGreenReindexer(store.handle).run(
            "v0002", hand_off=lambda live, built, _: phase.start(live, built, {"passed": True}))
    close_shared_clients()
    return home


@pytest.fixture
def phase_store(phase_template: Path, tmp_path: Path):
    """A copy of the phase template, opened: the store and its challenger phase."""
    home = clone_home(phase_template, tmp_path / "home")  # the registry: weights linked, metadata copied
    shutil.copytree(phase_template, home, ignore=shutil.ignore_patterns("registry"), dirs_exist_ok=True)
    settings = _phase_settings(home)
    embeddings = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=embeddings)
    yield store, ChallengerPhase(store.handle, store.feedback, settings)
    embeddings.close()
    close_shared_clients()


def _ids(store: ClicktuneVectorStore, collection: str) -> set[str]:
    return store.handle.index.doc_ids(store.collections.version_of(collection))


def test_interleaved_results_say_which_model_produced_each_and_clicks_credit_it(phase_store, scifact_docs) -> None:
    store, phase = phase_store
    challenger = phase.active()
    assert challenger is not None and challenger.challenger_collection == "docs__v0002"
    assert store.registry.get("v0002").status == "challenger" and store.registry.current() == "v0001"
    docs = store.similarity_search(scifact_docs[5][1][:200], k=10)
    versions = [d.metadata["clicktune"]["model_version"] for d in docs]
    assert len({d.id for d in docs}) == 10 and abs(versions.count("v0001") - versions.count("v0002")) <= 1
    # invariant 1 per result: each came from its model's collection with the query embedded by that model
    assert all(d.metadata["clicktune"]["query_model_version"] == d.metadata["clicktune"]["model_version"] for d in docs)
    impression = store.feedback.get_impression(docs[0].metadata["clicktune"]["search_id"])
    assert impression.challenge_id == challenger.id
    assert [r.model_version for r in impression.results] == versions
    # The query is the start of abstract 5: both models rank it first, a common prefix whose team
    # only the coin chose, so a click on it credits neither.
    assert impression.results[0].doc_id == scifact_docs[5][0] and impression.results[0].shared is True
    assert all(r.shared is not None for r in impression.results)
    chosen = {r.doc_id for r in impression.results if not r.shared}

    def picked_by(results, version: str) -> list[str]:
        return [d.id for d in results if d.metadata["clicktune"]["model_version"] == version and d.id in chosen]

    search_id = docs[0].metadata["clicktune"]["search_id"]
    store.record_click(search_id, docs[0].id)  # shared: no credit
    store.record_click(search_id, picked_by(docs, "v0002")[0])
    store.record_click(search_id, picked_by(docs, "v0002")[1])
    store.record_click(search_id, picked_by(docs, "v0001")[0])
    store.similarity_search(scifact_docs[9][1][:200], k=10)  # shown, never clicked: a tie
    loss = store.similarity_search(scifact_docs[11][1][:200], k=10)
    chosen = {r.doc_id for r in store.feedback.get_impression(loss[0].metadata["clicktune"]["search_id"]).results
              if not r.shared}
    store.record_click(loss[0].metadata["clicktune"]["search_id"], picked_by(loss, "v0001")[0])
    only_shared = store.similarity_search(scifact_docs[13][1][:200], k=10)
    assert store.feedback.get_impression(only_shared[0].metadata["clicktune"]["search_id"]).results[0].shared
    store.record_click(only_shared[0].metadata["clicktune"]["search_id"], only_shared[0].id)  # a tie, not a coin toss
    searches = store.feedback.challengers.searches(challenger)
    assert [(s.challenger_clicks, s.champion_clicks, s.outcome) for s in searches] == [
        (2, 1, 1), (0, 0, 0), (0, 1, -1), (0, 0, 0)]
    verdict = phase.judge(challenger)
    assert (verdict.searches, verdict.wins, verdict.losses, verdict.ties, verdict.decision) == (4, 1, 1, 2, "continue")


def test_interleave_share_sets_how_many_searches_are_interleaved_and_a_store_may_opt_out(
    phase_store, scifact_docs
) -> None:
    store, phase = phase_store
    # The share is the phase's (recorded when it starts), so every serving process uses the same one.
    running = phase.active()
    store.feedback.challengers.end(running.id, "dropped", {"reason": "restarted at half share"})
    store.feedback.challengers.start(**running.model_dump(include={
        "alias", "champion_version", "challenger_version", "champion_collection", "challenger_collection",
        "offline"}), interleave_share=0.5)
    def counted() -> list[float]:
        return [REGISTRY.get_sample_value(f"clicktune_{name}_total", {"alias": store.alias}) or 0.0
                for name in ("searches", "interleaved_searches")]

    before = counted()
    interleaved = 0
    for i in range(60):
        docs = store.similarity_search(scifact_docs[i][1][:120], k=4)
        interleaved += store.feedback.get_impression(docs[0].metadata["clicktune"]["search_id"]).challenge_id is not None
    assert 15 <= interleaved <= 45  # Binomial(60, 0.5): outside this range about once in 10,000 runs
    assert [a - b for a, b in zip(counted(), before, strict=True)] == [60, interleaved]  # the /metrics counters
    opted_out = ClicktuneVectorStore(store.settings, embeddings=store.embeddings, client=store.client, interleave=False)
    docs = opted_out.similarity_search(scifact_docs[3][1][:200], k=6)
    assert {d.metadata["clicktune"]["model_version"] for d in docs} == {"v0001"}
    assert store.feedback.get_impression(docs[0].metadata["clicktune"]["search_id"]).challenge_id is None


def test_writes_during_the_phase_reach_the_challenger_and_survive_promotion(phase_store, scifact_docs) -> None:
    store, phase = phase_store
    added = scifact_docs[60:80]
    store.add_texts([t for _, t in added], ids=[d for d, _ in added])
    store.delete([scifact_docs[0][0], scifact_docs[1][0]])
    expected = {d for d, _ in scifact_docs[2:80]}
    assert _ids(store, "docs__v0001") == expected == _ids(store, "docs__v0002")
    challenger = phase.active()
    with pytest.raises(ChallengerRunningError):
        phase.ensure_none_running("re-index")
    phase.promote(challenger, {"decision": "promote", "reason": "test"})
    assert store.collections.require_live() == CollectionVersion("docs__v0002", "v0002")
    assert store.registry.current() == "v0002" and store.registry.get("v0002").status == "live"
    assert phase.active() is None
    decision = store.registry.get("v0002").decisions[-1]
    assert decision["kind"] == "challenger" and decision["outcome"] == "promoted"
    assert store.feedback.challengers.history()[0].status == "promoted"
    hits = store.similarity_search(scifact_docs[70][1][:200], k=3)
    assert hits[0].id == scifact_docs[70][0] and {h.metadata["clicktune"]["model_version"] for h in hits} == {"v0002"}
    # the champion's collection is kept, with every write, for a rollback
    rollback(store.handle)
    assert _ids(store, store.collections.require_live().collection) == expected


def test_a_dropped_challenger_leaves_the_champion_and_its_collection_is_deleted(phase_store, scifact_docs) -> None:
    store, phase = phase_store
    phase.drop(phase.active(), {"decision": "drop", "reason": "test"})
    assert [c.collection for c in store.collections.versions()] == ["docs__v0001"]
    assert store.registry.current() == "v0001" and store.registry.get("v0002").status == "dropped"
    store.add_texts([scifact_docs[100][1]], ids=[scifact_docs[100][0]])  # no challenger to mirror into
    assert {d.metadata["clicktune"]["model_version"] for d in store.similarity_search("cancer", k=5)} == {"v0001"}


def test_the_time_bound_drops_and_reconcile_drops_a_phase_whose_collection_is_gone(phase_store) -> None:
    store, phase = phase_store
    challenger = phase.active()
    expired = phase.judge(challenger, now=challenger.started_at + timedelta(hours=store.settings.challenger.max_hours + 1))
    assert expired.decision == "drop" and "time bound" in expired.reason
    assert phase.judge(challenger).decision == "continue"
    store.client.delete_collection(challenger.challenger_collection)
    assert phase.reconcile() is None
    ended = store.feedback.challengers.get(challenger.id)
    assert ended.status == "dropped" and "gone" in ended.result["reason"]
    assert store.registry.get("v0002").status == "dropped" and store.registry.current() == "v0001"


def test_a_phase_whose_lease_was_lost_is_not_promoted(phase_store) -> None:
    """Reliability issue, defect 6: a worker whose lease ran out (and was taken) must not promote."""
    store, phase = phase_store
    # model_copy skips the settings' 10 s floor: a 2 s lease keeps the test short
    loop = RetrainLoop(store.settings.model_copy(update={"lock_lease_seconds": 2}), handle=store.handle,
                       feedback=store.feedback)
    with loop.lease() as lease:
        lose_lease(store.feedback, lock_name("docs"), 2)
        guarded = ChallengerPhase(store.handle, store.feedback, store.settings, guard=lease.ensure_held)
        with pytest.raises(LeaseLostError):
            guarded.promote(guarded.active(), {"decision": "promote", "reason": "test"})
    assert store.collections.require_live().collection == "docs__v0001" and store.registry.current() == "v0001"
    assert phase.active() is not None  # still running: the lease's new holder decides it
    assert ModelRegistry.from_settings(store.settings).versions() == ["v0001", "v0002"]


def test_keep_versions_applies_after_a_promoted_and_a_dropped_challenger(settings, variant_model,
                                                                         scifact_docs) -> None:
    """Reliability issue, defect 9: retention keeps the live version, the rollback target and a running
    challenger's, and removes the rest beyond keep_versions (here 2)."""
    settings = settings.model_copy(update={"keep_versions": 2, "challenger_refresh_seconds": 0.0})
    with ClicktuneEmbeddings(settings, watch=False) as embeddings:
        store = ClicktuneVectorStore(settings, embeddings=embeddings)
        store.add_texts([t for _, t in scifact_docs[:40]], ids=[d for d, _ in scifact_docs[:40]])
        phase = ChallengerPhase(store.handle, store.feedback, settings)
        registry = store.registry

        def folders() -> list[str]:
            return sorted(p.name for p in registry.models_dir.iterdir())

        def challenge() -> None:
            version = registry.register(variant_model, parent=registry.current())
            BlueGreenReindexer(store.handle).run(
                version, hand_off=lambda live, built, _: phase.start(live, built, {"passed": True}))

        BlueGreenReindexer(store.handle).run(registry.register(variant_model, parent="v0001"))
        challenge()  # v0003 faces v0002; v0001 is the rollback target: all three stay
        assert folders() == ["v0001", "v0002", "v0003"]
        phase.promote(phase.active(), {"decision": "promote", "reason": "test"})
        assert folders() == ["v0002", "v0003"]
        assert [c.collection for c in store.collections.versions()] == ["docs__v0002", "docs__v0003"]
        challenge()  # v0004
        phase.drop(phase.active(), {"decision": "drop", "reason": "test"})
        assert folders() == ["v0002", "v0003"]
        assert rollback(store.handle) == "v0002"
        hit = store.similarity_search(scifact_docs[4][1], k=1)[0]
        assert hit.id == scifact_docs[4][0] and hit.metadata["clicktune"]["model_version"] == "v0002"


# Rollback keeps writes made right after a swap (reliability issue, defect 1) ------------------------


def test_writes_right_after_a_swap_reach_the_collection_a_rollback_serves(settings, variant_model, scifact_docs,
                                                                          monkeypatch) -> None:
    """A slow registry volume widened the window between the alias swap and CURRENT; writers let in
    there wrote only to the new collection, and a rollback lost them."""
    ModelRegistry.from_settings(settings).register(variant_model, parent="v0001")
    with ClicktuneEmbeddings(settings, watch=False) as embeddings:
        store = ClicktuneVectorStore(settings, embeddings=embeddings)
        store.add_texts([t for _, t in scifact_docs[:40]], ids=[d for d, _ in scifact_docs[:40]])
        expected = {d for d, _ in scifact_docs[:40]}
        original = store.registry.promote
        swapped = threading.Event()

        def slow_promote(version: str) -> str:
            swapped.set()
            time.sleep(0.5)
            return original(version)

        monkeypatch.setattr(store.registry, "promote", slow_promote)

        def writer() -> None:
            swapped.wait(timeout=120)
            rng = random.Random(0)
            for doc_id, text in scifact_docs[40:52]:
                store.add_texts([text], ids=[doc_id])
                expected.add(doc_id)
                gone = rng.choice(sorted(expected - {doc_id}))
                store.delete([gone])
                expected.discard(gone)

        thread = threading.Thread(target=writer)
        thread.start()
        BlueGreenReindexer(store.handle).run("v0002")
        thread.join()
        monkeypatch.undo()
        assert _ids(store, "docs__v0002") == expected
        rollback(store.handle)
        assert store.collections.require_live().collection == "docs__v0001"
        assert _ids(store, "docs__v0001") == expected
