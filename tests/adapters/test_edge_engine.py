"""The edge engine (qdrant_edge behind QdrantBase) answers as qdrant-client's local mode does.

Real engines, no mocks: every contract test runs the same calls on a local-mode client and an edge
client and compares what they return. Then what only the edge engine has: HNSW recall, persistence,
SIGKILL durability and concurrent use from many threads.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from clicktune.adapters.qdrant.edge import UNSUPPORTED, edge_client, is_edge_client
from clicktune.adapters.qdrant.errors import EdgeUnsupportedError, EdgeUnsupportedFilterError

DIM = 8


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[tuple[QdrantClient, QdrantClient]]:
    local, edge = QdrantClient(path=str(tmp_path / "local")), edge_client(tmp_path / "edge")
    yield local, edge
    local.close()
    edge.close()


def _points(n: int, seed: int = 0, uuids: bool = False) -> list[models.PointStruct]:
    rng = np.random.default_rng(seed)
    return [
        models.PointStruct(
            id=str(uuid.UUID(int=i + 1)) if uuids else i,
            vector=rng.standard_normal(DIM).tolist(),
            payload={"n": i, "parity": "even" if i % 2 == 0 else "odd", "tags": ["a", "b"][: i % 3],
                     "metadata": {"group": i % 4}, "maybe": None if i % 5 == 0 else i},
        )
        for i in range(n)
    ]


def _both(clients: tuple[QdrantClient, QdrantClient], method: str, *args, **kwargs):
    return [getattr(client, method)(*args, **kwargs) for client in clients]


def _setup(clients, name: str = "docs", n: int = 60, uuids: bool = False,
           distance: models.Distance = models.Distance.COSINE, vectors: object = None) -> None:
    config = vectors or models.VectorParams(size=DIM, distance=distance)
    _both(clients, "create_collection", name, vectors_config=config)
    points = _points(n, uuids=uuids)
    if isinstance(config, dict):
        (vector_name,) = config
        points = [p.model_copy(update={"vector": {vector_name: p.vector}}) for p in points]
    _both(clients, "upsert", name, points=points)


def _records(records) -> list[tuple]:
    return [(r.id, r.payload) for r in records]


def _hits(response, scores: bool = True) -> list[tuple]:
    return [(p.id, round(p.score, 4) if scores else None, p.payload) for p in response.points]


def test_edge_client_is_a_real_qdrant_client(tmp_path: Path) -> None:
    client = edge_client(tmp_path)
    assert isinstance(client, QdrantClient) and is_edge_client(client)
    assert not is_edge_client(QdrantClient(":memory:"))
    client.close()


@pytest.mark.parametrize("uuids", [False, True], ids=["int-ids", "uuid-ids"])
def test_scroll_pages_retrieve_and_count_match_local_mode(clients, uuids: bool) -> None:
    _setup(clients, n=57, uuids=uuids)
    pages: list[list] = [[], []]
    for side, client in enumerate(clients):
        offset = None
        while True:
            records, offset = client.scroll("docs", limit=10, offset=offset, with_payload=True)
            pages[side].append(_records(records))
            if offset is None:
                break
    assert pages[0] == pages[1] and len(pages[0]) == 6
    ids = [p.id for p in _points(57, uuids=uuids)][::7] + ([str(uuid.UUID(int=999))] if uuids else [999])
    local, edge = _both(clients, "retrieve", "docs", ids, with_payload=["n"], with_vectors=True)
    assert _records(local) == _records(edge)
    assert [np.round(r.vector, 5).tolist() for r in local] == [np.round(r.vector, 5).tolist() for r in edge]
    parity = models.Filter(must=[models.FieldCondition(key="parity", match=models.MatchValue(value="odd"))])
    assert [c.count for c in _both(clients, "count", "docs")] == [57, 57]
    assert [c.count for c in _both(clients, "count", "docs", count_filter=parity)] == [28, 28]
    local, edge = _both(clients, "scroll", "docs", scroll_filter=parity, limit=5, with_payload=False)
    assert [r.id for r in local[0]] == [r.id for r in edge[0]] and local[1] == edge[1]
    assert all(r.payload is None for r in edge[0])


def test_delete_by_id_and_by_filter_match_local_mode(clients) -> None:
    _setup(clients)
    _both(clients, "delete", "docs", points_selector=models.PointIdsList(points=[0, 1, 2]))
    _both(clients, "delete", "docs", points_selector=[3])  # langchain-qdrant passes a plain list
    _both(clients, "delete", "docs", points_selector=models.FilterSelector(filter=models.Filter(
        must=[models.FieldCondition(key="metadata.group", match=models.MatchValue(value=1))])))
    local, edge = _both(clients, "scroll", "docs", limit=100)
    assert _records(local[0]) == _records(edge[0]) and len(edge[0]) == 60 - 4 - 14
    with pytest.raises(ValueError):
        clients[1].delete("docs", points_selector=[])


FILTERS = {
    "must-match-value": models.Filter(must=[models.FieldCondition(key="parity", match=models.MatchValue(value="even"))]),
    "should-match-any": models.Filter(should=[models.FieldCondition(key="n", match=models.MatchAny(any=[1, 2, 3])),
                                              models.FieldCondition(key="tags", match=models.MatchAny(any=["b"]))]),
    "must-not-except": models.Filter(must_not=[models.FieldCondition(
        key="metadata.group", match=models.MatchExcept(**{"except": [0, 1]}))]),
    "nested-filters": models.Filter(must=[models.Filter(should=[
        models.FieldCondition(key="n", range=models.Range(gte=10, lt=20)),
        models.Filter(must_not=[models.FieldCondition(key="n", range=models.Range(lte=50))])])]),
    "is-empty": models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key="tags"))]),
    "is-null": models.Filter(must=[models.IsNullCondition(is_null=models.PayloadField(key="maybe"))]),
    "has-id": models.Filter(must=[models.HasIdCondition(has_id=[1, 5, 9, 44])]),
    # whole words: without a text index edge (like the server) matches substrings, local mode whole words
    "text": models.Filter(must=[models.FieldCondition(key="parity", match=models.MatchText(text="odd"))]),
}


@pytest.mark.parametrize("name", list(FILTERS))
def test_filtered_queries_match_local_mode(clients, name: str) -> None:
    _setup(clients)
    query = np.random.default_rng(7).standard_normal(DIM).tolist()
    local, edge = _both(clients, "query_points", "docs", query=query, query_filter=FILTERS[name], limit=8)
    assert _hits(local) == _hits(edge) and edge.points
    counts = [c.count for c in _both(clients, "count", "docs", count_filter=FILTERS[name])]
    assert counts[0] == counts[1]


@pytest.mark.parametrize("distance", [models.Distance.COSINE, models.Distance.DOT, models.Distance.EUCLID])
def test_query_options_match_local_mode_for_each_distance(clients, distance: models.Distance) -> None:
    _setup(clients, distance=distance)
    query = np.random.default_rng(3).standard_normal(DIM).tolist()
    local, edge = _both(clients, "query_points", "docs", query=query, limit=5, offset=3, with_vectors=True,
                        search_params=models.SearchParams(exact=True))
    assert _hits(local) == _hits(edge)
    assert np.allclose([p.vector for p in local.points], [p.vector for p in edge.points], atol=1e-5)
    threshold = (local.points[2].score + local.points[3].score) / 2  # not on a score: float32 vs float64
    local, edge = _both(clients, "query_points", "docs", query=query, limit=20, score_threshold=threshold)
    assert _hits(local) == _hits(edge)
    by_id = _both(clients, "query_points", "docs", query=4, limit=3)  # a point id: its vector, without it
    assert _hits(by_id[0]) == _hits(by_id[1]) and 4 not in [p.id for p in by_id[1].points]
    requests = [models.QueryRequest(query=query, limit=4, with_payload=True),
                models.QueryRequest(query=query, limit=2, filter=FILTERS["has-id"])]
    local, edge = _both(clients, "query_batch_points", "docs", requests=requests)
    assert [_hits(r) for r in local] == [_hits(r) for r in edge]


def test_named_vectors_as_langchain_creates_them_match_local_mode(clients) -> None:
    for name in ("", "dense"):
        collection = f"named-{name or 'empty'}"
        _setup(clients, collection, vectors={name: models.VectorParams(size=DIM, distance=models.Distance.COSINE)})
        query = np.random.default_rng(1).standard_normal(DIM).tolist()
        local, edge = _both(clients, "query_points", collection, query=query, using=name, limit=3, with_vectors=True)
        assert _hits(local) == _hits(edge)
        assert type(local.points[0].vector) is type(edge.points[0].vector)
        info = [c.config.params.vectors for c in _both(clients, "get_collection", collection)]
        assert info[0] == info[1]


def test_alias_swap_is_atomic_and_names_resolve_like_local_mode(clients) -> None:
    _setup(clients, "docs__v0001", n=10)
    _setup(clients, "docs__v0002", n=20)
    create = models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="docs__v0001", alias_name="docs"))
    _both(clients, "update_collection_aliases", change_aliases_operations=[create])
    swap = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name="docs")),
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="docs__v0002", alias_name="docs"))]
    bad = [*swap, models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="nope", alias_name="x"))]
    for client in clients:  # a request with one bad operation changes nothing
        with pytest.raises(ValueError):
            client.update_collection_aliases(change_aliases_operations=bad)
    assert [c.count("docs").count for c in clients] == [10, 10]
    _both(clients, "update_collection_aliases", change_aliases_operations=swap)
    assert [c.count("docs").count for c in clients] == [20, 20]
    assert all(c.collection_exists("docs") for c in clients)
    local, edge = _both(clients, "get_aliases")
    assert local.aliases == edge.aliases
    local, edge = _both(clients, "get_collection_aliases", "docs__v0002")
    assert local.aliases == edge.aliases
    for client in clients:  # an alias may not take a collection's name, nor a collection an alias's
        with pytest.raises(ValueError):
            client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance="Cosine"))
    _both(clients, "delete_collection", "docs__v0002")  # its aliases go with it
    assert [c.get_aliases().aliases for c in clients] == [[], []]
    assert sorted(c.name for c in clients[1].get_collections().collections) == ["docs__v0001"]


def test_collections_and_aliases_persist_across_close_and_reopen(tmp_path: Path) -> None:
    client = edge_client(tmp_path)
    client.create_collection("docs__v0001", vectors_config=models.VectorParams(size=DIM, distance="Cosine"),
                             hnsw_config=models.HnswConfigDiff(m=0))
    client.upsert("docs__v0001", points=_points(30))
    client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
        create_alias=models.CreateAlias(collection_name="docs__v0001", alias_name="docs"))])
    with pytest.raises(RuntimeError, match="already accessed"):
        edge_client(tmp_path)  # one client per folder, as local mode
    client.close()
    reopened = edge_client(tmp_path)
    assert reopened.count("docs").count == 30
    assert reopened.get_collection("docs").config.hnsw_config.m == 0
    assert reopened.retrieve("docs", [7])[0].payload["n"] == 7
    reopened.close()


def test_unsupported_calls_and_filters_raise_typed_errors(tmp_path: Path) -> None:
    client = edge_client(tmp_path)
    client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance="Cosine"))
    client.upsert("docs", points=_points(5))
    assert "facet" in UNSUPPORTED and "query_points" not in UNSUPPORTED
    with pytest.raises(EdgeUnsupportedError, match="facet: the edge engine does not support it"):
        client.facet("docs", key="parity")
    geo = models.Filter(must=[models.FieldCondition(key="where", geo_radius=models.GeoRadius(
        center=models.GeoPoint(lon=0, lat=0), radius=1.0))])
    with pytest.raises(EdgeUnsupportedFilterError, match="geo_radius"):
        client.query_points("docs", query=[0.1] * DIM, query_filter=geo)
    with pytest.raises(NotImplementedError, match="sparse"):
        client.create_collection("sparse", vectors_config={}, sparse_vectors_config={"s": models.SparseVectorParams()})
    client.close()


def test_hnsw_built_once_after_a_bulk_load_keeps_recall_at_10_above_098(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n, dim = 4000, 32
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    client = edge_client(tmp_path)
    # low thresholds, so a few thousand vectors are enough for a real graph (Qdrant's are 10 MB)
    client.create_collection("bulk", vectors_config=models.VectorParams(size=dim, distance="Cosine"),
                             hnsw_config=models.HnswConfigDiff(m=0, full_scan_threshold=10),
                             optimizers_config=models.OptimizersConfigDiff(indexing_threshold=10))
    client.upload_collection("bulk", vectors=vectors, ids=range(n), batch_size=1000)
    client.update_collection("bulk", hnsw_config=models.HnswConfigDiff(m=16))
    info = client.get_collection("bulk")
    assert info.config.hnsw_config.m == 16 and info.indexed_vectors_count == n
    queries = rng.standard_normal((50, dim)).tolist()
    recall = []
    for query in queries:
        exact = client.query_points("bulk", query=query, limit=10, search_params=models.SearchParams(exact=True))
        approx = client.query_points("bulk", query=query, limit=10, search_params=models.SearchParams(hnsw_ef=128))
        recall.append(len({p.id for p in exact.points} & {p.id for p in approx.points}) / 10)
    assert np.mean(recall) >= 0.98
    client.close()


_WRITER = textwrap.dedent("""
    import sys
    from qdrant_client import models
    from clicktune.adapters.qdrant.edge import edge_client
    client = edge_client(sys.argv[1])
    client.create_collection("docs", vectors_config=models.VectorParams(size=8, distance="Cosine"))
    i = 0
    while True:
        client.upsert("docs", points=[models.PointStruct(id=i, vector=[1.0 + i] + [0.5] * 7, payload={"n": i})])
        print(i, flush=True)  # acknowledged
        i += 1
