"""The edge engine's folder under stress: a disk below the free-space floor, and damaged files.

A full disk is not simulated: the floor is set above the disk's real free space, which is what the
engine sees on a full one (``shutil.disk_usage``). The real thing (a 40 MB tmpfs, writes until refusal,
no SIGBUS) is measured in ``benchmarks/edge_full_disk.py`` (docs/RESULTS.md). Damage is real: files are
deleted, overwritten or truncated on disk between two opens.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.errors import DiskFullError
from clicktune.adapters.qdrant import close_shared_clients
from clicktune.adapters.qdrant.collections import AliasedCollections
from clicktune.adapters.qdrant.edge import edge_client
from clicktune.adapters.qdrant.edge.space import MB, DiskFloor, allocates_on_read
from clicktune.adapters.qdrant.errors import EdgeAliasFileError, EdgeCollectionDamagedError
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore

DIM = 8


def _points(n: int, start: int = 0) -> list[models.PointStruct]:
    """Points ``start`` .. ``start + n - 1``; a point's vector depends on its id alone."""
    return [models.PointStruct(id=i, vector=np.random.default_rng(i).standard_normal(DIM).tolist(),
                               payload={"n": i}) for i in range(start, start + n)]


def _fill(client: QdrantClient, name: str, n: int = 101) -> None:
    client.create_collection(name, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE))
    for start in range(0, n, 10):  # several writes: the WAL and the segments both hold some
        client.upsert(name, points=_points(min(10, n - start), start))


def _above_free_space(path: Path) -> float:
    """A floor (MB) well above the disk's free space now: the engine sees a full disk."""
    return shutil.disk_usage(path).free / MB + 10_000


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """An edge folder: ``live`` (101 points, the alias ``docs`` points at it) and ``old`` (30 points)."""
    client = edge_client(tmp_path / "q")
    _fill(client, "live")
    _fill(client, "old", 30)
    client.update_collection_aliases(change_aliases_operations=[
        models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name="live", alias_name="docs"))])
    client.close()
    yield tmp_path / "q"


# A disk below the floor ----------------------------------------------------------------------------
def test_below_the_floor_writes_are_refused_with_a_typed_error_and_reads_are_served(folder: Path) -> None:
    floor = _above_free_space(folder)
    client = edge_client(folder, min_free_disk_mb=floor)  # opening below the floor works
    assert client.count("docs").count == 101
    hits = client.query_points("docs", query=_points(1, 5)[0].vector, limit=3).points
    assert hits[0].id == 5
    with pytest.raises(DiskFullError) as refused:
        client.upsert("docs", points=_points(5, 200))
    error = refused.value
    assert error.folder == str(folder) and error.floor_bytes == int(floor * MB) and error.free_bytes < error.floor_bytes
    assert "CLICKTUNE_MIN_FREE_DISK_MB" in str(error) and str(folder) in str(error)
    for write in (lambda: client.delete("docs", points_selector=models.PointIdsList(points=[1])),
                  lambda: client.set_payload("docs", payload={"x": 1}, points=[1]),
                  lambda: client.create_collection("new", vectors_config=models.VectorParams(
                      size=DIM, distance=models.Distance.COSINE))):
        with pytest.raises(DiskFullError):
            write()
    assert client.count("docs").count == 101 and not client.collection_exists("new")
    assert client.retrieve("docs", [1])[0].payload == {"n": 1}
    client.close()
    reopened = edge_client(folder, min_free_disk_mb=0)  # space back (the floor off): writes go on
    reopened.upsert("docs", points=_points(5, 200))
    assert reopened.count("docs").count == 106
    reopened.close()


