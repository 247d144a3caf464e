"""Benchmark: fp32 against bf16 for encoding, single queries, retrieval quality and training.

Usage: python benchmarks/precision.py [--encode-docs 600] [--train-pairs 300]

All in one run, fp32 and bf16 interleaved so machine noise hits both alike:
  document encode docs/s, embed_query p50/p99, SciFact test nDCG@10 / Recall@10 with the whole corpus
  encoded each way, and trainer pairs/s with the resulting nDCG@10. The reindexer's ratio to bare
  encoding in the chosen precision is in benchmarks/reindex.py (it runs in `auto`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encode-docs", type=int, default=600)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--train-pairs", type=int, default=300)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--train-seq-length", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/precision.json"))
    args = parser.parse_args()

    import torch
    from datasets import Dataset

    from clicktune.adapters import ClicktuneSettings, ModelRegistry
    from clicktune.adapters.models import VersionEncoder, native_bf16_available, resolve_precision
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
    from clicktune.scheduler.evaluation import ir_metrics
    from clicktune.scheduler.training import ClickTrainer, TrainingConfig

    data = BeirDataset.load(BUNDLED_SCIFACT)
    ids = list(data.corpus)
    texts = [data.corpus[i].content for i in ids]
    test_queries = data.split_queries("test")
    relevant = {q: set(r) for q, r in data.qrels["test"].items()}
    settings = ClicktuneSettings(home=Path(tempfile.mkdtemp(prefix="clicktune-prec-")), progress=False,
                                 max_seq_length=args.max_seq_length, train_max_seq_length=args.train_seq_length)
    registry = ModelRegistry.from_settings(settings)
    registry.bootstrap()
    model = registry.load_model("v0001")
    enc = {p: VersionEncoder("v0001", model, precision=p, query_precision=p) for p in ("fp32", "bf16")}
    out: dict[str, object] = {"native_bf16": native_bf16_available(), "auto_resolves_to": resolve_precision("auto"),
                              "max_seq_length": args.max_seq_length, "torch_threads": torch.get_num_threads()}

    sample = texts[: args.encode_docs]
    for e in enc.values():
        e.encode(sample[:64])
    rates: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for _ in range(2):
        for p, e in enc.items():
            t = time.perf_counter()
            e.encode(sample, batch_size=32)
            rates[p].append(len(sample) / (time.perf_counter() - t))
    for p in rates:
        out[f"encode_docs_per_s_{p}"] = float(np.median(rates[p]))
    out["encode_speedup_bf16"] = out["encode_docs_per_s_bf16"] / out["encode_docs_per_s_fp32"]

    lat: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for q in list(data.queries.values())[: args.queries]:
        for p, e in enc.items():
            t = time.perf_counter()
            e.encode_query(q)
            lat[p].append(time.perf_counter() - t)
    for p in lat:
        out[f"query_p50_ms_{p}"] = float(np.percentile(lat[p], 50) * 1000)
        out[f"query_p99_ms_{p}"] = float(np.percentile(lat[p], 99) * 1000)

    def quality(e: VersionEncoder) -> dict:
        corpus = e.encode(texts, batch_size=32)
        qids = list(test_queries)
        queries = np.stack([e.encode_query(test_queries[q]) for q in qids])
        top = np.argsort(-(queries @ corpus.T), axis=1)[:, :10]
        return ir_metrics({q: [ids[j] for j in top[i]] for i, q in enumerate(qids)}, relevant).as_dict()

    for p, e in enc.items():
        scores = quality(e)
        out[f"ndcg@10_{p}"], out[f"recall@10_{p}"] = scores["ndcg@10"], scores["recall@10"]

    rows = {"anchor": [], "positive": [], "negative": [], "weight": []}
    for qid, rels in list(data.qrels["train"].items()):
        for doc_id in rels:
            rows["anchor"].append(data.queries[qid])
            rows["positive"].append(data.corpus[doc_id].content)
            rows["negative"].append(None)
            rows["weight"].append(1.0)
    pairs = Dataset.from_dict(rows).select(range(min(args.train_pairs, len(rows["anchor"]))))
    for p in ("fp32", "bf16"):
        config = TrainingConfig(epochs=1, max_seq_length=args.train_seq_length, min_pairs=1, seed=42,
                                bf16=(p == "bf16"))
        result = ClickTrainer(registry, settings, config).train(pairs)
        out[f"train_pairs_per_s_{p}"] = result.pairs / result.seconds
        trained = registry.load_model(result.version)
        scores = quality(VersionEncoder(result.version, trained, precision="bf16", query_precision="bf16"))
        out[f"train_ndcg@10_{p}"] = scores["ndcg@10"]
    out["train_speedup_bf16"] = out["train_pairs_per_s_bf16"] / out["train_pairs_per_s_fp32"]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    for key, value in out.items():
        print(f"{key:<28} {value:.4f}" if isinstance(value, float) else f"{key:<28} {value}")
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
