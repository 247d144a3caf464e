"""How a version collection is indexed: int8 vectors scanned and rescored below ``hnsw_from_documents``,
an HNSW graph from there on, built once after a bulk load (on the edge engine; local mode ignores both)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from qdrant_client import QdrantClient, models

from clicktune.adapters.qdrant import AliasedCollections
from clicktune.adapters.qdrant.collections import RESCORED_SEARCH
from clicktune.adapters.qdrant.documents import CollectionDocumentStore
from clicktune.adapters.qdrant.edge import edge_client
from clicktune.adapters.qdrant.errors import EdgeUnsupportedError

DIM = 384
#: Over Qdrant's indexing threshold (10,000 KB per segment, two segments): below it nothing is quantized.
SCANNED = 16_000


def _random_unit(n: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _bulk_load(client: QdrantClient, collections: AliasedCollections, vectors: np.ndarray) -> str:
    name = collections.create("v0001", DIM, bulk_load=True)
    client.upload_collection(name, vectors=vectors, ids=range(len(vectors)), batch_size=1000)
    assert client.get_collection(name).indexed_vectors_count == 0  # nothing indexed batch by batch
    collections.finish_bulk_load(name)
    return name


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (client, collection, vectors)
    client = edge_client(tmp_path_factory.mktemp("scanned"))
    vectors = _random_unit(SCANNED, seed=0)
    name = _bulk_load(client, AliasedCollections(client, "docs", hnsw_from_documents=SCANNED + 1), vectors)
    yield client, name, vectors
    client.close()


def _exact_top_10(vectors: np.ndarray, query: np.ndarray) -> set[int]:
    return set(np.argsort(-(vectors @ query))[:10].tolist())


def test_a_collection_below_the_graph_size_scans_int8_vectors_and_rescoring_keeps_exact_recall(scanned) -> None:  # noqa: ANN001
    """Random vectors are the worst case for any approximation; the rescored scan must still find the exact
    top 10 (HNSW at Qdrant's defaults finds about a seventh of it on 100,000 of them)."""
    client, name, vectors = scanned
    info = client.get_collection(name)
    assert info.config.hnsw_config.m == 0
    assert isinstance(info.config.quantization_config, models.ScalarQuantization)
    assert info.indexed_vectors_count == SCANNED  # quantized, once, after the load
    recall = []
    for query in _random_unit(30, seed=1):
        hits = client.query_points(name, query=query.tolist(), limit=10, search_params=RESCORED_SEARCH).points
        recall.append(len({p.id for p in hits} & _exact_top_10(vectors, query)) / 10)
    assert np.mean(recall) >= 0.99


def test_store_searches_rescore_unless_the_caller_gives_search_params(scanned) -> None:  # noqa: ANN001
    """Qdrant's default (no oversampling) loses some of the exact top 10 here; the store's default must not."""
    client, name, vectors = scanned
    store = CollectionDocumentStore(client=client, collection_name=name, embedding=DeterministicFakeEmbedding(size=DIM))
    store_recall, plain_recall = [], []
    for query in _random_unit(30, seed=2):
        expected = _exact_top_10(vectors, query)
        found = store.similarity_search_by_vector(query.tolist(), k=10)
        store_recall.append(len({int(d.id) for d in found} & expected) / 10)
        plain = store.similarity_search_by_vector(query.tolist(), k=10, search_params=models.SearchParams())
        plain_recall.append(len({int(d.id) for d in plain} & expected) / 10)
    assert np.mean(store_recall) >= 0.99
    assert np.mean(plain_recall) < np.mean(store_recall)  # the caller's own parameters are used as given


@pytest.mark.parametrize("hnsw_from_documents", [2000, 0])
def test_a_collection_built_at_the_graph_size_gets_an_hnsw_graph(tmp_path: Path, hnsw_from_documents: int) -> None:
    client = edge_client(tmp_path)
    name = _bulk_load(client, AliasedCollections(client, "docs", hnsw_from_documents=hnsw_from_documents),
                      _random_unit(2000, seed=0))
    assert client.get_collection(name).config.hnsw_config.m == 16
    client.close()


def test_quantization_settings_persist_and_other_quantizations_are_refused(tmp_path: Path) -> None:
    client = edge_client(tmp_path)
    AliasedCollections(client, "docs").create("v0001", DIM)
    client.close()
    reopened = edge_client(tmp_path)
    scalar = reopened.get_collection("docs__v0001").config.quantization_config
    assert scalar.scalar.type == models.ScalarType.INT8 and scalar.scalar.always_ram
    product = models.ProductQuantization(product=models.ProductQuantizationConfig(
        compression=models.CompressionRatio.X16))
    with pytest.raises(EdgeUnsupportedError, match="ProductQuantization"):
        reopened.create_collection("pq", vectors_config=models.VectorParams(size=DIM, distance="Cosine"),
                                   quantization_config=product)
    assert not reopened.collection_exists("pq")
    reopened.close()


def test_writes_after_the_build_are_quantized_in_the_background_and_stay_searchable(tmp_path: Path) -> None:
    """A collection that grows by writes (the store's first ``add_texts``) is indexed as Qdrant's optimizer
    would: once enough vectors are unindexed, in a background thread; searches meanwhile stay exact."""
    import time

    client = edge_client(tmp_path)
    name = AliasedCollections(client, "docs").create("v0001", DIM)  # not a bulk load: indexing on
    vectors = _random_unit(SCANNED, seed=3)
    for start in range(0, SCANNED, 2000):
        client.upload_collection(name, vectors=vectors[start : start + 2000], ids=range(start, start + 2000))
    deadline = time.monotonic() + 60
    while client.get_collection(name).indexed_vectors_count < SCANNED // 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.get_collection(name).indexed_vectors_count >= SCANNED // 2
    assert client.count(name).count == SCANNED
    query = _random_unit(1, seed=4)[0]
    hits = client.query_points(name, query=query.tolist(), limit=10, search_params=RESCORED_SEARCH).points
    assert len({p.id for p in hits} & _exact_top_10(vectors, query)) >= 9
    client.close()
