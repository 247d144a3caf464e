"""Benchmark: does the loop help? SciFact test nDCG@10 for base, clicks-only loop, and clean-label oracle.

Usage: python benchmarks/scifact_loop.py [--rounds 3] [--epochs 1] [--max-seq-length 256]

(a) base: the packaged all-MiniLM-L6-v2, title + ". " + text, exact cosine (embedded Qdrant).
(b) loop: simulated users click through the 809 train queries (position-based click model); the
    real loop mines those clicks and trains a candidate; it is scored on the 300 test queries.
(c) oracle: the same trainer, same settings, on SciFact's clean train qrels (919 pairs).
Test queries and qrels are never used for training. Each phase's wall time is reported.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scifact_loop.json"))
    args = parser.parse_args()

    from datasets import Dataset

    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.qdrant import close_shared_clients
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
    from clicktune.scheduler.evaluation import EvalSet, evaluate_collection
    from clicktune.scheduler.gate import PromotionGate
    from clicktune.scheduler.loop import RetrainLoop
    from clicktune.scheduler.miner import mine_feedback
    from clicktune.scheduler.reindex import BlueGreenReindexer
    from clicktune.scheduler.simulator import ClickSimulator, SimulationConfig
    from clicktune.scheduler.training import ClickTrainer

    data = BeirDataset.load(BUNDLED_SCIFACT)
    test = EvalSet(data.split_queries("test"), {q: set(r) for q, r in data.qrels["test"].items()}, name="test")
    settings = ClicktuneSettings(
        home=Path(tempfile.mkdtemp(prefix="clicktune-scifact-")), max_seq_length=args.max_seq_length,
        train_max_seq_length=args.max_seq_length, train_epochs=args.epochs, train_batch_size=32,
        train_learning_rate=2e-5, precision=args.precision, progress=True, min_new_clicks=1,
    )
    seconds: dict[str, float] = {}
    results: dict[str, dict] = {}
    emb = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=emb)
    handle = store.handle

    def scored(collection: str, version: str) -> dict:
        return evaluate_collection(handle.client, collection, handle.encoder(version), test).as_dict()

    t = time.perf_counter()
    docs = list(data.corpus.values())
    store.add_texts([d.content for d in docs], ids=[d.doc_id for d in docs], batch_size=512)
    seconds["index_base"] = time.perf_counter() - t
    live = store.collections.require_live()
    results["a_base"] = scored(live.collection, live.version)
    print("(a) base", results["a_base"], flush=True)

    t = time.perf_counter()
    traffic = ClickSimulator(data, store.similarity_search, store.record_click,
                             SimulationConfig(rounds=args.rounds, users=args.users), show_progress=True).run()
    seconds["traffic"] = time.perf_counter() - t

    loop = RetrainLoop(settings, handle=handle, feedback=store.feedback)
    t = time.perf_counter()
    mined = mine_feedback(store.feedback, loop._doc_texts(live.collection), loop.mining)
    seconds["mine"] = time.perf_counter() - t

    heldout = EvalSet(mined.eval_queries, mined.eval_relevant, name="heldout", judged=mined.eval_judged)
    gate = PromotionGate.from_settings(settings)

    def train_and_score(rows: Dataset, label: str) -> dict:
        t0 = time.perf_counter()
        result = ClickTrainer(handle.registry, settings, loop.training).train(rows, info={"benchmark": label})
        seconds[f"train_{label}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores: dict = {}

        def approve(champion_collection: str, candidate_collection: str) -> bool:
            scores.update(scored(candidate_collection, result.version))
            # What the loop's gate would say on the held-out *click* queries (diagnostic only).
            decision = gate.evaluate(handle, champion_collection, candidate_collection, heldout)
            scores["gate"] = {"would_promote": decision.promoted, "reason": decision.reason,
                              "heldout_champion": decision.champion["heldout"],
                              "heldout_candidate": decision.candidate["heldout"]}
            return False  # score only; the live collection stays the base model's

        BlueGreenReindexer(handle).run(result.version, approve=approve)
        seconds[f"reindex_{label}"] = time.perf_counter() - t0
        return {**scores, "version": result.version, "pairs": result.pairs, "train_seconds": result.seconds,
                "pairs_per_second": result.pairs / result.seconds}

    results["b_loop"] = train_and_score(mined.train, "loop")
    print("(b) loop", results["b_loop"], flush=True)

    oracle_rows: dict[str, list] = {"anchor": [], "positive": [], "negative": [], "weight": []}
    for qid, rels in data.qrels["train"].items():
        for doc_id in rels:
            oracle_rows["anchor"].append(data.queries[qid])
            oracle_rows["positive"].append(data.corpus[doc_id].content)
            oracle_rows["negative"].append(None)
            oracle_rows["weight"].append(1.0)
    results["c_oracle"] = train_and_score(Dataset.from_dict(oracle_rows), "oracle")
    print("(c) oracle", results["c_oracle"], flush=True)
    emb.close()
    close_shared_clients()

    a, b, c = (results[k]["ndcg@10"] for k in ("a_base", "b_loop", "c_oracle"))
    summary = {
        "b_over_a": b / a,
        "share_of_oracle_gain": (b - a) / (c - a) if c != a else None,
        "targets": {"b_over_a>=1.04": b / a >= 1.04, "share_of_oracle_gain>=0.9": c != a and (b - a) / (c - a) >= 0.9},
    }
    report = {"settings": vars(args) | {"out": str(args.out)}, "results": results, "summary": summary,
              "traffic": traffic.as_dict(), "mining": {k: v for k, v in mined.stats.items() if k != "propensities"},
              "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    print(f"\n{'':<10} {'nDCG@10':>8} {'Recall@10':>10} {'MRR@10':>8}")
    for key in ("a_base", "b_loop", "c_oracle"):
        r = results[key]
        print(f"{key:<10} {r['ndcg@10']:>8.4f} {r['recall@10']:>10.4f} {r['mrr@10']:>8.4f}")
    print(f"(b)/(a) = {summary['b_over_a']:.4f}; share of oracle gain = {summary['share_of_oracle_gain']}")
    for key in ("b_loop", "c_oracle"):
        print(f"gate on held-out clicks, {key}: {results[key]['gate']['reason']}")
    print("seconds:", report["seconds"])
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
