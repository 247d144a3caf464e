"""The whole loop on a small real slice: embedded Qdrant, SQLite, the real model, simulated clicks."""

from __future__ import annotations

import random
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from loop_fixtures import index_and_simulate, loop_settings, scifact_slice

from clicktune.adapters import ModelRegistry
from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.qdrant import close_shared_clients
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.gate import PromotionGate
from clicktune.scheduler.loop import LOCK_NAME, RetrainLoop

DATA = scifact_slice()


@pytest.fixture(scope="module")
def trafficked_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v0001 live over ~300 SciFact abstracts, with two rounds of simulated clicks logged."""
    home = tmp_path_factory.mktemp("loop-home")
    stats = index_and_simulate(loop_settings(home), DATA)
    assert stats["clicks"] > 150, stats
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


def test_full_loop_promotes_and_searches_use_the_new_version(home: Path) -> None:
    """The pipeline end to end. Whether a candidate trained on ~300 clicks beats the champion on ~30
    held-out queries is a coin toss at this scale, so this gate accepts any scored candidate
    (min_delta=-1); the decision rule itself is tested in test_evaluation.py, a real rejection in
    the poisoned-feedback test below, and quality in benchmarks/scifact_loop.py."""
    settings = loop_settings(home)
    accept_any = PromotionGate(metric="ndcg@10", min_delta=-1.0, min_queries=5)
    outcome = RetrainLoop(settings, gate=accept_any).retrain_once()
    assert outcome.status == "promoted", outcome.reason
    assert outcome.champion == "v0001" and outcome.candidate == "v0002"
    assert set(outcome.steps) == {"mine", "train", "gate", "reindex"}
    assert outcome.mining["train_pairs"] >= 16 and outcome.mining["heldout_queries"] >= 5
    decision = outcome.decision
    assert decision["promoted"] and decision["min_delta"] == -1.0
    assert 0 < decision["candidate"]["heldout"]["ndcg@10"] <= 1 and 0 < decision["champion"]["heldout"]["ndcg@10"] <= 1

    registry = ModelRegistry.from_settings(settings)
    assert registry.current() == "v0002" and registry.get("v0002").status == "live"
    assert registry.get("v0002").decisions[-1]["promoted"] is True
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        assert store.collections.require_live().collection == "docs__v0002"
        hits = store.similarity_search(next(iter(DATA.dataset.queries.values())), k=3)
        assert {(h.metadata["model_version"], h.metadata["query_model_version"]) for h in hits} == {("v0002", "v0002")}
    log = ClickLog.from_settings(settings)
    assert log.lock_holder(LOCK_NAME) is None
    assert log.last_run()["status"] == "promoted"
    # Nothing new since: the next scheduled run is skipped, and says why.
    again = RetrainLoop(loop_settings(home, min_new_clicks=10)).retrain_once()
    assert again.status == "skipped" and "min_new_clicks" in again.reason


def test_poisoned_feedback_is_rejected(home: Path, tmp_path: Path) -> None:
    """One user clicking random documents, hundreds of times, on fresh searches: the gate says no."""
    fresh = tmp_path / "poisoned"
    settings = loop_settings(fresh, gate_min_delta=0.01, golden_dir=tmp_path / "golden")
    _write_golden(tmp_path / "golden")
    rng = random.Random(7)
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        corpus = DATA.dataset.corpus
        store.add_texts([corpus[d].content for d in DATA.doc_ids], ids=DATA.doc_ids)
        queries = list(DATA.dataset.queries.values())
        for i in range(400):
            docs = store.similarity_search(queries[i % len(queries)], k=10, user_id="mallory")
            store.record_click(docs[0].metadata["search_id"], rng.choice(docs).id, user="mallory")
    close_shared_clients()
    before = _live(settings)
    outcome = RetrainLoop(settings).retrain_once()
    assert outcome.status == "rejected", outcome.reason
    assert _live(settings) == before == ("docs__v0001", "v0001")
    registry = ModelRegistry.from_settings(settings)
    info = registry.get(outcome.candidate)
    assert info.status == "rejected" and info.decisions[-1]["promoted"] is False
    assert {"heldout", "golden"} <= set(info.decisions[-1]["candidate"])
    assert [v.collection for v in _versions(settings)] == ["docs__v0001"]


def _versions(settings):
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        return ClicktuneVectorStore(settings, embeddings=emb).collections.versions()


def _write_golden(folder: Path) -> None:
    import json

    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w") as fh:
        for d in DATA.doc_ids:
            doc = DATA.dataset.corpus[d]
            fh.write(json.dumps({"_id": d, "title": doc.title, "text": doc.text}) + "\n")
    with open(folder / "queries.jsonl", "w") as fh:
        for q, text in DATA.dataset.queries.items():
            fh.write(json.dumps({"_id": q, "text": text}) + "\n")
    with open(folder / "qrels" / "test.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q, docs in DATA.dataset.qrels["train"].items():
            for d in docs:
                fh.write(f"{q}\t{d}\t1\n")


@pytest.mark.parametrize("step", ["mine", "train", "gate", "reindex", "swap"])
def test_a_failing_step_changes_nothing_live(home: Path, step: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = loop_settings(home, train_epochs=0.3)
    monkeypatch.setenv("CLICKTUNE_FAIL_AT", step)
    # a gate that would promote, so the swap step is reached when nothing else fails
    outcome = RetrainLoop(settings, gate=PromotionGate(min_delta=-1.0, min_queries=5)).retrain_once()
    assert outcome.status == "failed" and "InjectedFailure" in outcome.reason and step in outcome.reason
    assert _live(settings) == ("docs__v0001", "v0001")
    assert [v.collection for v in _versions(settings)] == ["docs__v0001"]
    assert ClickLog.from_settings(settings).lock_holder(LOCK_NAME) is None
    if outcome.candidate:
        assert ModelRegistry.from_settings(settings).get(outcome.candidate).status == "failed"
    assert ClickLog.from_settings(settings).last_run()["status"] == "failed"


_WORKER = """
import sys
from clicktune.scheduler.cli import main
sys.exit(main(["--home", sys.argv[1], "retrain", "--force"]))
"""


def test_two_workers_at_once_run_one_retrain(home: Path) -> None:
    env_settings = loop_settings(home, train_epochs=0.3)
    env = {**__import__("os").environ, **{f"CLICKTUNE_{k.upper()}": str(v) for k, v in {
        "max_seq_length": 96, "train_max_seq_length": 96, "train_epochs": 0.3, "train_batch_size": 16,
        "train_min_pairs": 16, "gate_min_queries": 5, "gate_min_delta": 0.0, "progress": "false"}.items()}}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(home)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    runs = ClickLog.from_settings(env_settings).runs()
    assert [r["status"] for r in runs if r["status"] != "locked"] in (["promoted"], ["rejected"])
    assert ClickLog.from_settings(env_settings).lock_holder(LOCK_NAME) is None
    _ = uuid
