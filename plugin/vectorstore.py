"""The vector store a LangChain app searches: an alias over versioned Qdrant collections.

Every call resolves the alias to the live collection first and embeds with *that collection's* model
version, so a query is never embedded by one model and compared with vectors of another, in any
process and across any swap (docs/ARCHITECTURE.md invariant 1). Each result says which version
produced it, in ``metadata["clicktune"]`` (the only key clicktune adds; the user's own keys are never
touched).
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from qdrant_client import QdrantClient

from clicktune.adapters.clicklog import Challenger, ClickLog, Impression, ImpressionLogger, ShownResult
from clicktune.adapters.limits import check_session_id, check_user_id
from clicktune.adapters.observability.counters import observe_search
from clicktune.adapters.qdrant import (
    ANNOTATIONS_KEY,
    CollectionDocumentStore,
    CollectionVersion,
    IndexHandle,
)
from clicktune.adapters.settings import ClicktuneSettings, load_settings
from clicktune.plugin.adoption import AdoptExisting
from clicktune.plugin.by_vector import SearchByVector
from clicktune.plugin.clicks import StoreClicks, follow_store
from clicktune.plugin.embeddings import ClicktuneEmbeddings
from clicktune.plugin.interleaving import team_draft
from clicktune.plugin.options import check_embeddings, check_search, setting_overrides
from clicktune.plugin.writes import StoreWrites

log = logging.getLogger(__name__)


class ClicktuneVectorStore(AdoptExisting, SearchByVector, StoreClicks, StoreWrites, VectorStore):
    """LangChain ``VectorStore`` over ``<alias>`` -> ``<alias>__<version>`` in Qdrant.

    Built on ``langchain_qdrant.QdrantVectorStore`` (one per concrete collection, see
    :class:`CollectionDocumentStore`); this class adds the alias resolution, the version bookkeeping
    on results, and the coordination of writes with a running blue-green reindex.

    Writes also go to the previous version's collection while it is kept for rollback, embedded by
    the previous model, so a rollback serves every document acknowledged since the promotion; and,
    during a challenger phase, to the challenger's collection, so a promoted challenger has them all.

    While a challenger phase runs (see ``clicktune.scheduler.challenger``), a share of searches is
    served as a team-draft interleaving of champion and challenger; ``interleave=False`` opts a store
    out (it then serves the champion alone, and its clicks count for training only).

    Arguments other than its own are clicktune settings (``home=``, ``feedback_url=``, ...) or
    langchain-qdrant's ``collection_name`` (the alias), ``url``, ``api_key`` and ``path``; anything
    else raises :class:`ConfigurationError` (see ``plugin.options``). Searches by vector: see
    ``plugin.by_vector``. Relevance scores are langchain-qdrant's for cosine, ``(cosine + 1) / 2``.
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
        interleave: bool = True,
        **options: Any,
    ) -> None:
        check_embeddings(embeddings)
        overrides = setting_overrides(options, constructor=ClicktuneVectorStore.__init__, alias=alias, client=client)
        self.settings = load_settings(settings, **overrides)
        self.alias = alias or self.settings.collection_alias
        self._embeddings = embeddings or ClicktuneEmbeddings(self.settings)
        self._embeddings._owned_by_store = True  # queries go by collection version here: no switch warning
        self.registry = self._embeddings.registry
        self.handle = IndexHandle.from_settings(
            self.settings, client=client, registry=self.registry, encoder=self._embeddings.encoder, alias=self.alias
        )
        self.client = self.handle.client
        self.collections = self.handle.collections
        self.coordinator = self.handle.coordinator
        self.annotate_results = annotate_results
        self.mirror_writes_to_previous = mirror_writes_to_previous
        self.log_impressions = self.settings.feedback.log_impressions if log_impressions is None else log_impressions
        self._feedback = feedback
        self._impression_logger: ImpressionLogger | None = None
        self._stores: dict[str, CollectionDocumentStore] = {}
        self._stores_lock = threading.Lock()
        self._bootstrap_lock = threading.Lock()
        self.interleave = interleave
        self._challenger: Challenger | None = None
        self._challenger_checked_at = float("-inf")
        self._challenger_lock = threading.Lock()
        self._random = random.Random(self.settings.seed)
        follow_store(self, feedback.url if feedback is not None else self.settings.resolved_feedback_url)

    # Plumbing ----------------------------------------------------------------------------------
    @property
    def embeddings(self) -> Embeddings:
        return self._embeddings

    def store_for(self, live: CollectionVersion) -> CollectionDocumentStore:
        """The langchain-qdrant store of one concrete collection, embedding with its own version."""
        with self._stores_lock:
            store = self._stores.get(live.collection)
            if store is None:
                store = CollectionDocumentStore(
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

    def live(self) -> CollectionVersion | None:
        return self.collections.live()

    def _ensure_live(self) -> CollectionVersion:
        """The live collection; on an empty setup, create ``<alias>__<CURRENT>`` and the alias."""
        live = self.collections.live()
        if live is not None:
            return live
        with self._bootstrap_lock:
            live = self.collections.live()
            if live is not None:
                return live
            version = self.registry.bootstrap()  # the live version (v0001 on a fresh registry)
            name = self.collections.name_for(version)
            if not self.client.collection_exists(name):
                encoder = self._embeddings.encoder(version)
                self.collections.create(version, encoder.dimension)
                self.registry.update_info(version, index_precision=encoder.precision)
            self.collections.point_alias_at(name)
            log.info("bootstrapped alias %s -> %s", self.alias, name)
            return CollectionVersion(name, version)

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
        """Search the live collection; ``log_impression`` / ``user_id`` / ``session_id`` feed the click log.

        A user or session id longer than the click log holds (``adapters.limits``) raises
        :class:`MalformedIdError` before the search, rather than answering it with its impression lost;
        a query, ``k`` or ``filter`` it cannot use raises :class:`InvalidSearchError` (``plugin.options``).
        """
        k = check_search(query, k, kwargs)
        check_user_id(user_id)
        check_session_id(session_id)
        with observe_search(self.alias) as served:  # the clicktune_searches / _latency metrics
            live = self.collections.live()
            if live is None:
                return []
            served.model_version = live.version
            logged = self.log_impressions if log_impression is None else log_impression
            # Unlogged searches cannot credit anyone, so they are never interleaved.
            challenger = self._challenger_for_this_search(live) if logged and self.annotate_results else None
            if challenger is not None:
                try:
                    results, credit = self._interleaved(query, k, live, challenger, **kwargs)
                except Exception as exc:  # noqa: BLE001 - the challenger must never fail a user's search
                    log.warning("interleaving with %s failed (%s: %s); serving the champion alone",
                                challenger.challenger_version, type(exc).__name__, exc)
                else:
                    served.interleaved = True
                    return self._annotate_and_log(query, results, live, log_impression, user_id, session_id,
                                                  credit=credit, challenge_id=challenger.id)
            results = self.store_for(live).similarity_search_with_score(query, k, **kwargs)
            return self._annotate_and_log(query, results, live, log_impression, user_id, session_id)

    # The challenger phase ----------------------------------------------------------------------
    def active_challenger(self) -> Challenger | None:
        """The alias's running challenger, as the feedback database says, re-read every few seconds.

        Cached for ``challenger_refresh_seconds`` so a search costs no database round trip; serving
        processes therefore pick up a new challenger, and its end, within that time.
        """
        now = time.monotonic()
        with self._challenger_lock:
            if now - self._challenger_checked_at < self.settings.challenger.refresh_seconds:
                return self._challenger
        try:
            challenger = self.feedback.challengers.active(self.alias)
        except Exception as exc:  # noqa: BLE001 - no challenger beats a failed search
            log.warning("could not read the challenger state (%s: %s); serving the champion", type(exc).__name__, exc)
            challenger = None
        with self._challenger_lock:
            self._challenger, self._challenger_checked_at = challenger, now
        return challenger

    def _challenger_for_this_search(self, live: CollectionVersion) -> Challenger | None:
        if not self.interleave:
            return None
        challenger = self.active_challenger()
        if challenger is None or challenger.champion_collection != live.collection:
            return None
        with self._challenger_lock:
            draw = self._random.random()
        return challenger if draw < challenger.interleave_share else None

    def _interleaved(
        self, query: str, k: int, live: CollectionVersion, challenger: Challenger, **kwargs: Any
    ) -> tuple[list[tuple[Document, float]], list[tuple[str, bool]]]:
        """Team-draft interleaving of the champion's and the challenger's top ``k``.

        Each model embeds the query for its own collection (docs/ARCHITECTURE.md invariant 1, per
        result), and each shown document keeps the score and version of the model that contributed it.
        """
        other = CollectionVersion(challenger.challenger_collection, challenger.challenger_version)
        teams = (
            self.store_for(live).similarity_search_with_score(query, k, **kwargs),
            self.store_for(other).similarity_search_with_score(query, k, **kwargs),
        )
        by_id = [{str(doc.id): (doc, score) for doc, score in team} for team in teams]
        with self._challenger_lock:
            seed = self._random.getrandbits(64)
        picks = team_draft([str(d.id) for d, _ in teams[0]], [str(d.id) for d, _ in teams[1]], k,
                           random.Random(seed))
        versions = (live.version, other.version)
        return [by_id[p.team][p.item] for p in picks], [(versions[p.team], p.shared) for p in picks]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """langchain-qdrant's for cosine, ``(cosine + 1) / 2`` in [0, 1], so score thresholds carry over."""
        return CollectionDocumentStore._cosine_relevance_score_fn

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, **kwargs: Any
    ) -> list[Document]:
        k = check_search(query, k, kwargs, fetch_k=fetch_k)
        live = self.collections.live()
        if live is None:
            return []
        log_impression = kwargs.pop("log_impression", None)
        user_id, session_id = kwargs.pop("user_id", None), kwargs.pop("session_id", None)
        check_user_id(user_id)
        check_session_id(session_id)
        with observe_search(self.alias) as served:
            served.model_version = live.version
            docs = self.store_for(live).max_marginal_relevance_search(query, k, fetch_k, lambda_mult, **kwargs)
            results = [(d, float("nan")) for d in docs]
            return [doc for doc, _ in self._annotate_and_log(query, results, live, log_impression, user_id, session_id)]

    def _annotate_and_log(
        self,
        query: str | None,
        results: list[tuple[Document, float]],
        live: CollectionVersion,
        log_impression: bool | None,
        user_id: str | None,
        session_id: str | None,
        *,
        credit: list[tuple[str, bool]] | None = None,
        challenge_id: int | None = None,
    ) -> list[tuple[Document, float]]:
        """Annotate each result in ``metadata["clicktune"]`` and log the impression.

        The annotations: ``search_id`` (None for a search that is not logged: by vector, or with
        logging off; a click needs a logged search, so no id is handed out that could never take one),
        ``rank`` (1-based), ``model_version`` (the collection it came from) and ``query_model_version``
        (the model that embedded the query: the same one). ``credit`` gives each result's model on an
        interleaved search and whether it is in both rankings' common prefix. A logging failure never
        fails the search: it is a warning and ``impression_logger.failures``.
        """
        if not self.annotate_results:
            return results
        logged = query is not None and (self.log_impressions if log_impression is None else log_impression)
        search_id = str(uuid.uuid4()) if logged else None
        shown_by: list[tuple[str, bool | None]] = list(credit) if credit else [(live.version, None)] * len(results)
        for rank, ((doc, _score), (version, _)) in enumerate(zip(results, shown_by, strict=True), start=1):
            doc.metadata[ANNOTATIONS_KEY] = {"search_id": search_id, "rank": rank, "model_version": version,
                                             "query_model_version": version}
        if results and search_id is not None:
            self.impression_logger.log(Impression(
                search_id=search_id, query=query, model_version=live.version, collection=live.collection,
                user_id=user_id, session_id=session_id, alias=self.alias, challenge_id=challenge_id,
                results=[ShownResult(doc_id=str(doc.id), rank=rank, score=None if math.isnan(score) else float(score),
                                     model_version=version if credit else None, shared=common)
                         for rank, ((doc, score), (version, common)) in enumerate(zip(results, shown_by, strict=True), 1)],
            ))
        return results

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
        check_embeddings(embedding)
        store = cls(embeddings=embedding, **kwargs)  # type: ignore[arg-type]
        store.add_texts(texts, metadatas, ids=ids)
        return store
