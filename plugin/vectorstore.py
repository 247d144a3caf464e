"""The vector store a LangChain app searches: an alias over versioned Qdrant collections.

Every call resolves the alias to the live collection first and embeds with *that collection's* model
version, so a query is never embedded by one model and compared with vectors of another, in any
process and across any swap (DESIGN invariant 1). Each result says which version produced it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from qdrant_client import QdrantClient
from tqdm.auto import tqdm

from clicktune.adapters.clicklog import ClickLog, Impression, ImpressionLogger, ShownResult
from clicktune.adapters.qdrant import IndexHandle, LiveCollection, VersionCollectionStore
from clicktune.adapters.settings import ClicktuneSettings, load_settings
from clicktune.plugin.embeddings import ClicktuneEmbeddings

log = logging.getLogger(__name__)


class ClicktuneVectorStore(VectorStore):
    """LangChain ``VectorStore`` over ``<alias>`` -> ``<alias>__<version>`` in Qdrant.

    Built on ``langchain_qdrant.QdrantVectorStore`` (one per concrete collection, see
    :class:`VersionCollectionStore`); this class adds the alias resolution, the version bookkeeping
    on results, and the coordination of writes with a running blue-green reindex.

    Writes also go to the previous version's collection while it is kept for rollback, embedded by
    the previous model, so a rollback serves every document acknowledged since the promotion.
    """

    def __init__(
        self,
        settings: ClicktuneSettings | None = None,
        *,
        alias: str | None = None,
        embeddings: ClicktuneEmbeddings | None = None,
        client: QdrantClient | None = None,
        annotate_results: bool = True,
        mirror_writes_to_previous: bool = True,
        log_impressions: bool | None = None,
        feedback: ClickLog | None = None,
        **setting_overrides: Any,
    ) -> None:
        self.settings = load_settings(settings, **setting_overrides)
        self.alias = alias or self.settings.collection_alias
        self._embeddings = embeddings or ClicktuneEmbeddings(self.settings)
        self.registry = self._embeddings.registry
        self.handle = IndexHandle.from_settings(
            self.settings, client=client, registry=self.registry, encoder=self._embeddings.encoder, alias=self.alias
        )
        self.client = self.handle.client
        self.collections = self.handle.collections
        self.coordinator = self.handle.coordinator
        self.annotate_results = annotate_results
        self.mirror_writes_to_previous = mirror_writes_to_previous
        self.log_impressions = self.settings.log_impressions if log_impressions is None else log_impressions
        self._feedback = feedback
        self._impression_logger: ImpressionLogger | None = None
        self._stores: dict[str, VersionCollectionStore] = {}
        self._stores_lock = threading.Lock()
        self._bootstrap_lock = threading.Lock()

    # Plumbing ----------------------------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        return self._embeddings

    def store_for(self, live: LiveCollection) -> VersionCollectionStore:
        """The langchain-qdrant store of one concrete collection, embedding with its own version."""
        with self._stores_lock:
            store = self._stores.get(live.collection)
            if store is None:
                store = VersionCollectionStore(
                    client=self.client,
                    collection_name=live.collection,
                    # quiet: add_texts draws one bar over the whole call, not one per upsert batch
                    embedding=self._embeddings.for_version(live.version, show_progress=False),
                    validate_collection_config=False,
                )
                self._stores[live.collection] = store
            return store

    @property
    def feedback(self) -> ClickLog:
        """The click log impressions go to (opened on first use)."""
        if self._feedback is None:
            self._feedback = ClickLog.from_settings(self.settings)
        return self._feedback

    @property
    def impression_logger(self) -> ImpressionLogger:
        if self._impression_logger is None:
            self._impression_logger = ImpressionLogger(self.feedback)
        return self._impression_logger

    def live(self) -> LiveCollection | None:
        return self.collections.live()

    def _ensure_live(self) -> LiveCollection:
        """The live collection; on an empty setup, create ``<alias>__<CURRENT>`` and the alias."""
        live = self.collections.live()
        if live is not None:
            return live
        with self._bootstrap_lock:
            live = self.collections.live()
            if live is not None:
                return live
            version = self.registry.current()
            name = self.collections.name_for(version)
            if not self.client.collection_exists(name):
                encoder = self._embeddings.encoder(version)
                self.collections.create(version, encoder.dimension)
                self.registry.update_info(version, index_precision=encoder.precision)
            self.collections.point_alias_at(name)
            log.info("bootstrapped alias %s -> %s", self.alias, name)
            return LiveCollection(name, version)

    def _write_targets(self, live: LiveCollection) -> list[LiveCollection]:
        targets = [live]
        if self.mirror_writes_to_previous:
            previous = self.registry.previous()
            if previous and previous != live.version:
                name = self.collections.name_for(previous)
                if self.client.collection_exists(name):
                    targets.append(LiveCollection(name, previous))
        return targets

    # Writes ------------------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        batch_size: int = 64,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        if not texts:
            return []
        if metadatas is not None and len(metadatas) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(metadatas)} metadatas")
        if ids is not None and len(ids) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(ids)} ids")
        doc_ids = [str(i) if i is not None else uuid.uuid4().hex for i in (ids or [None] * len(texts))]
        with self.coordinator.write():
            live = self._ensure_live()
            for target in self._write_targets(live):
                store = self.store_for(target)
                with tqdm(total=len(texts), desc=f"indexing into {target.collection}", unit="doc",
                          disable=not self._embeddings.show_progress or len(texts) <= batch_size) as bar:
                    for start in range(0, len(texts), batch_size):
                        end = start + batch_size
                        store.add_texts(texts[start:end], metadatas[start:end] if metadatas else None,
                                        ids=doc_ids[start:end], batch_size=batch_size, **kwargs)
                        bar.update(len(texts[start:end]))
            self.coordinator.note_written(doc_ids)
        return doc_ids

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if not ids:
            return None
        ids = [str(i) for i in ids]
        with self.coordinator.write():
            live = self.collections.live()
            if live is None:
                return True
            ok = True
            for target in self._write_targets(live):
                ok = bool(self.store_for(target).delete(ids, **kwargs)) and ok
            self.coordinator.note_written(ids)
        return ok

    # Reads -------------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        live = self.collections.live()
        if live is None or not ids:
            return []
        return self.store_for(live).get_by_ids(list(ids))

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        *,
        log_impression: bool | None = None,
        user_id: str | None = None,
        session_id: str | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Search the live collection; ``log_impression`` / ``user_id`` / ``session_id`` feed the click log."""
        live = self.collections.live()
        if live is None:
            return []
        results = self.store_for(live).similarity_search_with_score(query, k, **kwargs)
        return self._finish(query, results, live, log_impression, user_id, session_id)

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def _similarity_search_with_relevance_scores(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        return self.similarity_search_with_score(query, k, **kwargs)  # cosine: already in [-1, 1]

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        live = self.collections.live()
        if live is None:
            return []
        log_impression = kwargs.pop("log_impression", None)
        user_id, session_id = kwargs.pop("user_id", None), kwargs.pop("session_id", None)
        docs = self.store_for(live).max_marginal_relevance_search(query, k, fetch_k, lambda_mult, **kwargs)
        results = [(d, float("nan")) for d in docs]
        return [doc for doc, _ in self._finish(query, results, live, log_impression, user_id, session_id)]

    def _finish(
        self,
        query: str,
        results: list[tuple[Document, float]],
        live: LiveCollection,
        log_impression: bool | None,
        user_id: str | None,
        session_id: str | None,
    ) -> list[tuple[Document, float]]:
        """Stamp provenance on each result (search, rank, model on both sides) and log the impression.

        A logging failure never fails the search: it is a warning and ``impression_logger.failures``.
        """
        if not self.annotate_results:
            return results
        search_id = str(uuid.uuid4())
        query_version = self.store_for(live).embeddings.current_version  # type: ignore[union-attr]
        for rank, (doc, _score) in enumerate(results, start=1):
            doc.metadata.update(search_id=search_id, rank=rank, model_version=live.version,
                                query_model_version=query_version)
        if results and (self.log_impressions if log_impression is None else log_impression):
            self.impression_logger.log(Impression(
                search_id=search_id, query=query, model_version=live.version, collection=live.collection,
                user_id=user_id, session_id=session_id,
                results=[ShownResult(doc_id=str(doc.id), rank=rank, score=None if score != score else float(score))
                         for rank, (doc, score) in enumerate(results, start=1)],
            ))
        return results

    # Clicks ------------------------------------------------------------------------------------
    def record_click(
        self, search_id: str, doc_id: str, *, dwell: float | None = None, grade: int | None = None,
        user: str | None = None,
    ) -> bool:
        """Report that a user opened ``doc_id`` from search ``search_id``; True if newly stored."""
        return self.feedback.record_click(search_id, doc_id, dwell=dwell, grade=grade, user=user)

    def record_clicks(self, clicks: list[dict[str, Any]]) -> list[bool]:
        """Several clicks at once, all or nothing (keys: search_id, doc_id, dwell, grade, user)."""
        return self.feedback.record_clicks(clicks)

    # Construction ------------------------------------------------------------------------------
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> ClicktuneVectorStore:
        if embedding is not None and not isinstance(embedding, ClicktuneEmbeddings):
            raise TypeError(
                "ClicktuneVectorStore embeds with its registry's versions; pass a ClicktuneEmbeddings or none"
            )
        store = cls(embeddings=embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store
