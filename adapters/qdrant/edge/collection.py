"""One collection of the edge engine: an ``EdgeShard`` in ``<root>/collections/<name>/`` and its settings.

qdrant_edge keeps vectors, payloads and indexes; it does not say back the configuration a collection was
created with, so the settings qdrant-client reports (vectors as given, HNSW, optimizers, metadata) are
kept beside the shard in ``clicktune-collection.json``. That file is written last when a collection is
created: a folder without it is a creation that did not finish, and is not a collection.

Concurrency, measured (tests/adapters/test_edge_engine.py::test_threads_querying_and_upserting_...):
an EdgeShard takes queries, updates and ``optimize()`` from many threads at once without error or lost
write, so data calls are not serialized. Only what replaces or closes the shard (``rebuild``, ``close``)
waits until no call is inside it, through a readers-writer gate.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import qdrant_edge as edge
from qdrant_client import models

from clicktune.adapters.durable import write_atomically
from clicktune.adapters.qdrant.edge import convert

log = logging.getLogger(__name__)

SETTINGS_FILE = "clicktune-collection.json"


class _Gate:
    """Many users at once, or one owner alone (the owner waits for users to leave, and blocks new ones)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._users = 0
        self._owned = False

    @contextmanager
    def use(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._owned)
            self._users += 1
        try:
            yield
        finally:
            with self._condition:
                self._users -= 1
                self._condition.notify_all()

    @contextmanager
    def own(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._owned)
            self._owned = True
            self._condition.wait_for(lambda: self._users == 0)
        try:
            yield
        finally:
            with self._condition:
                self._owned = False
                self._condition.notify_all()


class EdgeCollection:
    """A shard with its qdrant-client settings; ``use()`` guards every call into the shard."""

    def __init__(self, folder: Path, settings: dict[str, Any], shard: edge.EdgeShard) -> None:
        self.folder = folder
        self.settings = settings
        self.shard = shard
        self.gate = _Gate()
        self.closed = False
        self._optimizing = threading.Lock()
        self._optimizer: threading.Thread | None = None

    # Settings ----------------------------------------------------------------------------------
    @property
    def vectors(self) -> models.VectorParams | dict[str, models.VectorParams]:
        raw = self.settings["vectors"]
        if self.settings["named"]:
            return {name: models.VectorParams.model_validate(p) for name, p in raw.items()}
        return models.VectorParams.model_validate(raw)

    @property
    def named(self) -> bool:
        return bool(self.settings["named"])

    @property
    def hnsw(self) -> models.HnswConfig:
        return models.HnswConfig.model_validate(self.settings["hnsw"])

    @property
    def optimizers(self) -> models.OptimizersConfigDiff | None:
        raw = self.settings.get("optimizers")
        return models.OptimizersConfigDiff.model_validate(raw) if raw else None

    @property
    def quantization(self) -> models.ScalarQuantization | None:
        raw = self.settings.get("quantization")
        return models.ScalarQuantization.model_validate(raw) if raw else None

    def edge_config(self) -> edge.EdgeConfig:
        return convert.edge_config(self.vectors, self.hnsw, self.optimizers, self.quantization)

    def save_settings(self) -> None:
        write_atomically(self.folder / SETTINGS_FILE, json.dumps(self.settings, indent=1, sort_keys=True))

    # Life cycle --------------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: Path, vectors: models.VectorParams | Mapping[str, models.VectorParams],
               hnsw: models.HnswConfig, optimizers: models.OptimizersConfigDiff | None,
               metadata: dict[str, Any] | None,
               quantization: models.QuantizationConfig | None = None) -> EdgeCollection:
        named = isinstance(vectors, Mapping)
        settings = {
            "named": named,
            "vectors": ({name: p.model_dump(mode="json", exclude_none=True) for name, p in vectors.items()}
                        if named else vectors.model_dump(mode="json", exclude_none=True)),
            "hnsw": hnsw.model_dump(mode="json", exclude_none=True),
            "optimizers": optimizers.model_dump(mode="json", exclude_none=True) if optimizers else None,
            "metadata": metadata,
            "quantization": quantization.model_dump(mode="json", exclude_none=True) if quantization else None,
        }
        shard = edge.EdgeShard.create(str(folder), convert.edge_config(vectors, hnsw, optimizers, quantization))
        collection = cls(folder, settings, shard)
        collection.save_settings()  # last: the folder is a collection from here on
        return collection

    @classmethod
    def load(cls, folder: Path) -> EdgeCollection | None:
        """The collection in ``folder``, or None for a creation that never finished."""
        settings_path = folder / SETTINGS_FILE
        if not settings_path.exists():
            return None
        settings = json.loads(settings_path.read_text(encoding="utf-8"))
        shard = edge.EdgeShard.load(str(folder))
        return cls(folder, settings, shard)

    @contextmanager
    def use(self) -> Iterator[edge.EdgeShard]:
        with self.gate.use():
            if self.closed:
                raise RuntimeError(f"collection folder {self.folder.name} is closed (deleted, or the client closed)")
            yield self.shard

    def rebuild_index(self, hnsw: models.HnswConfig) -> None:
        """Apply new HNSW settings: reopen the shard with them and build the graph once (``optimize``)."""
        with self.gate.own():
            self.settings["hnsw"] = hnsw.model_dump(mode="json", exclude_none=True)
            self.save_settings()
            self.shard.close()
            self.shard = edge.EdgeShard.load(str(self.folder), self.edge_config())
        with self.use() as shard:
            shard.optimize()

    def maybe_optimize(self) -> None:
        """After writes: index what writes left unindexed, in the background, as Qdrant's optimizer does.

        qdrant_edge runs no optimizer thread of its own. With an index to build (HNSW, m > 0, or quantized
        vectors) and more unindexed points than Qdrant's indexing threshold, one ``optimize()`` runs in a
        daemon thread (never two at once); searches stay exact meanwhile on the unindexed part. With an
        indexing threshold of 0 (Qdrant's "indexing off", as during a bulk load) nothing runs.
        """
        if (self.hnsw.m == 0 and self.quantization is None) or self._optimizing.locked():
            return
        threshold = self._indexing_threshold_points()
        if threshold == 0:
            return
        with self.use() as shard:
            info = shard.info()
        if info.points_count - info.indexed_vectors_count <= threshold:
            return
        if not self._optimizing.acquire(blocking=False):
            return

        def run() -> None:
            try:
                with self.use() as shard:
                    shard.optimize()
            except RuntimeError:
                pass  # closed meanwhile
            except Exception:  # pragma: no cover - logged, the data is intact and searches stay exact
                log.exception("edge engine: background optimize of %s failed", self.folder.name)
            finally:
                self._optimizing.release()

        self._optimizer = threading.Thread(target=run, name=f"edge-optimize-{self.folder.name}", daemon=True)
        self._optimizer.start()

    def _indexing_threshold_points(self) -> int:
        """Qdrant's indexing threshold (KB of vectors per segment) in points; 0 = indexing off."""
        kilobytes = self.optimizers.indexing_threshold if self.optimizers else None
        if kilobytes == 0:
            return 0
        kilobytes = kilobytes or convert.EXACT_UP_TO_KB
        vectors = self.vectors
        dimension = sum(p.size for p in vectors.values()) if isinstance(vectors, dict) else vectors.size
        return max(1, kilobytes * 1024 // (4 * max(1, dimension)))

    def close(self) -> None:
        """Wait for the calls inside the shard (a background optimize included), then close it; idempotent."""
        optimizer = self._optimizer
        if optimizer is not None:
            optimizer.join()
        with self.gate.own():
            if not self.closed:
                self.closed = True
                self.shard.close()
