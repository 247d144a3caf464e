"""The whole loop on a small real slice: embedded Qdrant, SQLite, the real model, simulated clicks."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from loop_fixtures import index_and_simulate, loop_settings, move_lock_table, scifact_slice, simulate

from clicktune.adapters import ModelRegistry
from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.qdrant import ANNOTATIONS_KEY, close_shared_clients
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.gate import OfflineCheck
from clicktune.scheduler.loop import RetrainLoop, lock_name

#: 100 train queries over ~360 abstracts: enough clicks for the failing-step and two-worker tests, at
#: half the encoding. The poisoned-feedback test keeps the full slice: with less, the attack is weaker.
DATA = scifact_slice(n_queries=100, n_fillers=250)
POISON = scifact_slice()
#: Smaller, for the multi-tick test: a clearly weaker champion needs few searches to be found out.
SMALL = scifact_slice(n_queries=80, n_fillers=200)


@pytest.fixture(scope="module")
def trafficked_home(tmp_path_factory: pytest.TempPathFactory, embedded_engine: str) -> Path:
    """v0001 live over ~300 SciFact abstracts, with two rounds of simulated clicks logged (per engine)."""
    home = tmp_path_factory.mktemp("loop-home")
    stats = index_and_simulate(loop_settings(home), DATA)
    assert stats["clicks"] > 100, stats
    close_shared_clients()
    return home


@pytest.fixture
def home(trafficked_home: Path, tmp_path: Path) -> Path:
    target = tmp_path / "home"
    shutil.copytree(trafficked_home, target)
    return target


def _live(settings):
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        return store.collections.require_live().collection, store.registry.current()


@pytest.fixture(scope="module")
def weak_champion_home(tmp_path_factory: pytest.TempPathFactory, variant_model, embedded_engine: str) -> Path:
    """A degraded model (v0002, perturbed weights) serves the slice and users click on its rankings.

    The loop fine-tunes the base model from those clicks, so its candidate is clearly better than
    the champion: what simulated users must then find out for themselves, by interleaving.
    """
    from model_variants import perturbed_copy

    from clicktune.scheduler.reindex import BlueGreenReindexer

    home = tmp_path_factory.mktemp("weak-champion")
    settings = loop_settings(home)
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        corpus = SMALL.dataset.corpus
        store.add_texts([corpus[d].content for d in SMALL.doc_ids], ids=SMALL.doc_ids)
        weak = perturbed_copy(store.registry.load_model("v0001"), seed=5, scale=0.12)
        store.registry.register(weak, parent="v0001")
        BlueGreenReindexer(store.handle).run("v0002")
        simulate(store, SMALL, rounds=2, seed=1)
    close_shared_clients()
    return home


@pytest.mark.both_engines
def test_the_loop_ticks_train_challenge_and_promotes_what_users_prefer(weak_champion_home: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(weak_champion_home, home)
    # What this test pins is the challenger phase, not the guard before it. The held-out labels are
    # clicks on the weak champion's own rankings, which favour it: under bf16 (AVX512-BF16 CPUs) the
    # guard measured the better candidate 0.034 below it and refused it at the default 0.02.
    settings = loop_settings(home, gate_tolerance=0.1)
    first = RetrainLoop(settings).tick()
    assert first.status == "challenger", first.reason
    assert first.champion == "v0002" and first.candidate == "v0003"
    assert set(first.steps) == {"mine", "train", "offline_check", "build"}
    assert first.decision["offline"]["passed"] and first.mining["train_pairs"] >= 16
    assert _live(settings) == ("docs__v0002", "v0002")  # the champion still serves
    registry = ModelRegistry.from_settings(settings)
    assert registry.get("v0003").status == "challenger" and registry.get("v0003").decisions[-1]["kind"] == "offline"

    # No interleaved traffic yet: the tick judges, finds nothing to decide on, and keeps the phase.
    waiting = RetrainLoop(settings).tick()
    assert waiting.status == "running" and waiting.decision["searches"] == 0

    outcome = waiting
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        for round_ in range(4):
            simulate(store, SMALL, rounds=1, seed=100 + round_)
            outcome = RetrainLoop(settings, handle=store.handle, feedback=store.feedback).tick()
            if outcome.status != "running":
                break
        assert outcome.status == "promoted", outcome.reason
        verdict = outcome.decision
        assert verdict["wins"] > verdict["losses"] and verdict["z"] >= verdict["boundary"]
        assert store.collections.require_live().collection == "docs__v0003"
        hits = store.similarity_search(next(iter(SMALL.dataset.queries.values())), k=3)
        assert {(h.metadata["clicktune"]["model_version"], h.metadata["clicktune"]["query_model_version"]) for h in hits} == {("v0003", "v0003")}
    registry = ModelRegistry.from_settings(settings)
    assert registry.current() == "v0003" and registry.get("v0003").status == "live"
    decision = registry.get("v0003").decisions[-1]
    assert decision["kind"] == "challenger" and decision["outcome"] == "promoted" and decision["wins"] == verdict["wins"]
    log = ClickLog.from_settings(settings)
    assert log.lock_holder(lock_name("docs")) is None
    assert [r["status"] for r in log.runs()][:2] == ["promoted", "challenger"]
    assert log.challengers.history()[0].status == "promoted"
    # Nothing new since: the next scheduled run is skipped, and says why.
    again = RetrainLoop(loop_settings(home, min_new_clicks=10_000)).tick()
    assert again.status == "skipped" and "min_new_clicks" in again.reason


@pytest.mark.both_engines
def test_poisoned_feedback_is_rejected_by_the_offline_check(tmp_path: Path) -> None:
    """Twenty sybil accounts click the last result of every search (a ranking-inversion attack that
    the per-user click cap cannot stop): the candidate trained on it is refused at once by the
    golden set, before any user sees it (no challenger phase is opened). Held-out clicks cannot
    catch it, being the attackers' too: that is what the golden set is for."""
    fresh = tmp_path / "poisoned"
    # At the default learning rate (2e-5) the 112 poisoned pairs barely move the model: on an
    # AVX512-BF16 CPU the golden set dropped by 0.0048, just inside the 0.005 tolerance, so the test
    # hung on the fourth decimal. At 1e-4 the same attack costs 0.19 on golden after 3 epochs and 0.036
    # after one (7x the tolerance; one epoch keeps this at ~30 s per engine): what is pinned is that the
    # golden set refuses a candidate the attack has clearly damaged, at once.
    settings = loop_settings(fresh, golden_dir=tmp_path / "golden", train_epochs=1, train_learning_rate=1e-4)
    _write_golden(tmp_path / "golden")
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        corpus = POISON.dataset.corpus
        store.add_texts([corpus[d].content for d in POISON.doc_ids], ids=POISON.doc_ids)
        queries = list(POISON.dataset.queries.values())
        for i in range(3 * len(queries)):
            user = f"mallory-{i % 20}"
            docs = store.similarity_search(queries[i % len(queries)], k=10, user_id=user)
            store.record_click(docs[0].metadata[ANNOTATIONS_KEY]["search_id"], docs[-1].id, user=user)
    close_shared_clients()
    before = _live(settings)
    outcome = RetrainLoop(settings).tick()
    assert outcome.status == "rejected", outcome.reason
    assert "golden" in outcome.reason, outcome.reason
    assert _live(settings) == before == ("docs__v0001", "v0001")
    registry = ModelRegistry.from_settings(settings)
    info = registry.get(outcome.candidate)
    assert info.status == "rejected" and info.decisions[-1]["kind"] == "offline"
    assert {"heldout", "golden"} <= set(info.decisions[-1]["candidate"])
    assert registry.current() == "v0001"
    assert ClickLog.from_settings(settings).challengers.active("docs") is None


