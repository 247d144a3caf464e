"""``EdgeEngine``: Qdrant's own embedded engine (qdrant_edge) behind qdrant-client's ``QdrantBase``.

It plugs in where local mode (``QdrantLocal``) does, so ``QdrantClient``, langchain-qdrant and
clicktune run on it unchanged. ``<path>/aliases.json`` holds the aliases (aliases.py),
``<path>/collections/<name>/`` one EdgeShard each (collection.py), ``<path>/.lock`` the folder.
``EdgeShard.update`` logs a write before returning: an acknowledged write survives a SIGKILL without
``flush()`` (tested; not fsynced per write). Other QdrantBase methods raise ``EdgeUnsupportedError``.
Every write, build and index rebuild first checks the disk's free space (space.py); a damaged
collection folder or alias file raises ``EdgeStorageError`` for what depends on it, the rest serves.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import portalocker
import qdrant_edge as edge
from pydantic_core import to_jsonable_python
from qdrant_client import models
from qdrant_client.client_base import QdrantBase
from qdrant_client.http import models as rest

from clicktune.adapters.errors import DiskFullError
from clicktune.adapters.qdrant.edge import convert
from clicktune.adapters.qdrant.edge.aliases import AliasFile
from clicktune.adapters.qdrant.edge.collection import EdgeCollection, load_collections
from clicktune.adapters.qdrant.edge.space import DEFAULT_MIN_FREE_DISK_MB, DiskFloor, allocated_bytes
from clicktune.adapters.qdrant.errors import EdgeCollectionDamagedError, EdgeUnsupportedError

log = logging.getLogger(__name__)

_INVALID_NAME_CHARS = set('<>:"/\\|?*\0\u001f')
_COMPLETED = models.UpdateResult(operation_id=0, status=models.UpdateStatus.COMPLETED)


class EdgeEngine(QdrantBase):
    """A folder of edge shards, one per collection, with aliases; thread-safe (see collection.py)."""

    def __init__(self, path: str | Path, min_free_disk_mb: float = DEFAULT_MIN_FREE_DISK_MB) -> None:
        super().__init__()
        self.root = Path(path)
        (self.root / "collections").mkdir(parents=True, exist_ok=True)
        self.floor = DiskFloor.of(self.root, min_free_disk_mb)
        self._lock_file = open(self.root / ".lock", "w")  # noqa: SIM115 - held until close()
        try:
            portalocker.lock(self._lock_file, portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING)
        except portalocker.exceptions.LockException:
            self._lock_file.close()
            raise RuntimeError(f"Storage folder {self.root} is already accessed by another instance of the edge "
                               "engine: share one client (clicktune's shared client per location does)") from None
        self._lock = threading.RLock()  # collections and aliases: the engine's own state
        self._closed = False
        #: Collections whose folder is damaged are in ``damaged``: listed and deletable, other calls raise.
        self.collections, self.damaged = load_collections(self.root / "collections", self.floor)
        self._aliases = AliasFile(self.root)

    # Names -------------------------------------------------------------------------------------
    def _collection(self, name: str) -> EdgeCollection:
        """The collection ``name`` names, directly or through an alias (as Qdrant resolves every name)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the edge engine is closed; create a new client")
            if name in self.collections:
                return self.collections[name]
            target = name if name in self.damaged else self._aliases.aliases.get(name)
            if target in self.damaged:
                raise self.damaged[target]
            if target is None or target not in self.collections:
                raise ValueError(f"Collection {name} not found")
            return self.collections[target]

    # Disk space --------------------------------------------------------------------------------
    def check_disk_space(self, what: str, need_bytes: int = 0) -> None:
        """Raise ``DiskFullError`` unless ``need_bytes`` more leave ``min_free_disk_mb`` free."""
        self.floor.require(what, need_bytes)

    def collection_disk_bytes(self, collection_name: str) -> int:
        """Bytes the collection's files occupy: what a copy of it is estimated to need."""
        folder = self._collection(collection_name).folder
        return allocated_bytes(folder) + self.floor.load_reserve(folder)

    def _folder(self, name: str) -> Path:
        if any(char in _INVALID_NAME_CHARS for char in name) or name in ("", ".", "..") or len(name) > 255:
            raise ValueError(f"Collection name {name!r} is not allowed")
        return self.root / "collections" / name

    # Collections -------------------------------------------------------------------------------
    def create_collection(
        self,
        collection_name: str,
        vectors_config: models.VectorParams | Mapping[str, models.VectorParams] | None = None,
        sparse_vectors_config: Mapping[str, models.SparseVectorParams] | None = None,
        hnsw_config: models.HnswConfigDiff | None = None,
        optimizers_config: models.OptimizersConfigDiff | None = None,
        metadata: models.Payload | None = None,
        **kwargs: Any,
    ) -> bool:
        if sparse_vectors_config:
            raise EdgeUnsupportedError("create_collection: sparse vectors are not supported by the edge engine")
        for name in ("init_from", "sharding_method", "strict_mode_config"):
            if kwargs.get(name) is not None:
                raise EdgeUnsupportedError(f"create_collection: {name} is not supported by the edge engine")
        if vectors_config is None or (isinstance(vectors_config, Mapping) and not vectors_config):
            raise EdgeUnsupportedError("create_collection: a collection without dense vectors is not supported "
                                       "by the edge engine")
        hnsw = convert.DEFAULT_HNSW.model_copy(
            update=hnsw_config.model_dump(exclude_none=True) if hnsw_config else {})
        optimizers_config = convert.DEFAULT_OPTIMIZERS.model_copy(
            update=optimizers_config.model_dump(exclude_none=True) if optimizers_config else {})
        with self._lock:
            if self._closed:
                raise RuntimeError("the edge engine is closed; create a new client")
            folder = self._folder(collection_name)
            if collection_name in self.collections or collection_name in self.damaged:
                raise ValueError(f"Collection {collection_name} already exists")
            self.floor.require(f"creating collection {collection_name}")
            if collection_name in self._aliases.aliases:
                raise ValueError(f"Alias {collection_name} already exists")
            if folder.exists():  # a creation or deletion that did not finish
                shutil.rmtree(folder)
            self.collections[collection_name] = EdgeCollection.create(
                folder, vectors_config, hnsw, optimizers_config, to_jsonable_python(metadata),
                kwargs.get("quantization_config"))
        return True

    def recreate_collection(self, collection_name: str, vectors_config: Any = None, **kwargs: Any) -> bool:
        self.delete_collection(collection_name)
        return self.create_collection(collection_name, vectors_config, **kwargs)

    def delete_collection(self, collection_name: str, **kwargs: Any) -> bool:
        """Delete a collection, a damaged one included (deleting frees space: never refused for it)."""
        with self._lock:
            collection = self.collections.pop(collection_name, None)
            damaged = self.damaged.pop(collection_name, None)
            if collection is None and damaged is None:
                return False
            self._aliases.drop_collection(collection_name)
            folder = self._folder(collection_name)
            if collection is not None:
                collection.close()
            # renamed first: a crash in rmtree leaves a folder that is no collection (no settings file)
            trash = folder.with_name(f".deleted-{uuid.uuid4().hex}")
            (folder / "clicktune-collection.json").unlink(missing_ok=True)
            folder.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True

    def collection_exists(self, collection_name: str, **kwargs: Any) -> bool:
        try:
            self._collection(collection_name)
            return True
        except (EdgeCollectionDamagedError, DiskFullError):
            return True  # it exists, damaged or not loaded: its other calls say so
        except ValueError:
            return False

    def get_collections(self, **kwargs: Any) -> models.CollectionsResponse:
        with self._lock:
            return models.CollectionsResponse(collections=[
                models.CollectionDescription(name=name) for name in sorted({*self.collections, *self.damaged})])

    def get_collection(self, collection_name: str, **kwargs: Any) -> models.CollectionInfo:
        collection = self._collection(collection_name)
        with collection.use() as shard:
            info = shard.info()
        return collection.collection_info(info)

    def update_collection(
        self,
        collection_name: str,
        optimizers_config: models.OptimizersConfigDiff | None = None,
        hnsw_config: models.HnswConfigDiff | None = None,
        metadata: models.Payload | None = None,
        **kwargs: Any,
    ) -> bool:
        for name, value in kwargs.items():
            if value is not None and name not in ("timeout",):
                raise EdgeUnsupportedError(f"update_collection: {name} is not supported by the edge engine")
        collection = self._collection(collection_name)
        updated = False
        with self._lock:
            if metadata is not None:
                merged = dict(collection.settings.get("metadata") or {})
                merged.update(to_jsonable_python(metadata))
                collection.settings["metadata"] = merged
                updated = True
            if optimizers_config is not None:
                merged = dict(collection.settings.get("optimizers") or {})
                merged.update(optimizers_config.model_dump(mode="json", exclude_none=True))
                collection.settings["optimizers"] = merged
                updated = True
            if updated:
                collection.save_settings()
        if hnsw_config is not None or optimizers_config is not None:
            hnsw = collection.hnsw.model_copy(
                update=hnsw_config.model_dump(exclude_none=True) if hnsw_config else {})
            self.floor.require(f"indexing collection {collection_name}", allocated_bytes(collection.folder))
            collection.rebuild_index(hnsw)
            updated = True
        return updated

    # Aliases -----------------------------------------------------------------------------------
    def update_collection_aliases(self, change_aliases_operations: Sequence[models.AliasOperations],
                                  **kwargs: Any) -> bool:
        with self._lock:
            if self._closed:
                raise RuntimeError("the edge engine is closed; create a new client")
            self._aliases.apply(change_aliases_operations, lambda name: name in self.collections)
        return True

    def restore_aliases(self, aliases: dict[str, str]) -> Path | None:
        """Replace a missing or unreadable ``aliases.json`` by ``aliases`` (``clicktune repair``); returns
        where the unreadable file was kept. Aliases naming no collection are left out."""
        with self._lock:
            return self._aliases.restore({a: c for a, c in aliases.items() if c in self.collections})

    def get_aliases(self, **kwargs: Any) -> models.CollectionsAliasesResponse:
        with self._lock:
            return models.CollectionsAliasesResponse(aliases=self._aliases.descriptions())

    def get_collection_aliases(self, collection_name: str, **kwargs: Any) -> models.CollectionsAliasesResponse:
        with self._lock:
            return models.CollectionsAliasesResponse(aliases=self._aliases.descriptions(collection_name))

    # Writes ------------------------------------------------------------------------------------
    def _update(self, collection: EdgeCollection, operation: Any) -> models.UpdateResult:
        reserve = self.floor.load_reserve(collection.folder)  # on tmpfs: room for the collection's next load
        self.floor.require(f"a write to collection {collection.folder.name}"
                           + (" (on tmpfs, its next load needs room)" if reserve else ""), reserve)
        with collection.use() as shard:
            shard.update(operation)
        collection.maybe_optimize(self.floor)
        return _COMPLETED

    def upsert(self, collection_name: str, points: models.Batch | Sequence[models.PointStruct],
               update_filter: models.Filter | None = None, update_mode: Any = None, **kwargs: Any) -> models.UpdateResult:
        if update_mode is not None and update_mode != models.UpdateMode.UPSERT:
            raise EdgeUnsupportedError("upsert: update_mode is not supported by the edge engine")
        collection = self._collection(collection_name)
        converted = convert.points(points)
        if not converted:
            raise ValueError("Empty update request")
        return self._update(collection, edge.UpdateOperation.upsert_points(
            converted, condition=convert.filter_(update_filter)))

    def upload_points(self, collection_name: str, points: Iterable[models.PointStruct], batch_size: int = 64,
                      **kwargs: Any) -> None:
        iterator = iter(points)
        while batch := list(itertools.islice(iterator, max(1, batch_size))):
            self.upsert(collection_name, batch)

    def upload_collection(self, collection_name: str, vectors: Any, payload: Iterable[dict[Any, Any]] | None = None,
                          ids: Iterable[models.ExtendedPointId] | None = None, batch_size: int = 64,
                          **kwargs: Any) -> None:
        if isinstance(vectors, dict):
            names, columns = list(vectors), list(vectors.values())
            rows: Iterable[Any] = ({n: c[i] for n, c in zip(names, columns, strict=True)} for i in range(len(columns[0])))
        else:
            rows = vectors
        ids = ids if ids is not None else (str(uuid.uuid4()) for _ in itertools.count())
        payloads = payload if payload is not None else itertools.repeat(None)
        self.upload_points(collection_name, (
            models.PointStruct(id=str(i) if isinstance(i, uuid.UUID) else i,
                               vector=v.tolist() if isinstance(v, np.ndarray) else v, payload=p)
            for i, v, p in zip(ids, rows, payloads, strict=False)), batch_size=max(batch_size, 256))

    def delete(self, collection_name: str, points_selector: Any, **kwargs: Any) -> models.UpdateResult:
        collection = self._collection(collection_name)
        ids, filter_ = convert.selector(points_selector)
        if ids == []:  # only malformed ids: no point has them
            return _COMPLETED
        operation = (edge.UpdateOperation.delete_points(ids) if ids is not None
                     else edge.UpdateOperation.delete_points_by_filter(filter_))
        return self._update(collection, operation)

    def set_payload(self, collection_name: str, payload: models.Payload, points: Any, key: str | None = None,
                    **kwargs: Any) -> models.UpdateResult:
        collection = self._collection(collection_name)
        ids, filter_ = convert.selector(points)
        payload = convert.payload_in(payload)
        operation = (edge.UpdateOperation.set_payload(ids, payload, key) if ids is not None
                     else edge.UpdateOperation.set_payload_by_filter(filter_, payload, key))
        return self._update(collection, operation)

    def overwrite_payload(self, collection_name: str, payload: models.Payload, points: Any,
                          **kwargs: Any) -> models.UpdateResult:
        collection = self._collection(collection_name)
        ids, filter_ = convert.selector(points)
        payload = convert.payload_in(payload)
        operation = (edge.UpdateOperation.overwrite_payload(ids, payload) if ids is not None
                     else edge.UpdateOperation.overwrite_payload_by_filter(filter_, payload))
        return self._update(collection, operation)

    def create_payload_index(self, collection_name: str, field_name: str, field_schema: Any = None,
                             field_type: Any = None, **kwargs: Any) -> models.UpdateResult:
        schema = field_schema if field_schema is not None else field_type
        if not isinstance(schema, models.PayloadSchemaType):
            raise EdgeUnsupportedError("create_payload_index: only a PayloadSchemaType (no index params) is "
                                       "supported by the edge engine")
        kind = getattr(edge.PayloadSchemaType, schema.value.capitalize())
        return self._update(self._collection(collection_name), edge.UpdateOperation.create_field_index(field_name,
                                                                                                      kind))

    # Reads -------------------------------------------------------------------------------------
    def retrieve(self, collection_name: str, ids: Sequence[models.ExtendedPointId],
                 with_payload: models.WithPayloadInterface = True, with_vectors: models.WithVector = False,
                 **kwargs: Any) -> list[models.Record]:
        collection = self._collection(collection_name)
        wanted = convert.known_ids(ids)
        if not wanted:
            return []
        with collection.use() as shard:
            found = shard.retrieve(wanted, convert.with_payload(with_payload), convert.with_vectors(with_vectors))
        return [convert.record(r, collection.named) for r in found]

    def scroll(self, collection_name: str, scroll_filter: models.Filter | None = None, limit: int = 10,
               order_by: Any = None, offset: models.ExtendedPointId | None = None,
               with_payload: models.WithPayloadInterface = True, with_vectors: models.WithVector = False,
               **kwargs: Any) -> tuple[list[models.Record], models.ExtendedPointId | None]:
        if order_by is not None:
            raise EdgeUnsupportedError("scroll: order_by is not supported by the edge engine")
        if limit < 1:
            raise ValueError(f"limit value {limit} is invalid. Must be 1 or larger.")
        collection = self._collection(collection_name)
        request = edge.ScrollRequest(
            offset=convert.point_id(offset) if offset is not None else None, limit=limit,
            filter=convert.filter_(scroll_filter), with_payload=convert.with_payload(with_payload),
            with_vector=convert.with_vectors(with_vectors))
        with collection.use() as shard:
            found, next_offset = shard.scroll(request)
        return ([convert.record(r, collection.named) for r in found],
                convert.point_id_out(next_offset) if next_offset is not None else None)

    def count(self, collection_name: str, count_filter: models.Filter | None = None, exact: bool = True,
              **kwargs: Any) -> models.CountResult:
        collection = self._collection(collection_name)
        with collection.use() as shard:  # always exact: an estimate would differ from local mode's answer
            return models.CountResult(count=shard.count(edge.CountRequest(exact=True,
                                                                          filter=convert.filter_(count_filter))))

    def query_points(self, collection_name: str, query: Any = None, using: str | None = None, prefetch: Any = None,
                     query_filter: models.Filter | None = None, search_params: models.SearchParams | None = None,
                     limit: int = 10, offset: int | None = None, with_payload: models.WithPayloadInterface = True,
                     with_vectors: models.WithVector = False, score_threshold: float | None = None,
                     lookup_from: Any = None, **kwargs: Any) -> rest.QueryResponse:
        collection = self._collection(collection_name)
        with collection.use() as shard:
            request = convert.query_request(shard, query=query, using=using, prefetch=prefetch,
                                    query_filter=query_filter, search_params=search_params, limit=limit,
                                    offset=offset, with_payload=with_payload, with_vectors=with_vectors,
                                    score_threshold=score_threshold, lookup_from=lookup_from)
            found = shard.query(request)
        return rest.QueryResponse(points=[convert.scored(p, collection.named) for p in found])

    def query_batch_points(self, collection_name: str, requests: Sequence[models.QueryRequest],
                           **kwargs: Any) -> list[rest.QueryResponse]:
        collection = self._collection(collection_name)
        with collection.use() as shard:
            batch = [convert.query_request(shard, query=r.query, using=r.using, prefetch=r.prefetch,
                                   query_filter=r.filter, search_params=r.params, limit=r.limit, offset=r.offset,
                                   with_payload=r.with_payload if r.with_payload is not None else False,
                                   with_vectors=r.with_vector, score_threshold=r.score_threshold,
                                   lookup_from=r.lookup_from) for r in requests]
            found = shard.query_batch(edge.QueryBatchRequest(batch)) if batch else []
        return [rest.QueryResponse(points=[convert.scored(p, collection.named) for p in points])
                for points in found]

    # Life cycle --------------------------------------------------------------------------------
    def flush(self) -> None:
        """fsync every shard (an acknowledged write already survives a crash of the process; see above)."""
        with self._lock:
            collections = list(self.collections.values())
        for collection in collections:
            with collection.use() as shard:
                shard.flush()

    def close(self, **kwargs: Any) -> None:
        """Close every shard and free the folder for another client; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            collections = list(self.collections.values())
        for collection in collections:
            collection.close()
        try:
            portalocker.unlock(self._lock_file)
            self._lock_file.close()
        except (AttributeError, TypeError, ValueError, OSError):  # interpreter teardown (modules already None)
            pass
