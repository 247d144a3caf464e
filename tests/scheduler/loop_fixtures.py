"""A small, real SciFact slice for loop tests: a few hundred documents, simulated clicks, short sequences."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.clicklog import ClickLog
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.simulator import ClickSimulator, PositionBasedModel, SimulationConfig


@dataclass
class Slice:
    dataset: BeirDataset
    doc_ids: list[str]


def scifact_slice(n_queries: int = 150, n_fillers: int = 450, seed: int = 0) -> Slice:
    full = BeirDataset.load(BUNDLED_SCIFACT)
    rng = random.Random(seed)
    qids = sorted(full.qrels["train"])[:n_queries]
    relevant = sorted({d for q in qids for d in full.qrels["train"][q]})
    others = sorted(set(full.corpus) - set(relevant))
    doc_ids = relevant + rng.sample(others, n_fillers)
    dataset = BeirDataset(
        corpus={d: full.corpus[d] for d in doc_ids},
        queries={q: full.queries[q] for q in qids},
        qrels={"train": {q: full.qrels["train"][q] for q in qids}},
    )
    return Slice(dataset, doc_ids)


def move_lock_table(feedback: ClickLog, away: bool) -> None:
    """Make every lock query fail for real (the table is renamed away), or undo it."""
    names = ("clicktune_locks", "clicktune_locks_away")
    with feedback.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE {} RENAME TO {}".format(*(names if away else names[::-1])))


def lose_lease(feedback: ClickLog, name: str, lease_seconds: float, thief: str = "another-worker") -> None:
    """The holder's renewals fail for longer than its lease, then another worker takes the lock."""
    move_lock_table(feedback, away=True)
    time.sleep(lease_seconds + 0.5)
    move_lock_table(feedback, away=False)
    assert feedback.acquire_lock(name, thief, 60)


def loop_settings(home: Path, **overrides: object) -> ClicktuneSettings:
    values: dict[str, object] = dict(
        home=home, progress=False, max_seq_length=96, train_max_seq_length=96, train_epochs=1,
        train_batch_size=16, train_min_pairs=16, gate_min_queries=5, min_new_clicks=1, batch_size=64,
        interleave_share=1.0, challenger_settle_seconds=0.0, challenger_refresh_seconds=0.0,
        challenger_first_look=20, challenger_last_look=160, watch_registry=False,
        heldout_fraction=0.2,  # small slices: enough held-out queries for gate_min_queries
    )
    values.update(overrides)
    return ClicktuneSettings(**values)  # type: ignore[arg-type]


def index_and_simulate(settings: ClicktuneSettings, data: Slice, *, rounds: int = 3, seed: int = 0) -> dict:
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        corpus = data.dataset.corpus
        store.add_texts([corpus[d].content for d in data.doc_ids], ids=data.doc_ids)
        return simulate(store, data, rounds=rounds, seed=seed)


def simulate(store: ClicktuneVectorStore, data: Slice, *, rounds: int, seed: int) -> dict:
    """Simulated users search the slice's train queries through ``store`` and click (position-based model)."""
    sim = ClickSimulator(
        data.dataset, store.similarity_search, store.record_click,
        SimulationConfig(split="train", rounds=rounds, users=20, k=10, seed=seed, click_model=PositionBasedModel()),
    )
    return sim.run().as_dict()
