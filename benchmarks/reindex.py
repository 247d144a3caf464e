"""Benchmark: blue-green reindex throughput against bare encoding, swap time, search latency.

Usage: python benchmarks/reindex.py [--limit N] [--out benchmarks/results/reindex.json]

All numbers come from one run on one machine; compare the ratios, not the absolute times.
  bare encode      SentenceTransformer.encode over the texts (the ceiling)
  clicktune add    ClicktuneVectorStore.add_texts into the first collection (ingestion path)
  reindex          BlueGreenReindexer.run to a second version of the same architecture
  langchain        QdrantVectorStore.from_texts + HuggingFaceEmbeddings into a fresh collection
Search p50/p99 is measured with the store idle and while the reindex runs in another thread.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def _percentiles(samples: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples) * 1000
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=None, help="first N documents only (default: all 5,183)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--searches", type=int, default=200, help="searches for the idle latency sample")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/reindex.json"))
    args = parser.parse_args()

    import torch
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_qdrant import QdrantVectorStore

    from clicktune.adapters import ClicktuneSettings, ModelRegistry
    from clicktune.adapters.models import autocast, resolve_precision
    from clicktune.adapters.qdrant import close_shared_clients
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
    from clicktune.scheduler.reindex import BlueGreenReindexer

    dataset = BeirDataset.load(BUNDLED_SCIFACT)
    docs = list(dataset.corpus.values())[: args.limit]
    texts, ids = [d.content for d in docs], [d.doc_id for d in docs]
    queries = list(dataset.split_queries("test").values())
    work = Path(tempfile.mkdtemp(prefix="clicktune-bench-"))
    settings = ClicktuneSettings(home=work, batch_size=args.batch_size, progress=True)
    registry = ModelRegistry.from_settings(settings)
    registry.bootstrap()
    base = registry.load_model("v0001")
    results: dict[str, float | int | str] = {"docs": len(texts), "batch_size": args.batch_size,
                                             "torch_threads": torch.get_num_threads(),
                                             "max_seq_length": base.max_seq_length}

    # A second version with the same architecture (so the same cost); quality is not measured here.
    v2_model = registry.load_model("v0001")
    with torch.no_grad():
        v2_model[0].auto_model.embeddings.word_embeddings.weight.mul_(1.01)
    registry.register(v2_model, parent="v0001")

    # Bare encode in the precision the reindexer runs in (settings.precision resolved here), so the
    # ratio is the pipeline's overhead alone; fp32 alongside, for scale.
    precision = resolve_precision(settings.precision, device=settings.device)
    results["precision"] = precision
    bare_sides = {"bare_encode_docs_per_s": precision}
    if precision != "fp32":
        bare_sides["bare_encode_fp32_docs_per_s"] = "fp32"
    for label, p in bare_sides.items():
        t = time.perf_counter()
        with autocast(p, base.device.type):
            base.encode(texts, batch_size=args.batch_size, normalize_embeddings=True, show_progress_bar=True)
        results[label] = len(texts) / (time.perf_counter() - t)

    embeddings = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=embeddings)
    t = time.perf_counter()
    store.add_texts(texts, ids=ids, batch_size=256)
    results["clicktune_add_docs_per_s"] = len(texts) / (time.perf_counter() - t)

    idle = []
    for q in (queries * 10)[: args.searches]:
        t = time.perf_counter()
        store.similarity_search(q, k=10)
        idle.append(time.perf_counter() - t)
    results["search_idle_p50_ms"], results["search_idle_p99_ms"] = _percentiles(idle)

    # 1) The pipeline's own cost: a reindex with nothing else running.
    report = BlueGreenReindexer(store.handle, batch_size=args.batch_size).run("v0002")
    results["reindex_docs_per_s"] = len(texts) / report.seconds["total"]
    results["reindex_copy_docs_per_s"] = len(texts) / report.seconds["copy"]
    results["swap_freeze_ms"] = report.seconds["freeze"] * 1000

    # 2) What users feel: search latency while another reindex (to v0003) runs.
    v3_model = registry.load_model("v0001")
    with torch.no_grad():
        v3_model[0].auto_model.embeddings.word_embeddings.weight.mul_(0.99)
    registry.register(v3_model, parent="v0002")
    during: list[float] = []
    done = threading.Event()

    def searcher() -> None:
        i = 0
        while not done.is_set():
            t0 = time.perf_counter()
            store.similarity_search(queries[i % len(queries)], k=10)
            during.append(time.perf_counter() - t0)
            i += 1
            time.sleep(0.05)  # a steady trickle of user traffic, not a flood

    reader = threading.Thread(target=searcher)
    reader.start()
    loaded = BlueGreenReindexer(store.handle, batch_size=args.batch_size).run("v0003")
    done.set()
    reader.join()
    results["reindex_under_search_docs_per_s"] = len(texts) / loaded.seconds["total"]
    results["search_during_reindex_p50_ms"], results["search_during_reindex_p99_ms"] = _percentiles(during)
    results["search_during_reindex_n"] = len(during)
    embeddings.close()

    # The same model at the same max_seq_length, saved as a folder: LangChain has no public way to set it.
    base.save(str(work / "baseline-model"))
    hf = HuggingFaceEmbeddings(model_name=str(work / "baseline-model"),
                               encode_kwargs={"normalize_embeddings": True, "batch_size": args.batch_size})
    t = time.perf_counter()
    plain = QdrantVectorStore.from_texts(texts, hf, path=str(work / "langchain-qdrant"), collection_name="plain",
                                         batch_size=256)
    results["langchain_from_texts_docs_per_s"] = len(texts) / (time.perf_counter() - t)
    plain.client.close()

    results["reindex_vs_bare_encode"] = results["reindex_docs_per_s"] / results["bare_encode_docs_per_s"]
    results["reindex_copy_vs_bare_encode"] = results["reindex_copy_docs_per_s"] / results["bare_encode_docs_per_s"]
    results["clicktune_add_vs_langchain"] = results["clicktune_add_docs_per_s"] / results["langchain_from_texts_docs_per_s"]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    width = max(len(k) for k in results)
    print(f"\n{'metric'.ljust(width)}  value")
    for key, value in results.items():
        print(f"{key.ljust(width)}  {value:.3f}" if isinstance(value, float) else f"{key.ljust(width)}  {value}")
    print(f"\nJSON: {args.out}")
    close_shared_clients()


if __name__ == "__main__":
    main()
