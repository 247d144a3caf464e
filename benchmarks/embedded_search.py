"""Benchmark: top-10 search in embedded Qdrant, qdrant-client's local mode vs the edge engine.

Usage: python benchmarks/embedded_search.py [--sizes 5000 20000 100000] [--queries 200]
                                            [--local-queries 100 50 20] [--ef 0 512] [--no-encoding]

For each size, random 384-dim unit vectors (a normalized Gaussian: the hardest case for HNSW, whose
recall is far higher on real text embeddings) are loaded into both engines as clicktune builds a version
collection (``AliasedCollections.create(bulk_load=True)``, upload, ``finish_bulk_load``): indexing off
during the upload, then indexed once. Below ``hnsw_from_documents`` (clicktune's default, 250,000) that
index is int8 quantization and searches scan it, rescoring twice the candidates in float32
(``RESCORED_SEARCH``, as the store searches): the "edge" rows. The edge engine then loads the same
vectors again with an HNSW graph (m=16, Qdrant's default), searched at its default ``hnsw_ef`` and each
``--ef``: the "edge hnsw" rows. Local mode ignores both and always searches exactly. Then both engines are
searched through ``ClicktuneVectorStore`` ("store" rows: by vector and by text, impression logged), and
the edge rows are measured again on real text embeddings ("[sentences]": SciFact sentences encoded by the
packaged model, SciFact queries; ``--no-text`` skips it). Measured, single thread:
- upsert rate (points/s, batches of 256 through ``upload_collection``) and the index build time;
- p50/p99 latency of ``query_points(limit=10)`` by vector (query encoding excluded), and exact search
  (``exact=True``, float32);
- recall@10 against exact top-10 computed with NumPy;
- one row with the query encoding included (the packaged all-MiniLM-L6-v2 through
  ``clicktune.adapters.models``, real SciFact-like sentences), at the largest size.
Local mode gets fewer queries (``--local-queries``, one per size): it is brute force in Python; it
loads into a folder at the first size only (SQLite stores ~200-250 points/s), in memory above.
Writes benchmarks/results/embedded_search.json, one row per engine (and setting) and size.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

DIM = 384


def _percentiles(ms: list[float]) -> tuple[float, float]:
    return statistics.median(ms), float(np.percentile(ms, 99))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000, 100000])
    parser.add_argument("--queries", type=int, default=200, help="queries per edge measurement")
    parser.add_argument("--local-queries", type=int, nargs="+", default=[100, 50, 20], help="per size")
    parser.add_argument("--ef", type=int, nargs="+", default=[0, 512], help="hnsw_ef values; 0 = default")
    parser.add_argument("--no-encoding", action="store_true", help="skip the row with query encoding")
    parser.add_argument("--store-queries", type=int, default=60, help="searches per store measurement")
    parser.add_argument("--no-text", action="store_true", help="skip the real-text rows (they encode ~100k sentences)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/embedded_search.json"))
    args = parser.parse_args()

    from qdrant_client import QdrantClient

    from clicktune.adapters.qdrant import AliasedCollections
    from clicktune.adapters.qdrant.edge import edge_client

    rng = np.random.default_rng(0)
    rows: list[dict] = []

    def load(client: QdrantClient, vectors: np.ndarray, *, graph: bool = False) -> tuple[str, float, float]:
        """Load as clicktune builds a version collection (indexing off, bulk upload, indexed once after):
        int8-quantized and scanned (clicktune's default below ``hnsw_from_documents``), or with a graph."""
        collections = AliasedCollections(client, "bench", hnsw_from_documents=0 if graph else len(vectors) + 1)
        name = collections.create("v0001", DIM, bulk_load=True)
        start = time.perf_counter()
        client.upload_collection(name, vectors=vectors, ids=range(len(vectors)), batch_size=256)
        upsert_rate = len(vectors) / (time.perf_counter() - start)
        start = time.perf_counter()
        collections.finish_bulk_load(name)
        return name, upsert_rate, time.perf_counter() - start

    def measure(client: QdrantClient, name: str, queries: np.ndarray, truth: list[set],
                params=None) -> tuple[float, float, float]:  # noqa: ANN001
        ms, recall = [], []
        for query, expected in zip(queries.tolist(), truth, strict=True):
            start = time.perf_counter()
            hits = client.query_points(name, query=query, limit=10, search_params=params).points
            ms.append((time.perf_counter() - start) * 1000)
            recall.append(len({p.id for p in hits} & expected) / 10)
        p50, p99 = _percentiles(ms)
        return p50, p99, float(np.mean(recall))

    for index, size in enumerate(args.sizes):
        vectors = rng.standard_normal((size, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        queries = rng.standard_normal((args.queries, DIM)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        truth = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in queries]

        rows += _edge_rows(vectors, queries, args.ef, "random", load, measure)
        if not args.no_encoding and index == len(args.sizes) - 1:
            edge = edge_client(tempfile.mkdtemp(prefix="clicktune-edge-bench-"))
            name, _, _ = load(edge, vectors)
            rows.append(_with_encoding(edge, name, size, rng))
            edge.close()
        for engine in ("edge", "local"):
            rows += _through_the_store(engine, vectors, queries[: args.store_queries], in_folder=engine == "edge" or index == 0)

        # local mode in a folder stores points in SQLite at ~200-250/s on a 2-core CPU: only the first size is
        # loaded that way (its upsert rate); larger ones load in memory, which searches exactly as fast
        on_disk = index == 0
        local = QdrantClient(path=tempfile.mkdtemp(prefix="clicktune-local-bench-")) if on_disk else QdrantClient(":memory:")
        name, upsert_rate, _ = load(local, vectors)
        count = args.local_queries[min(index, len(args.local_queries) - 1)]
        p50, p99, recall = measure(local, name, queries[:count], truth[:count])
        rows.append({"engine": "local", "documents": size, "p50_ms": p50, "p99_ms": p99, "recall@10": recall,
                     "upsert_per_s": upsert_rate if on_disk else None, "hnsw_build_s": None, "queries": count,
                     "storage": "folder" if on_disk else "memory"})
        local.close()
        print(f"{size} documents done", flush=True)
    if not args.no_text:
        rows += _real_text_rows(args.sizes, args.queries, args.ef, load, measure)

    print(f"{DIM}-dim random unit vectors, top 10, one thread; {platform.processor() or platform.machine()}")
    print(f"  {'engine':<30} {'docs':>7} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>9} {'upsert/s':>9} {'build s':>8}")
    for row in rows:
        built = row.get("hnsw_build_s") or row.get("index_build_s")
        build = f"{built:.1f}" if built else "-"
        upserts = f"{row['upsert_per_s']:.0f}" if row.get("upsert_per_s") else "-"
        recall = f"{row['recall@10']:.3f}" if row.get("recall@10") is not None else "-"
        name = row["engine"] + (" (text)" if row.get("query_encoding") else " (vector)" if "search" in row else "")
        name += " [sentences]" if row.get("vectors") == "SciFact sentences" else ""
        print(f"  {name:<30} {row['documents']:>7} {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f} {recall:>9} "
              f"{upserts:>9} {build:>8}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"dimension": DIM, "rows": rows}, indent=2))
    print(f"wrote {args.out}")


def _edge_rows(vectors: np.ndarray, queries: np.ndarray, efs: list[int], kind: str,
               load, measure) -> list[dict]:  # noqa: ANN001
    """Two edge collections of ``vectors``: clicktune's default (int8 scan rescored, ``RESCORED_SEARCH``, as
    the store searches it; plus exact search), then with a graph, one row per ``hnsw_ef`` (0 = default)."""
    from qdrant_client import models

    from clicktune.adapters.qdrant.collections import RESCORED_SEARCH
    from clicktune.adapters.qdrant.edge import edge_client

    truth = [set(np.argsort(-(vectors @ q))[:10].tolist()) for q in queries]
    rows = []
    edge = edge_client(tempfile.mkdtemp(prefix="clicktune-edge-bench-"))
    name, upsert_rate, build_s = load(edge, vectors)
    common = {"documents": len(vectors), "upsert_per_s": upsert_rate, "vectors": kind}
    p50, p99, recall = measure(edge, name, queries, truth, RESCORED_SEARCH)
    rows.append({"engine": "edge", "index": "int8 scan, rescored", "p50_ms": p50, "p99_ms": p99, "recall@10": recall,
                 "hnsw_build_s": None, "index_build_s": build_s, "queries": len(queries), **common})
    p50, p99, recall = measure(edge, name, queries[:50], truth[:50], models.SearchParams(exact=True))
    rows.append({"engine": "edge exact", "index": "float32 scan", "p50_ms": p50, "p99_ms": p99, "recall@10": recall,
                 "hnsw_build_s": None, "queries": 50, **common})
    edge.close()
    edge = edge_client(tempfile.mkdtemp(prefix="clicktune-edge-bench-"))
    name, upsert_rate, build_s = load(edge, vectors, graph=True)
    for ef in efs:
        p50, p99, recall = measure(edge, name, queries, truth,
                                   models.SearchParams(hnsw_ef=ef or None, quantization=RESCORED_SEARCH.quantization))
        rows.append({"engine": "edge hnsw" + (f" ef={ef}" if ef else ""), "index": "HNSW m=16", "p50_ms": p50,
                     "p99_ms": p99, "recall@10": recall, "hnsw_build_s": build_s, "queries": len(queries),
                     **common, "upsert_per_s": upsert_rate})
    edge.close()
    return rows


def _real_text_rows(sizes: list[int], n_queries: int, efs: list[int], load, measure) -> list[dict]:  # noqa: ANN001
    """Recall and latency of the edge engine's graph on real text embeddings: SciFact abstracts cut into
    sentences and pairs of sentences (about 100,000 texts), encoded by the packaged model at length 128;
    queries are SciFact's own. Random vectors are the worst case for a graph; these are what it serves."""
    import re

    from clicktune.adapters.models import VersionEncoder, load_sentence_transformer
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset

    data = BeirDataset.load(BUNDLED_SCIFACT)
    texts: list[str] = []
    for doc in data.corpus.values():
        sentences = [t for t in re.split(r"(?<=[.!?])\s+", doc.content) if len(t) > 20]
        texts += sentences + [" ".join(sentences[i : i + 2]) for i in range(len(sentences) - 1)]
    texts = list(dict.fromkeys(texts))[: max(sizes)]
    model = load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2", allow_download=False)
    model.max_seq_length = 128
    encoder = VersionEncoder("v0001", model)
    start = time.perf_counter()
    vectors = np.asarray(encoder.encode(texts, batch_size=128), dtype=np.float32)
    print(f"encoded {len(texts)} SciFact sentences in {time.perf_counter() - start:.0f}s", flush=True)
    queries = np.asarray(encoder.encode(list(data.queries.values())[:n_queries], batch_size=64), dtype=np.float32)
    rows = []
    for size in sorted({min(s, len(vectors)) for s in sizes}):  # SciFact has ~96,000 such texts
        rows += _edge_rows(vectors[:size], queries, efs, "SciFact sentences", load, measure)
    return rows


def _through_the_store(engine: str, vectors: np.ndarray, queries: np.ndarray, *, in_folder: bool) -> list[dict]:
    """p50/p99 of ``ClicktuneVectorStore`` searches on ``engine``: by vector (query encoding excluded) and
    by text (the packaged model encodes the query), each logging its impression as in production.

    The documents are the random vectors, written as clicktune writes a version collection (payload
    keys, caller ids, the alias) by ``CollectionDocumentStore`` from precomputed vectors, so 100,000
    documents load without encoding 100,000 texts. Local mode loads into memory above the first size.
    """
    from langchain_core.embeddings import Embeddings

    from clicktune.adapters import ClicktuneSettings, ModelRegistry
    from clicktune.adapters.qdrant import CollectionDocumentStore, close_shared_clients
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore

    class Precomputed(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            # "doc 17" -> row 17; langchain-qdrant's dimension probe ("dummy_text") gets row 0
            return vectors[[int(t.split()[1]) if t.startswith("doc ") else 0 for t in texts]].tolist()

        def embed_query(self, text: str) -> list[float]:
            raise NotImplementedError("documents only")

    home = Path(tempfile.mkdtemp(prefix=f"clicktune-store-bench-{engine}-"))
    settings = ClicktuneSettings(home=home, embedded_engine=engine, progress=False, watch_registry=False,
                                 **({} if in_folder else {"qdrant_path": ":memory:"}))
    ModelRegistry.from_settings(settings).bootstrap()
    embeddings = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=embeddings)
    collections = store.handle.collections
    collection = collections.create("v0001", DIM, bulk_load=True)
    start = time.perf_counter()
    CollectionDocumentStore(client=store.client, collection_name=collection, embedding=Precomputed()).add_texts(
        [f"doc {i}" for i in range(len(vectors))], ids=[f"doc-{i}" for i in range(len(vectors))], batch_size=1024)
    collections.finish_bulk_load(collection)
    load_s = time.perf_counter() - start
    collections.point_alias_at(collection)
    words = "protein cell gene tumor dose patient risk blood trial mutation immune response brain".split()
    texts = [" ".join(np.random.default_rng(i).choice(words, size=8)) for i in range(len(queries))]
    store.similarity_search(texts[0], k=10)  # load the model, open the click log
    by_vector, by_text = [], []
    for query, text in zip(queries.tolist(), texts, strict=True):
        start = time.perf_counter()
        store.similarity_search_by_vector(query, k=10)
        by_vector.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        store.similarity_search(text, k=10)
        by_text.append((time.perf_counter() - start) * 1000)
    embeddings.close()
    close_shared_clients()
    rows = []
    for what, ms in (("similarity_search_by_vector", by_vector), ("similarity_search", by_text)):
        p50, p99 = _percentiles(ms)
        rows.append({"engine": f"{engine} store", "search": what, "documents": len(vectors), "p50_ms": p50,
                     "p99_ms": p99, "recall@10": None, "upsert_per_s": len(vectors) / load_s, "hnsw_build_s": None,
                     "queries": len(ms), "storage": "folder" if in_folder else "memory",
                     "query_encoding": what == "similarity_search"})
    return rows


def _with_encoding(client, name: str, size: int, rng: np.random.Generator) -> dict:  # noqa: ANN001 - a QdrantClient
    """p50/p99 of encoding a query with the packaged model and searching the edge engine with it."""
    from clicktune.adapters.models import VersionEncoder, load_sentence_transformer
    from clicktune.adapters.qdrant.collections import RESCORED_SEARCH

    encoder = VersionEncoder("v0001", load_sentence_transformer("sentence-transformers/all-MiniLM-L6-v2",
                                                                allow_download=False))
    words = "protein cell gene tumor dose patient risk blood trial mutation immune response brain".split()
    texts = [" ".join(rng.choice(words, size=8)) for _ in range(60)]
    for _ in range(5):
        encoder.encode_query("warm up the model")
    ms = []
    for text in texts:
        start = time.perf_counter()
        client.query_points(name, query=encoder.encode_query(text).tolist(), limit=10, search_params=RESCORED_SEARCH)
        ms.append((time.perf_counter() - start) * 1000)
    p50, p99 = _percentiles(ms)
    return {"engine": "edge + query encoding", "documents": size, "p50_ms": p50, "p99_ms": p99, "recall@10": None,
            "upsert_per_s": None, "hnsw_build_s": None, "queries": len(texts),
            "precision": encoder.query_precision}


if __name__ == "__main__":
    main()
