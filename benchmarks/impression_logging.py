"""Benchmark: what logging every search as an impression costs a search.

Usage: python benchmarks/impression_logging.py [--docs N] [--searches 1000]

Searches alternate logging on / off (same store, same queries, interleaved so machine noise hits
both sides alike); the table gives p50 / p99 per side and the p50 overhead (target <= 5%).
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
    parser.add_argument("--docs", type=int, default=None, help="first N SciFact documents (default: all 5,183)")
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/impression_logging.json"))
    args = parser.parse_args()

    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.qdrant import close_shared_clients
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset

    data = BeirDataset.load(BUNDLED_SCIFACT)
    docs = list(data.corpus.values())[: args.docs]
    queries = list(data.queries.values())
    settings = ClicktuneSettings(home=Path(tempfile.mkdtemp(prefix="clicktune-bench-")), progress=True,
                                 max_seq_length=args.max_seq_length)
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        store.add_texts([d.content for d in docs], ids=[d.doc_id for d in docs], batch_size=512)
        for q in queries[:20]:  # warm-up: model, tokenizer, SQLite connection pool
            store.similarity_search(q, k=10)
            store.similarity_search(q, k=10, log_impression=False)
        on: list[float] = []
        off: list[float] = []
        for i in range(args.searches):
            q = queries[i % len(queries)]
            for flag, bucket in ((True, on), (False, off)) if i % 2 else ((False, off), (True, on)):
                t = time.perf_counter()
                store.similarity_search(q, k=10, log_impression=flag, user_id="bench")
                bucket.append(time.perf_counter() - t)
        logged = store.impression_logger.logged
        failures = store.impression_logger.failures
    close_shared_clients()

    def pct(xs: list[float], p: float) -> float:
        return float(np.percentile(np.asarray(xs) * 1000, p))

    results = {
        "docs": len(docs), "searches_per_side": args.searches, "max_seq_length": args.max_seq_length,
        "p50_ms_logging_off": pct(off, 50), "p50_ms_logging_on": pct(on, 50),
        "p99_ms_logging_off": pct(off, 99), "p99_ms_logging_on": pct(on, 99),
        "impressions_logged": logged, "logging_failures": failures,
    }
    results["p50_overhead_pct"] = 100 * (results["p50_ms_logging_on"] / results["p50_ms_logging_off"] - 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key.ljust(width)}  {value:.3f}" if isinstance(value, float) else f"{key.ljust(width)}  {value}")
    print(f"JSON: {args.out}")


if __name__ == "__main__":
    main()
