"""Everything that touches one alias, bundled, so the app's store and the operator's jobs share it.

The vector store (``plugin``) and the reindexer (``scheduler``) must use the same Qdrant client (an
embedded folder admits one), the same write coordinator and, ideally, the same loaded models; neither
may import the other, so they meet here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from qdrant_client import QdrantClient

from clicktune.adapters.models import EncoderCache, VersionEncoder, encoder_for_version
from clicktune.adapters.qdrant.client import qdrant_client_from_settings, serialize_embedded
from clicktune.adapters.qdrant.collections import AliasedCollections
from clicktune.adapters.qdrant.coordination import ReindexSession, WriteCoordinator, coordinator_for
from clicktune.adapters.qdrant.index import VersionIndex
from clicktune.adapters.registry import ModelRegistry
from clicktune.adapters.settings import ClicktuneSettings


@dataclass
class IndexHandle:
    settings: ClicktuneSettings
    client: QdrantClient
    registry: ModelRegistry
    collections: AliasedCollections
    coordinator: WriteCoordinator
    encoder: Callable[[str], VersionEncoder]
    #: The documents of the alias's version collections, by version and caller id.
    index: VersionIndex = field(init=False)

    def __post_init__(self) -> None:
        self.index = VersionIndex(self.client, self.collections)

    @contextmanager
    def writers_paused(self) -> Iterator[None]:
        """Hold every writer of this alias in this process (they wait, none fails) for a commit point."""
        with self.coordinator.lock.exclusive():
            yield

    @contextmanager
    def writes_tracked(self) -> Iterator[ReindexSession]:
        """Note the caller ids every writer touches from now on, for a reindex to replay."""
        with self.coordinator.session() as session:
            yield session

    @classmethod
    def from_settings(
        cls,
        settings: ClicktuneSettings,
        *,
        client: QdrantClient | None = None,
        registry: ModelRegistry | None = None,
        encoder: Callable[[str], VersionEncoder] | None = None,
        alias: str | None = None,
    ) -> IndexHandle:
        client = serialize_embedded(client) if client is not None else qdrant_client_from_settings(settings)
        registry = registry or ModelRegistry.from_settings(settings)
        alias = alias or settings.collection_alias
        if encoder is None:
            cache = EncoderCache(lambda v: encoder_for_version(registry, v, settings), max_size=settings.model_cache_size)
            encoder = cache.get
        return cls(
            settings=settings,
            client=client,
            registry=registry,
            collections=AliasedCollections(client, alias, hnsw_from_documents=settings.hnsw_from_documents),
            coordinator=coordinator_for(client, alias),
            encoder=encoder,
        )

    def rollback_version(self, live_version: str) -> str | None:
        """The version a rollback would return to (its collection complete), once CURRENT agrees with the alias.

        The alias is the commit point of a swap or a rollback; CURRENT follows it (and the next run
        finishes a follow that a crash cut short). Writers use this to mirror into the collection a
        rollback would serve, so the answer must already be right in the window between the two:
        - CURRENT == alias: the pointer's previous version, unless that version came live by a
          rollback (``rollback_ready`` False): then the one before it has missed writes since it left
          service, and there is none;
        - the alias is on an earlier live version (a rollback cut short): none, as once it finishes;
        - the alias is ahead of CURRENT (a promotion cut short): CURRENT itself.
        """
        pointer = self.registry.pointer()
        if pointer is None:
            return None
        if pointer.version == live_version:
            return pointer.previous if pointer.rollback_ready else None
        if live_version in pointer.history:
            return None
        return pointer.version

