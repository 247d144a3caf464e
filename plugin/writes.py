"""The store's writes: every collection that may serve a document gets it, all or nothing.

A write is checked whole at the door (texts, metadata as Qdrant stores it, ids), then, under the
shared side of the write lock, applied to the live collection, the one a rollback would serve and a
running challenger's (docs/ARCHITECTURE.md invariants 4 and 15). The targets are read fresh on every
write; a failure in any of them puts every target back as it was (``adapters.qdrant.writes``), so an
error always means nothing was written, and a returned call means every target has it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from clicktune.adapters.qdrant import CollectionVersion, MirroredWrite, WriteTarget, validate_documents

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.qdrant import (
        AliasedCollections,
        CollectionDocumentStore,
        IndexHandle,
        WriteCoordinator,
    )
    from clicktune.plugin.embeddings import ClicktuneEmbeddings


class StoreWrites:
    """``add_texts`` (and through it ``add_documents`` and the async forms) and ``delete``."""

    if TYPE_CHECKING:
        alias: str
        client: QdrantClient
        collections: AliasedCollections
        coordinator: WriteCoordinator
        handle: IndexHandle
        mirror_writes_to_previous: bool
        _embeddings: ClicktuneEmbeddings

        @property
        def feedback(self) -> ClickLog: ...

        def store_for(self, live: CollectionVersion) -> CollectionDocumentStore: ...

        def _ensure_live(self) -> CollectionVersion: ...

    def _write_targets(self, live: CollectionVersion) -> list[CollectionVersion]:
        """The live collection, the one a rollback would serve, and a running challenger's.

        Read fresh on every write (under the coordinator's shared lock), never cached: a write
        acknowledged after a swap or after a challenger started must reach every collection that
        may serve it later. A phase ends while writers wait (``ChallengerPhase.drop``), so a write
        that read its row still finds its collection.
        """
        targets = [live]
        if self.mirror_writes_to_previous:
            previous = self.handle.rollback_version(live.version)
            if previous and previous != live.version:
                targets.append(CollectionVersion(self.collections.name_for(previous), previous))
        challenger = self.feedback.challengers.active(self.alias)
        if challenger is not None:
            targets.append(CollectionVersion(challenger.challenger_collection, challenger.challenger_version))
        unique = list({t.collection: t for t in targets}.values())
        return [unique[0], *[t for t in unique[1:] if self.client.collection_exists(t.collection)]]

    def _mirrored(self, live: CollectionVersion, ids: Sequence[str]) -> MirroredWrite:
        targets = [WriteTarget(t.collection, self.store_for(t), mirror=n > 0)
                   for n, t in enumerate(self._write_targets(live))]
        return MirroredWrite(self.client, targets, ids)

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> list[str]:
        """Index ``texts`` into every collection that may serve them, all or nothing.

        The whole call is checked before anything is written (:func:`validate_documents`): a bad text,
        metadata (a value Qdrant cannot store: NaN, infinity, invalid Unicode, bytes, an object) or id
        anywhere raises :class:`InvalidDocumentsError` / :class:`MalformedIdError` and writes nothing.
        A failure while writing (a target's model, Qdrant) puts every target back and raises it.
        """
        texts = list(texts)
        metadatas = None if metadatas is None else list(metadatas)
        ids = None if ids is None else list(ids)
        doc_ids = validate_documents(texts, metadatas, ids)
        if not texts:
            return []

        def write(store: CollectionDocumentStore) -> None:
            with tqdm(total=len(texts), desc=f"indexing into {store.collection_name}", unit="doc",
                      disable=not self._embeddings.show_progress or len(texts) <= batch_size) as bar:
                for start in range(0, len(texts), batch_size):
                    end = start + batch_size
                    store.add_texts(texts[start:end], metadatas[start:end] if metadatas else None,
                                    ids=doc_ids[start:end], batch_size=batch_size, **kwargs)
                    bar.update(len(texts[start:end]))

        with self.coordinator.write():
            live = self._ensure_live()
            try:
                self._mirrored(live, doc_ids).apply(write)
            finally:  # a reindex re-reads these ids from live, whatever state a failure left there
                self.coordinator.note_written(doc_ids)
        return doc_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete ``ids`` from every collection that may serve them, all or nothing."""
        if not ids:
            return None
        ids = [str(i) for i in ids]
        with self.coordinator.write():
            live = self.collections.live()
            if live is None:
                return True
            try:
                results = self._mirrored(live, ids).apply(lambda store: store.delete(ids, **kwargs))
            finally:
                self.coordinator.note_written(ids)
        return all(bool(r) for r in results if r is not None)