def test_a_build_is_refused_before_its_collection_is_created_when_a_copy_would_cross_the_floor(
        folder: Path) -> None:
    client = edge_client(folder, min_free_disk_mb=0)
    engine = client._client
    need = engine.collection_disk_bytes("live")
    assert need > 0
    collections = AliasedCollections(client, "docs")
    # the floor sits half a copy below the free space: a write passes, a copy of `live` does not
    engine.floor = type(engine.floor)(folder, shutil.disk_usage(folder).free - need // 2)
    with pytest.raises(DiskFullError) as refused:
        collections.create("v0002", DIM, bulk_load=True, copy_of="live")
    assert refused.value.need_bytes == need and "docs__v0002" in str(refused.value)
    assert not client.collection_exists("docs__v0002")
    assert [c.name for c in client.get_collections().collections] == ["live", "old"]
    client.close()


def test_a_store_opened_on_a_full_disk_serves_searches_and_refuses_writes(home: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLICKTUNE_EMBEDDED_ENGINE", raising=False)
    texts = ["the heart pumps blood", "rain falls from clouds", "bones heal after a fracture"]

    def store(**settings: object) -> tuple[ClicktuneVectorStore, ClicktuneEmbeddings]:
        config = ClicktuneSettings(home=home, progress=False, watch_registry=False, embedded_engine="edge", **settings)
        embeddings = ClicktuneEmbeddings(config, watch=False)
        return ClicktuneVectorStore(config, embeddings=embeddings), embeddings

    writer, embeddings = store()
    writer.add_texts(texts, ids=["heart", "rain", "bone"])
    embeddings.close()
    close_shared_clients()
    reader, embeddings = store(min_free_disk_mb=_above_free_space(home))
    try:
        assert reader.similarity_search("a broken bone", k=1)[0].id == "bone"
        with pytest.raises(DiskFullError, match="CLICKTUNE_MIN_FREE_DISK_MB"):
            reader.add_texts(["snow is frozen rain"], ids=["snow"])
        assert reader.get_by_ids(["snow"]) == [] and len(reader.get_by_ids(["heart", "rain", "bone"])) == 3
    finally:
        embeddings.close()
        close_shared_clients()


def test_on_tmpfs_a_write_keeps_room_for_what_the_next_load_allocates() -> None:
    """On tmpfs, loading a shard allocates its sparse vector files whole (a full tmpfs killed the
    restarted process with SIGBUS): a write must leave that room, and a reopen then finds it."""
    shm = Path("/dev/shm")
    if not shm.is_dir() or not allocates_on_read(shm):
        pytest.skip("no tmpfs at /dev/shm")
    folder = shm / f"clicktune-test-{uuid.uuid4().hex}"
    try:
        client = edge_client(folder, min_free_disk_mb=0)
        _fill(client, "live", 20)
        engine = client._client
        live = folder / "collections" / "live"
        reserve = engine.floor.load_reserve(live)
        assert engine.floor.on_tmpfs and reserve > 16 * MB  # a 32 MB vector file, nearly all hole
        engine.floor = DiskFloor(folder, shutil.disk_usage(folder).free - reserve // 2, on_tmpfs=True)
        with pytest.raises(DiskFullError) as refused:  # the write itself fits; the next load would not
            client.upsert("live", points=_points(1, 500))
        assert refused.value.need_bytes == reserve
        client.close()
        reopened = edge_client(folder, min_free_disk_mb=0)
        assert reopened.count("live").count == 20
        assert reopened._client.floor.load_reserve(live) == 0  # the load allocated it
        reopened.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_floor_is_a_setting_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ClicktuneSettings().min_free_disk_mb == 100
    monkeypatch.setenv("CLICKTUNE_MIN_FREE_DISK_MB", "12.5")
    assert ClicktuneSettings().min_free_disk_mb == 12.5
    with pytest.raises(ValueError, match="min_free_disk_mb"):
        ClicktuneSettings(min_free_disk_mb=-1)


# Damaged files ---------------------------------------------------------------------------------------
def test_a_deleted_alias_file_is_a_typed_error_naming_it_and_the_repair_not_an_empty_answer(folder: Path) -> None:
    (folder / "aliases.json").unlink()
    client = edge_client(folder)
    for call in (lambda: client.query_points("docs", query=_points(1)[0].vector, limit=3),
                 client.get_aliases, lambda: client.collection_exists("docs")):
        with pytest.raises(EdgeAliasFileError, match="clicktune repair") as raised:
            call()
        assert raised.value.path == str(folder / "aliases.json") and str(folder / "aliases.json") in str(raised.value)
    assert client.count("live").count == 101  # collections by their own name still serve
    client.close()


def test_an_unreadable_alias_file_is_a_typed_error_naming_it(folder: Path) -> None:
    (folder / "aliases.json").write_text('{"docs": "li')
    client = edge_client(folder)  # opens: collections by name serve
    with pytest.raises(EdgeAliasFileError, match="cannot be read") as raised:
        client.count("docs")
    assert str(folder / "aliases.json") in str(raised.value) and "clicktune repair" in str(raised.value)
    with pytest.raises(EdgeAliasFileError):
        client.update_collection_aliases(change_aliases_operations=[models.DeleteAliasOperation(
            delete_alias=models.DeleteAlias(alias_name="docs"))])
    assert client.count("live").count == 101
    client.close()


def test_a_folder_from_before_the_marker_without_an_alias_file_opens_with_no_alias(tmp_path: Path) -> None:
    client = edge_client(tmp_path / "q")
    _fill(client, "live", 10)
    client.close()
    (tmp_path / "q" / "aliases.json").unlink()
    (tmp_path / "q" / "edge-engine.json").unlink()  # as a folder written before the marker existed
    client = edge_client(tmp_path / "q")
    assert client.get_aliases().aliases == [] and client.count("live").count == 10
    client.close()
    assert (tmp_path / "q" / "aliases.json").exists() and (tmp_path / "q" / "edge-engine.json").exists()


def test_a_deleted_segments_folder_is_damage_not_a_collection_of_one_point(folder: Path) -> None:
    shutil.rmtree(folder / "collections" / "live" / "segments")
    client = edge_client(folder)
    with pytest.raises(EdgeCollectionDamagedError) as raised:
        client.count("docs")
    assert raised.value.path == str(folder / "collections" / "live" / "segments")
    assert "restore" in str(raised.value).lower() and "clicktune rollback" in str(raised.value)
    assert client.count("old").count == 30
    assert client.collection_exists("live")
    client.close()


@pytest.mark.parametrize("damaged", ["segment.json", "status.dat"])  # qdrant_edge raises / panics on these
def test_a_truncated_file_in_an_old_collection_leaves_the_live_one_serving(folder: Path, damaged: str) -> None:
    (path,) = [p for p in (folder / "collections" / "old" / "segments").rglob(damaged)
               if damaged != "status.dat" or p.parent.name == "vectors"]
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    client = edge_client(folder)
    assert client.count("docs").count == 101
    assert client.query_points("docs", query=_points(1, 7)[0].vector, limit=1).points[0].id == 7
    with pytest.raises(EdgeCollectionDamagedError, match="old"):
        client.count("old")
    assert "old" in [c.name for c in client.get_collections().collections]
    assert client.delete_collection("old")  # retention (or the operator) can remove it
    assert not client.collection_exists("old")
    client.close()
    assert not (folder / "collections" / "old").exists()
