"""One store shared by a threaded web app's workers: no call fails, no acknowledged write is lost.

qdrant-client's local mode is not thread-safe on its own (a search racing an upsert broadcast two
array sizes; its SQLite persistence got commits from two threads). Embedded Qdrant on a folder, the
real model and the SQLite click log, as a FastAPI threadpool would drive them.
"""

from __future__ import annotations

import threading
import time

import pytest

from clicktune.adapters import ClicktuneSettings
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine

WRITERS = 4
READERS = 3
SECONDS = 6.0


def test_threads_writing_and_searching_one_embedded_store_never_fail_nor_lose_writes(home) -> None:
    settings = ClicktuneSettings(home=home, progress=False, qdrant_path=str(home / "qdrant"))
    embeddings = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=embeddings)
    # enough points that a search's scoring overlaps other threads' upserts
    store.add_texts([f"seed {i}" for i in range(400)], ids=[f"seed-{i}" for i in range(400)])
    errors: list[BaseException] = []
    kept: set[str] = set()
    deleted: set[str] = set()
    acknowledged = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def writer(n: int) -> None:
        i = 0
        while time.monotonic() < deadline and not errors:
            ids = [f"w{n}-{i}-{j}" for j in range(2)]
            try:
                store.add_texts([f"writer {n} text {i}.{j}" for j in range(2)], ids=ids)
                store.delete([ids[0]])
                store.get_by_ids(ids)
            except BaseException as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)
                return
            with acknowledged:
                kept.update(ids[1:])
                deleted.add(ids[0])
            i += 1

    def reader() -> None:
        while time.monotonic() < deadline and not errors:
            try:
                store.similarity_search("cell biology", k=5)
                store.get_by_ids(["seed-1", "seed-2"])
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    threads += [threading.Thread(target=reader) for _ in range(READERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors, repr(errors[0])
    assert len(kept) >= 2 * WRITERS, "the writers made too little progress to prove anything"
    present = {doc.id for doc in store.get_by_ids(sorted(kept | deleted))}
    assert kept <= present, f"acknowledged adds lost: {sorted(kept - present)[:5]}"
    assert not (deleted & present), f"acknowledged deletes undone: {sorted(deleted & present)[:5]}"
    embeddings.close()


def test_threads_upserting_and_querying_the_shared_embedded_client_never_fail(tmp_path) -> None:
    """The same race without the model in the way: many more Qdrant calls per second."""
    import numpy as np
    from qdrant_client import models

    from clicktune.adapters.qdrant.client import qdrant_client_from_settings

    client = qdrant_client_from_settings(ClicktuneSettings(home=tmp_path, qdrant_path=str(tmp_path / "qdrant")))
    client.create_collection("race", vectors_config=models.VectorParams(size=32, distance=models.Distance.COSINE))
    errors: list[BaseException] = []
    deadline = time.monotonic() + 3.0

    def upserter(n: int) -> None:
        rng, i = np.random.default_rng(n), 0
        while time.monotonic() < deadline and not errors:
            try:
                client.upsert("race", [models.PointStruct(id=n * 1_000_000 + i, vector=rng.random(32).tolist())])
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            i += 1

    def querier() -> None:
        rng = np.random.default_rng(99)
        while time.monotonic() < deadline and not errors:
            try:
                client.query_points("race", query=rng.random(32).tolist(), limit=5)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

    threads = [threading.Thread(target=upserter, args=(n,)) for n in range(3)]
    threads += [threading.Thread(target=querier) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, repr(errors[0])
    assert client.count("race").count > 0
