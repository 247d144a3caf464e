"""Benchmark: what making embedded Qdrant thread-safe costs a search.

Usage: python benchmarks/embedded_threads.py [--points 5000] [--queries 400] [--threads 4]

qdrant-client's local mode is not thread-safe, so clicktune serializes every call into it
(``clicktune.adapters.qdrant.client.serialize_embedded``). This measures, in one run:
- single-thread query latency, serialized vs the bare engine, interleaved query by query so machine
  noise hits both alike (the lock's own cost);
- queries per second with N threads querying at once, serialized (the bare engine cannot be run
  that way: it fails, which is the defect), against one thread.
Writes benchmarks/results/embedded_threads.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=400)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/embedded_threads.json"))
    args = parser.parse_args()

    from qdrant_client import QdrantClient, models

    from clicktune.adapters.qdrant.client import serialize_embedded

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.points, 384)).astype(np.float32)
    queries = rng.standard_normal((args.queries, 384)).astype(np.float32).tolist()
    # Two embedded folders with the same points: one bare, one behind clicktune's lock.
    bare = QdrantClient(path=tempfile.mkdtemp(prefix="clicktune-threads-"))
    serialized = serialize_embedded(QdrantClient(path=tempfile.mkdtemp(prefix="clicktune-threads-")))
    for client in (bare, serialized):
        client.create_collection("bench", vectors_config=models.VectorParams(size=384, distance=models.Distance.COSINE))
        client.upload_collection("bench", vectors=vectors, ids=list(range(args.points)), batch_size=1024)

    def timed(client: QdrantClient, query: list[float]) -> float:
        start = time.perf_counter()
        client.query_points("bench", query=query, limit=10)
        return (time.perf_counter() - start) * 1000

    bare_ms, locked_ms = [], []
    for query in queries:  # interleaved, one of each per query
        bare_ms.append(timed(bare, query))
        locked_ms.append(timed(serialized, query))

    def throughput(threads: int) -> float:
        per_thread = args.queries // threads
        def work(offset: int) -> None:
            for query in queries[offset : offset + per_thread]:
                serialized.query_points("bench", query=query, limit=10)
        workers = [threading.Thread(target=work, args=(i * per_thread,)) for i in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return per_thread * threads / (time.perf_counter() - start)

    one, many = throughput(1), throughput(args.threads)
    rows = [
        {"what": "query p50, 1 thread, bare engine", "value": statistics.median(bare_ms), "unit": "ms"},
        {"what": "query p50, 1 thread, serialized", "value": statistics.median(locked_ms), "unit": "ms"},
        {"what": "p50 overhead of the lock", "value": statistics.median(locked_ms) / statistics.median(bare_ms) - 1,
         "unit": "ratio"},
        {"what": "queries/s, 1 thread, serialized", "value": one, "unit": "1/s"},
        {"what": f"queries/s, {args.threads} threads, serialized", "value": many, "unit": "1/s"},
    ]
    print(f"{args.points} points x 384 dims, {args.queries} queries, top 10")
    for row in rows:
        print(f"  {row['what']:<40} {row['value']:>10.3f} {row['unit']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"points": args.points, "queries": args.queries, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
