"""Versioned collections behind one alias: ``docs`` -> ``docs__v0003``.

The collection's name is how any process knows which model built it, so nothing else (no side table,
no cache) has to agree with Qdrant about that.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

from qdrant_client import QdrantClient, models

from clicktune.adapters.qdrant.client import searches_exactly
from clicktune.adapters.qdrant.errors import AliasIsCollectionError, AliasNotFoundError
from clicktune.adapters.registry import parse_version

log = logging.getLogger(__name__)

#: HNSW's ``m`` for a version collection that gets a graph (Qdrant's default); ``m=0`` builds none.
DEFAULT_HNSW_M = 16
#: Qdrant's default indexing threshold (KB of vectors per segment): smaller segments stay unindexed and
#: are scanned in full precision; 0 turns indexing off, as Qdrant advises during a bulk upload.
INDEXING_THRESHOLD_KB = 10_000
#: Every version collection keeps int8 copies of its vectors in RAM (4x smaller than float32): a full
#: scan reads those, then rescores its best candidates with the float32 vectors.
QUANTIZATION = models.ScalarQuantization(
    scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True))
#: Search parameters for a version collection when the caller gives none: rescore twice as many int8
#: candidates as asked for in float32. Measured (benchmarks/embedded_search.py, random vectors, the worst
#: case): recall@10 0.95 with Qdrant's default oversampling of 1, 1.000 with 2, at the same latency.
RESCORED_SEARCH = models.SearchParams(quantization=models.QuantizationSearchParams(rescore=True, oversampling=2.0))
#: ``<alias>__v0003`` for any alias.
_ANY_VERSION = re.compile(r"^.+__(v\d{4,})$")


def import_marker(alias: str) -> str:
    """The alias an import points at its verified copy until the alias itself can be created."""
    return f"{alias}__import"


def create_version_collection(client: QdrantClient, name: str,
                              vectors: models.VectorParams | dict[str, models.VectorParams], *,
                              bulk_load: bool = False, metadata: dict | None = None) -> None:
    """A version collection: int8-quantized, without a graph until :func:`index_once` decides.

    With ``bulk_load`` indexing is off (Qdrant's ``indexing_threshold=0``) until :func:`index_once`, so
    the quantized segments (or the graph) are built once, after the load, not batch by batch.
    """
    client.create_collection(
        name, vectors_config=vectors, hnsw_config=models.HnswConfigDiff(m=0),
        optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0 if bulk_load else INDEXING_THRESHOLD_KB),
        quantization_config=QUANTIZATION, metadata=metadata)


def require_space_for_copy(client: QdrantClient, source: str, what: str) -> None:
    """On the edge engine, refuse ``what`` unless a copy of ``source``'s files leaves the floor free."""
    from clicktune.adapters.qdrant.edge import EdgeEngine

    engine = getattr(client, "_client", None)
    if isinstance(engine, EdgeEngine):
        engine.check_disk_space(what, engine.collection_disk_bytes(source))


def index_once(client: QdrantClient, name: str, documents: int, hnsw_from_documents: int) -> None:
    """Index a loaded collection once: a graph from ``hnsw_from_documents`` documents, else none.

    Without a graph every search scans the int8 vectors and rescores in float32 (:data:`RESCORED_SEARCH`):
    recall@10 1.000 against exact search on any data, and about 1.9 ms per 100,000 documents on
    a 2-core CPU (benchmarks/embedded_search.py). A graph (HNSW) is faster at large sizes but its
    recall depends on the data (0.99 on text embeddings, 0.14 on random vectors, measured). The
    choice is made per build, so a collection that outgrew it gets a graph at the next reindex.
    """
    graph = documents >= hnsw_from_documents
    log.info("%s: %d documents, %s", name, documents,
             "HNSW graph" if graph else f"int8 scan, rescored (no graph below {hnsw_from_documents})")
    client.update_collection(name, hnsw_config=models.HnswConfigDiff(m=DEFAULT_HNSW_M if graph else 0),
                             optimizers_config=models.OptimizersConfigDiff(indexing_threshold=INDEXING_THRESHOLD_KB))


@dataclass(frozen=True)
class AliasRestored:
    """What :meth:`AliasedCollections.restore_alias` did: the alias now names ``collection``; an
    unreadable alias file was kept as ``kept`` (None: there was none, or the file was fine)."""

    alias: str
    collection: str
    kept: Path | None


@dataclass(frozen=True)
class CollectionVersion:
    """A concrete collection and the model version whose vectors it holds (live or not)."""

    collection: str
    version: str


class AliasedCollections:
    """Create, list, resolve, swap and retire the version collections of one alias."""

    def __init__(self, client: QdrantClient, alias: str, *, hnsw_from_documents: int = 250_000) -> None:
        self.client = client
        self.alias = alias
        self.hnsw_from_documents = hnsw_from_documents
        self._pattern = re.compile(rf"^{re.escape(alias)}__(v\d{{4,}})$")

    def name_for(self, version: str) -> str:
        parse_version(version)
        return f"{self.alias}__{version}"

    def version_of(self, collection: str) -> str | None:
        match = self._pattern.match(collection)
        return match.group(1) if match else None

    # Resolution --------------------------------------------------------------------------------
    def live(self) -> CollectionVersion | None:
        """The collection the alias points at now, or None before the first index.

        An import (``adoption.import_collection``) whose process died between deleting the collection it
        adopted and creating the alias in its place left a marker alias on the verified copy: it is
        finished here, by whichever process looks first.
        """
        aliases = {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}
        target = aliases.get(self.alias)
        if target is not None:
            version = self.version_of(target)
            if version is None:
                raise AliasIsCollectionError(
                    f"alias {self.alias!r} points at {target!r}, which is not a clicktune "
                    f"version collection ({self.alias}__v0001, ...); re-point it or use another alias"
                )
            return CollectionVersion(target, version)
        imported = aliases.get(import_marker(self.alias))
        if self.client.collection_exists(self.alias):
            if imported is not None:
                raise AliasIsCollectionError(
                    f"an import of the collection {self.alias!r} into {imported} was interrupted before it "
                    f"finished; run `clicktune import {self.alias}` again (the collection is intact)"
                )
            raise AliasIsCollectionError(
                f"{self.alias!r} is a real Qdrant collection, not an alias; clicktune needs that name for the "
                f"alias. Migrate it (clicktune import) or choose another collection_alias"
            )
        if imported is not None and self.version_of(imported) is not None:
            return self.finish_import(imported)
        return None

    def finish_import(self, collection: str) -> CollectionVersion:
        """Replace the import marker by the alias, in one request (the adopted collection is gone)."""
        version = self.version_of(collection)
        assert version is not None
        try:
            self.client.update_collection_aliases(change_aliases_operations=[
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=import_marker(self.alias))),
                models.CreateAliasOperation(
                    create_alias=models.CreateAlias(collection_name=collection, alias_name=self.alias)),
            ])
        except Exception:
            # another process finished it first; anything else is a real error
            if not any(a.alias_name == self.alias for a in self.client.get_aliases().aliases):
                raise
        log.info("alias %s -> %s (import finished)", self.alias, collection)
        return CollectionVersion(collection, version)

    def require_live(self) -> CollectionVersion:
        live = self.live()
        if live is None:
            raise AliasNotFoundError(f"alias {self.alias!r} does not exist yet: add documents first")
        return live

    def versions(self) -> list[CollectionVersion]:
        """Every version collection of this alias, oldest first."""
        found = []
        for description in self.client.get_collections().collections:
            version = self.version_of(description.name)
            if version is not None:
                found.append(CollectionVersion(description.name, version))
        return sorted(found, key=lambda c: parse_version(c.version))

    def exists(self, collection: str) -> bool:
        return bool(self.client.collection_exists(collection))

    def count(self, collection: str, *, exact: bool = True) -> int:
        return int(self.client.count(collection, exact=exact).count)

    def index_kind(self, collection: str) -> str:
        """How searches of ``collection`` run: "hnsw", "int8 scan" (rescored), "scan", or "exact (local mode)"."""
        if searches_exactly(self.client):
            return "exact (local mode)"
        config = self.client.get_collection(collection).config
        if config.hnsw_config.m:
            return "hnsw"
        return "int8 scan" if config.quantization_config is not None else "scan"

    def other_aliases(self) -> list[str]:
        """Every alias on this Qdrant but this one (to suggest the right one for a misspelled alias)."""
        return sorted({a.alias_name for a in self.client.get_aliases().aliases} - {self.alias})

    # Changes -----------------------------------------------------------------------------------
    def create(self, version: str, dimension: int, *, bulk_load: bool = False, copy_of: str | None = None) -> str:
        """Create the collection of ``version`` (see :func:`create_version_collection`).

        ``copy_of``: the collection it will be built from. On the edge engine a build is refused before
        anything is created (``DiskFullError``) when the disk cannot hold as much again as that
        collection's files above ``min_free_disk_mb``; a server and local mode manage their own disk.
        """
        name = self.name_for(version)
        if copy_of is not None:
            require_space_for_copy(self.client, copy_of, f"building {name}")
        create_version_collection(self.client, name, models.VectorParams(size=dimension, distance=models.Distance.COSINE),
                                  bulk_load=bulk_load)
        return name

    def finish_bulk_load(self, collection: str) -> None:
        """Index the loaded collection once (see :func:`index_once`)."""
        index_once(self.client, collection, self.count(collection, exact=True), self.hnsw_from_documents)

    def point_alias_at(self, collection: str) -> None:
        """Swap (or create) the alias in one request: Qdrant applies the operations atomically."""
        operations: list[models.AliasOperations] = []
        if any(a.alias_name == self.alias for a in self.client.get_aliases().aliases):
            operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
        operations.append(
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=self.alias))
        )
        self.client.update_collection_aliases(change_aliases_operations=operations)
        log.info("alias %s -> %s", self.alias, collection)

    def restore_alias(self, version: str) -> AliasRestored | None:
        """``clicktune repair``: point a lost alias at ``version``'s collection (the registry's CURRENT).

        The edge engine's alias file missing or unreadable: it is written again with this alias alone
        (the unreadable one kept beside it). The alias merely absent while ``version``'s collection
        exists (another alias of the same folder, after such a repair): it is created, as the store's
        first write would. None when the alias is there, or there is no collection to point at.
        """
        from clicktune.adapters.qdrant.edge import EdgeEngine
        from clicktune.adapters.qdrant.errors import EdgeAliasFileError

        name = self.name_for(version)
        engine = getattr(self.client, "_client", None)
        try:
            aliases = {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}
        except EdgeAliasFileError:
            if not isinstance(engine, EdgeEngine) or not self.exists(name):
                raise
            kept = engine.restore_aliases({self.alias: name})
            log.warning("rewrote the alias file: %s -> %s%s", self.alias, name, f" ({kept} kept)" if kept else "")
            return AliasRestored(self.alias, name, kept)
        if self.alias in aliases or import_marker(self.alias) in aliases or not self.exists(name):
            return None
        self.point_alias_at(name)
        return AliasRestored(self.alias, name, None)

    def drop(self, collection: str) -> None:
        live = self.live()
        if live is not None and live.collection == collection:
            raise AliasIsCollectionError(f"refusing to delete {collection}: the alias {self.alias!r} points at it")
        self.client.delete_collection(collection)
        log.info("deleted collection %s", collection)

    def versions_in_use(self) -> set[str]:
        """Versions some collection on this Qdrant was built with, whichever alias it belongs to.

        Model retention keeps these: a registry may serve several aliases.
        """
        found = set()
        for description in self.client.get_collections().collections:
            match = _ANY_VERSION.match(description.name)
            if match:
                found.add(match.group(1))
        return found

    def apply_retention(self, keep: set[str]) -> list[str]:
        """Delete version collections except the live one and those named in ``keep``.

        Callers name the rollback target's and a running challenger's collection in ``keep``, and have
        the registry keep (at least) the versions of every collection left.
        """
        live = self.live()
        protected = set(keep) | ({live.collection} if live else set())
        removed = []
        for item in self.versions():
            if item.collection not in protected:
                self.drop(item.collection)
                removed.append(item.collection)
        return removed

    def orphans(self, previous_version: str | None) -> list[str]:
        """Collections newer than the live one: left by a reindex that died before its swap."""
        live = self.live()
        if live is None:
            return []
        live_number = parse_version(live.version)
        return [
            c.collection
            for c in self.versions()
            if parse_version(c.version) > live_number and c.version != previous_version
        ]