""")


def test_acknowledged_upserts_survive_sigkill(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    assert process.stdout is not None
    while acknowledged < 1500:
        acknowledged = int(process.stdout.readline())
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    client = edge_client(tmp_path)
    present = {r.id for r in client.retrieve("docs", list(range(acknowledged + 1)), with_payload=False)}
    assert present == set(range(acknowledged + 1))
    client.close()


def test_threads_querying_and_upserting_one_client_never_fail_nor_lose_writes(tmp_path: Path) -> None:
    client = edge_client(tmp_path)
    client.create_collection("docs", vectors_config=models.VectorParams(size=DIM, distance="Cosine"),
                             optimizers_config=models.OptimizersConfigDiff(indexing_threshold=1))
    client.upsert("docs", points=_points(500))
    errors: list[BaseException] = []
    written: list[list[int]] = [[] for _ in range(3)]

    def writer(slot: int) -> None:
        rng = np.random.default_rng(slot)
        try:
            for i in range(10_000 * (slot + 1), 10_000 * (slot + 1) + 300):
                client.upsert("docs", points=[models.PointStruct(id=i, vector=rng.standard_normal(DIM).tolist())])
                written[slot].append(i)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    def reader() -> None:
        rng = np.random.default_rng(99)
        try:
            for _ in range(300):
                assert len(client.query_points("docs", query=rng.standard_normal(DIM).tolist(), limit=10).points) == 10
                client.scroll("docs", limit=20)
                client.count("docs")
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    everything = [i for ids in written for i in ids]
    assert len(client.retrieve("docs", everything, with_payload=False)) == len(everything) == 900
    assert client.count("docs").count == 1400
    client.close()