def _versions(settings):
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        return ClicktuneVectorStore(settings, embeddings=emb).collections.versions()


def _write_golden(folder: Path) -> None:
    import json

    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for d in POISON.doc_ids:
            doc = POISON.dataset.corpus[d]
            fh.write(json.dumps({"_id": d, "title": doc.title, "text": doc.text}) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for q, text in POISON.dataset.queries.items():
            fh.write(json.dumps({"_id": q, "text": text}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q, docs in POISON.dataset.qrels["train"].items():
            for d in docs:
                fh.write(f"{q}\t{d}\t1\n")


@pytest.mark.both_engines
@pytest.mark.parametrize("step", ["mine", "train", "gate", "reindex"])
def test_a_failing_step_changes_nothing_live(home: Path, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = loop_settings(home, train_epochs=0.3)
    monkeypatch.setenv("CLICKTUNE_FAIL_AT", step)
    # a check that passes anything, so every later step is reached when nothing else fails
    outcome = RetrainLoop(settings, gate=OfflineCheck(tolerance=1.0, min_queries=5)).tick()
    assert outcome.status == "failed" and "InjectedFailure" in outcome.reason and step in outcome.reason
    assert _live(settings) == ("docs__v0001", "v0001")
    assert [v.collection for v in _versions(settings)] == ["docs__v0001"]
    assert ClickLog.from_settings(settings).lock_holder(lock_name("docs")) is None
    assert ClickLog.from_settings(settings).challengers.active("docs") is None
    if outcome.candidate:
        assert ModelRegistry.from_settings(settings).get(outcome.candidate).status == "failed"
    assert ClickLog.from_settings(settings).last_run()["status"] == "failed"


_WORKER = """
import sys
from clicktune.scheduler.cli import main
sys.exit(main(["--home", sys.argv[1], "retrain", "--force"]))
"""


@pytest.mark.both_engines
def test_two_workers_at_once_run_one_retrain(home: Path) -> None:
    env_settings = loop_settings(home, train_epochs=0.3)
    env = {**__import__("os").environ, **{f"CLICKTUNE_{k.upper()}": str(v) for k, v in {
        "max_seq_length": 96, "train_max_seq_length": 96, "train_epochs": 0.3, "train_batch_size": 16,
        "train_min_pairs": 16, "gate_min_queries": 5, "gate_tolerance": 1.0, "progress": "false"}.items()}}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(home)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    runs = ClickLog.from_settings(env_settings).runs()
    assert [r["status"] for r in runs if r["status"] != "locked"] == ["challenger"]
    assert ClickLog.from_settings(env_settings).lock_holder(lock_name("docs")) is None


# The lease survives a database blip (reliability issue, defect 6) ----------------------------------


def test_a_database_error_during_renewal_does_not_lose_the_lease(db_url: str, tmp_path: Path) -> None:
    """One failed renewal used to kill the heartbeat: the lease ran out under a working run and a
    second worker took the lock. Renewals are retried until one lands."""
    # model_copy skips the settings' 10 s floor: a 4 s lease keeps the test short
    settings = loop_settings(tmp_path, feedback_url=db_url).model_copy(update={"lock_lease_seconds": 4})
    feedback = ClickLog(db_url)
    name = lock_name("docs")
    loop = RetrainLoop(settings, feedback=ClickLog(db_url))
    with loop.lease() as lease:
        assert lease
        acquired = time.monotonic()
        move_lock_table(feedback, away=True)  # the renewal due after 1.3 s fails, and so do its retries
        time.sleep(2.5)
        move_lock_table(feedback, away=False)
        time.sleep(max(0.0, acquired + 5.0 - time.monotonic()))  # past the end of the first lease
        assert not feedback.acquire_lock(name, "another-worker", 60)
        assert feedback.lock_holder(name)[0] == loop.owner
        assert lease.held
        lease.ensure_held()
    assert feedback.lock_holder(name) is None
