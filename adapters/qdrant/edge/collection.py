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
from clicktune.adapters.errors import DiskFullError
from clicktune.adapters.qdrant.edge import convert
from clicktune.adapters.qdrant.edge.space import DiskFloor, allocated_bytes
from clicktune.adapters.qdrant.errors import EdgeCollectionDamagedError

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

    def collection_info(self, info: edge.ShardInfo) -> models.CollectionInfo:
        """What qdrant-client's ``get_collection`` reports: the shard's counts and the kept settings."""
        optimizers = models.OptimizersConfig(
            deleted_threshold=0.2, vacuum_min_vector_number=1000, default_segment_number=0,
            indexing_threshold=convert.EXACT_UP_TO_KB, flush_interval_sec=5, max_optimization_threads=1)
        if self.optimizers is not None:
            optimizers = optimizers.model_copy(update=self.optimizers.model_dump(exclude_none=True))
        return models.CollectionInfo(
            status=models.CollectionStatus.GREEN,
            optimizer_status=models.OptimizersStatusOneOf.OK,
            indexed_vectors_count=info.indexed_vectors_count,
            points_count=info.points_count,
            segments_count=info.segments_count,
            payload_schema={},
            config=models.CollectionConfig(
                params=models.CollectionParams(vectors=self.vectors, shard_number=1, replication_factor=1,
                                               write_consistency_factor=1, on_disk_payload=True),
                hnsw_config=self.hnsw,
                optimizer_config=optimizers,
                wal_config=models.WalConfig(wal_capacity_mb=32, wal_segments_ahead=0),
                quantization_config=self.quantization,
                metadata=self.settings.get("metadata"),
            ),
        )

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
        """The collection in ``folder``, or None for a creation that never finished.

        A finished collection (its settings file exists) always has qdrant_edge's config, its WAL and at
        least one segment: ``EdgeShard.create`` makes them all. One of them missing is damage, checked
        before loading because qdrant_edge would start over without them (a deleted ``segments/``
        reloads as the WAL's last write alone). That, an unreadable settings file, or qdrant_edge
        refusing (or panicking on) a file raises :class:`EdgeCollectionDamagedError` naming the file.
        """
        settings_path = folder / SETTINGS_FILE
        if not settings_path.exists():
            return None
        for required in ("edge_config.json", "wal", "segments"):
            if not (folder / required).exists():
                raise _damaged(folder, folder / required, "is missing")
        if not any(path.is_dir() for path in (folder / "segments").iterdir()):
            raise _damaged(folder, folder / "segments", "holds no segment")
        try:
            settings = json.loads(settings_path.read_text(encoding="utf-8"))
            if not isinstance(settings, dict) or "vectors" not in settings:
                raise ValueError("not a collection's settings")
        except (OSError, ValueError) as exc:
            raise _damaged(folder, settings_path, f"cannot be read ({exc})") from exc
        try:
            shard = edge.EdgeShard.load(str(folder))
        except BaseException as exc:  # qdrant_edge raises Exception, or PanicException (a BaseException)
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise _damaged(folder, folder, f"could not be loaded by qdrant_edge ({str(exc)[:300]})") from exc
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

    def maybe_optimize(self, floor: DiskFloor | None = None) -> None:
        """After writes: index what writes left unindexed, in the background, as Qdrant's optimizer does.

        qdrant_edge runs no optimizer thread of its own. With an index to build (HNSW, m > 0, or quantized
        vectors) and more unindexed points than Qdrant's indexing threshold, one ``optimize()`` runs in a
        daemon thread (never two at once); searches stay exact meanwhile on the unindexed part. With an
        indexing threshold of 0 (Qdrant's "indexing off", as during a bulk load) nothing runs, nor while
        ``floor`` would not stay free after rewriting the collection's files (the next write retries).
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
        if floor is not None and not floor.allows(allocated_bytes(self.folder)):
            log.warning("edge engine: %s left unindexed, the disk is low on space (%s)", self.folder.name,
                        floor.folder)
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


def _damaged(folder: Path, path: Path, problem: str) -> EdgeCollectionDamagedError:
    """The error for a damaged collection folder, with what repairs it (the engine has no repair of its own)."""
    return EdgeCollectionDamagedError(
        f"edge collection {folder.name} is damaged: {path} {problem}. This collection alone is unavailable; "
        f"the others serve. Restore {folder} from a backup; if the alias points at it, `clicktune rollback` "
        "serves the previous version (writes were mirrored to it) and `clicktune reindex --version V` "
        "rebuilds from there; an old version nothing points at can be deleted (retention deletes it, or "
        "remove the folder)", path=str(path))


def load_collections(folder: Path, floor: DiskFloor) -> tuple[dict[str, EdgeCollection],
                                                            dict[str, EdgeCollectionDamagedError | DiskFullError]]:
    """Every collection in ``folder``, and apart, those that are damaged or that the disk cannot load: one
    such folder (an old version's, say) is logged and isolated, so it never stops the others serving."""
    collections: dict[str, EdgeCollection] = {}
    damaged: dict[str, EdgeCollectionDamagedError | DiskFullError] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_dir() or path.name.startswith("."):  # .deleted-*: a deletion that did not finish
            continue
        try:
            floor.check_load(path)
            collection = EdgeCollection.load(path)
        except (EdgeCollectionDamagedError, DiskFullError) as exc:
            log.error("%s", exc)
            damaged[path.name] = exc
            continue
        if collection is not None:
            collections[path.name] = collection
    return collections, damaged
