"""Benchmark: the loop's training step against a plain sentence-transformers script, same pairs.

Usage: python benchmarks/retrain.py [--pairs 1000] [--max-seq-length 128]

1. index SciFact with the base model, simulate click traffic on the train queries, mine the log;
2. time ``ClickTrainer.train`` (what a loop ``tick`` runs to train: load, prepare, train, register);
3. time a plain script: SentenceTransformer + SentenceTransformerTrainer + MNRL on the same rows
   and settings, then ``model.save`` (what a user would write by hand).
The ratio (ours / plain) is the loop's overhead; target <= 1.10. The two run alternately,
``--repeats`` times each (ours, plain, plain, ours, ...) so warm-up and machine noise hit both alike;
the table gives each side's median. Only time is measured here, so the traffic covers SciFact's train
and test queries alike (enough clicks for ``--pairs``); quality is benchmarks/beir_loop.py's job.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="trainings per side, alternating")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retrain.json"))
    args = parser.parse_args()

    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from clicktune.adapters import ClicktuneSettings, ModelRegistry
    from clicktune.adapters.models import resolve_model_source
    from clicktune.adapters.qdrant import close_shared_clients
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
    from clicktune.scheduler.loop import RetrainLoop
    from clicktune.scheduler.simulator import ClickSimulator, SimulationConfig
    from clicktune.scheduler.training import ClickTrainer, TrainingConfig, prepare_datasets

    work = Path(tempfile.mkdtemp(prefix="clicktune-bench-"))
    settings = ClicktuneSettings(home=work, max_seq_length=args.max_seq_length, progress=True,
                                 train_max_seq_length=args.max_seq_length)
    data = BeirDataset.load(BUNDLED_SCIFACT)
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        docs = list(data.corpus.values())
        store.add_texts([d.content for d in docs], ids=[d.doc_id for d in docs], batch_size=512)
        for split in ("train", "test"):
            ClickSimulator(data, store.similarity_search, store.record_click,
                           SimulationConfig(split=split, rounds=args.rounds), show_progress=True).run()
        loop = RetrainLoop(settings, handle=store.handle, feedback=store.feedback)  # for its mining config
        live = store.collections.require_live()
        from clicktune.scheduler.miner import mine_feedback

        mined = mine_feedback(store.feedback, partial(store.handle.index.texts, live.version), loop.mining)
    close_shared_clients()
    rows = mined.train.select(range(min(args.pairs, len(mined.train))))
    config = TrainingConfig(epochs=1, batch_size=32, learning_rate=2e-5, max_seq_length=args.max_seq_length,
                            min_pairs=1, seed=42, show_progress=True)

    registry = ModelRegistry.from_settings(settings)

    def ours() -> tuple[float, int]:
        t = time.perf_counter()
        result = ClickTrainer(registry, settings, config).train(rows)
        return time.perf_counter() - t, result.rows_trained

    def plain() -> float:
        t = time.perf_counter()
        model = SentenceTransformer(resolve_model_source(settings.base_model))
        model.max_seq_length = args.max_seq_length
        datasets = prepare_datasets(rows, config.seed)
        with tempfile.TemporaryDirectory() as out:
            trainer = SentenceTransformerTrainer(
                model=model,
                args=SentenceTransformerTrainingArguments(
                    output_dir=out, num_train_epochs=1, per_device_train_batch_size=32, learning_rate=2e-5,
                    warmup_steps=0.1, batch_sampler=BatchSamplers.NO_DUPLICATES, seed=42, data_seed=42,
                    save_strategy="no", report_to="none", dataloader_pin_memory=torch.cuda.is_available(),
                ),
                train_dataset=datasets if len(datasets) > 1 else next(iter(datasets.values())),
                loss=MultipleNegativesRankingLoss(model),
            )
            trainer.train()
            model.save(str(Path(out) / "model"))
        return time.perf_counter() - t

    ours_s: list[float] = []
    plain_s: list[float] = []
    rows_trained = 0
    for i in range(args.repeats):
        for side in (("ours", "plain") if i % 2 == 0 else ("plain", "ours")):
            if side == "ours":
                seconds, rows_trained = ours()
                ours_s.append(seconds)
            else:
                plain_s.append(plain())
    ours_med, plain_med = statistics.median(ours_s), statistics.median(plain_s)

    results = {
        "pairs": len(rows), "rows_trained": rows_trained, "max_seq_length": args.max_seq_length,
        "repeats": args.repeats, "clicktune_runs_s": ours_s, "plain_runs_s": plain_s,
        "clicktune_train_s": ours_med, "plain_script_s": plain_med, "ratio_clicktune_over_plain": ours_med / plain_med,
        "clicktune_pairs_per_s": len(rows) / ours_med, "plain_pairs_per_s": len(rows) / plain_med,
        "mining": {k: v for k, v in mined.stats.items() if k not in ("propensities", "ctr_by_rank")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    for key, value in results.items():
        print(f"{key:<28} {value:.3f}" if isinstance(value, float) else f"{key:<28} {value}")
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
