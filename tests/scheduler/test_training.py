"""The trainer on real pairs with the real model: it learns, registers a candidate, honours weights."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.training import (
    ClickTrainer,
    NotEnoughPairsError,
    TrainingConfig,
    prepare_datasets,
    weighted_resample,
)


def test_weighted_resample_follows_weights() -> None:
    idx = weighted_resample(np.array([1.0, 3.0, 0.0, 4.0]), seed=0)
    assert len(idx) == 4 and 2 not in idx
    big = weighted_resample(np.array([1.0, 3.0]), seed=1)
    assert len(big) == 2
    counts = np.bincount(weighted_resample(np.array([1.0] * 500 + [9.0] * 500), seed=2), minlength=1000)
    assert counts[500:].sum() > 4 * counts[:500].sum()
    with pytest.raises(ValueError):
        weighted_resample(np.array([1.0, -1.0]), seed=0)


def test_weighted_resample_keeps_each_count_within_one_of_its_expectation() -> None:
    rng = np.random.default_rng(7)
    weights = rng.uniform(0.2, 5.0, size=400)
    expected = len(weights) * weights / weights.sum()
    for seed in range(5):
        counts = np.bincount(weighted_resample(weights, seed=seed), minlength=len(weights))
        assert counts.sum() == len(weights)
        assert np.all(np.abs(counts - expected) < 1.0)
    # Unbiased: averaged over seeds, the counts approach their expectation.
    mean = np.mean([np.bincount(weighted_resample(weights, seed=s), minlength=400) for s in range(300)], axis=0)
    assert np.abs(mean - expected).max() < 0.2
    # Equal weights keep every row exactly once.
    assert sorted(weighted_resample(np.ones(50), seed=3).tolist()) == list(range(50))


def test_a_smaller_resample_keeps_the_weighting_and_each_count_within_one() -> None:
    rng = np.random.default_rng(11)
    # Many single-click pairs of small weight and a few well-evidenced ones, as repeated traffic leaves.
    weights = np.concatenate([rng.uniform(0.5, 1.5, size=2000), rng.uniform(8.0, 12.0, size=300)])
    size = 1024
    expected = size * weights / weights.sum()
    for seed in range(5):
        counts = np.bincount(weighted_resample(weights, seed=seed, size=size), minlength=len(weights))
        assert counts.sum() == size
        assert np.all(np.abs(counts - expected) < 1.0)
        assert np.all(counts[2000:] >= 1)  # every well-evidenced pair is trained on
    mean = np.mean([np.bincount(weighted_resample(weights, seed=s, size=size), minlength=len(weights))
                    for s in range(300)], axis=0)
    assert np.abs(mean - expected).max() < 0.2  # still unbiased
    assert len(weighted_resample(weights, seed=0, size=0)) == 0
    with pytest.raises(ValueError):
        weighted_resample(weights, seed=0, size=-1)


def test_an_epoch_is_capped_at_max_rows_and_unweighted_rows_are_sampled_evenly() -> None:
    rows = Dataset.from_dict({"anchor": [f"q{i}" for i in range(300)], "positive": [f"p{i}" for i in range(300)],
                              "weight": [1.0] * 200 + [5.0] * 100})
    parts = prepare_datasets(rows, seed=0, max_rows=100)
    anchors = [a for part in parts.values() for a in part["anchor"]]
    assert len(anchors) == 100
    heavy = sum(int(a[1:]) >= 200 for a in anchors)
    assert heavy in (71, 72)  # 100 * 500 / 700 = 71.4, within one
    assert sum(len(p) for p in prepare_datasets(rows, seed=0, max_rows=1000).values()) == 300
    assert sum(len(p) for p in prepare_datasets(rows, seed=0).values()) == 300
    unweighted = prepare_datasets(rows.remove_columns("weight"), seed=1, max_rows=150)["pairs"]
    assert len(unweighted) == 150 and len(set(unweighted["anchor"])) == 150  # each row at most once


def test_the_training_settings_carry_max_rows_to_the_trainer() -> None:
    assert TrainingConfig.from_settings(ClicktuneSettings()).max_rows == 1024
    assert TrainingConfig.from_settings(ClicktuneSettings(train_max_rows=64)).max_rows == 64
    assert TrainingConfig.from_settings(ClicktuneSettings(train_max_rows=None)).max_rows is None


def test_prepare_splits_pairs_and_triplets() -> None:
    rows = Dataset.from_dict(
        {"anchor": ["q1", "q2", "q3"], "positive": ["p1", "p2", "p3"], "negative": ["n1", None, ""],
         "weight": [1.0, 1.0, 1.0]}
    )
    parts = prepare_datasets(rows, seed=0)
    assert set(parts) <= {"pairs", "triplets"}
    assert sum(len(p) for p in parts.values()) == 3
    if "triplets" in parts:
        assert parts["triplets"].column_names == ["anchor", "positive", "negative"]
    if "pairs" in parts:
        assert parts["pairs"].column_names == ["anchor", "positive"]


def _pairs(n: int) -> Dataset:
    data = BeirDataset.load(BUNDLED_SCIFACT)
    rows = {"anchor": [], "positive": [], "negative": [], "weight": []}
    docs = list(data.corpus.values())
    for i, (qid, rels) in enumerate(list(data.qrels["train"].items())[:n]):
        rows["anchor"].append(data.queries[qid])
        rows["positive"].append(data.corpus[next(iter(rels))].content)
        rows["negative"].append(docs[(i * 7919) % len(docs)].content if i % 2 else None)
        rows["weight"].append(1.0 + (i % 3))
    return Dataset.from_dict(rows)


def test_trainer_registers_a_candidate(settings: ClicktuneSettings) -> None:
    registry = ModelRegistry.from_settings(settings)
    config = TrainingConfig(epochs=1, batch_size=8, max_seq_length=64, min_pairs=8, max_rows=40, seed=3)
    trainer = ClickTrainer(registry, settings, config)
    result = trainer.train(_pairs(48))
    assert result.version == "v0002" and result.parent == "v0001"
    info = registry.get("v0002")
    assert info.status == "candidate"
    assert info.training["pairs"] == 48 and info.training["start_from"] == "base"
    assert info.training["rows_trained"] == result.rows_trained == 40  # the epoch's ceiling
    assert info.max_seq_length == settings.max_seq_length  # serving length restored after training
    assert (registry.path("v0002") / "README.md").is_file()  # sentence-transformers' model card
    assert registry.current() == "v0001"  # training never changes what is live
    base = registry.load_model("v0001").encode(["a claim about cells"], normalize_embeddings=True)
    tuned = registry.load_model("v0002").encode(["a claim about cells"], normalize_embeddings=True)
    assert not np.allclose(base, tuned, atol=1e-4)

    with pytest.raises(NotEnoughPairsError, match="train_min_pairs"):
        ClickTrainer(registry, settings, TrainingConfig(min_pairs=100)).train(_pairs(10))
