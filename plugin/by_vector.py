"""Searches by vector for ``ClicktuneVectorStore``: a vector is only comparable with the version that made it.

A vector carries no model version, so the caller says which: by default the live version (the one
``store.embeddings`` embeds with now), or ``model_version="v0003"`` for the version that produced it,
searched in ``<alias>__v0003`` as long as that collection exists (the live one, the one kept for
rollback, a running challenger's). A version with no collection raises
:class:`VersionNotIndexedError`; a vector of another length than that version's raises
:class:`VectorDimensionError`.

Searches by vector are never interleaved and never logged as impressions: they have no query text,
and the click log learns from (query text, clicked document) pairs. Their results carry the usual
annotations (``metadata["clicktune"]``) with ``search_id`` None, since there is no search to click on;
``log_impression=True``, ``user_id`` or ``session_id`` raise :class:`ConfigurationError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document

from clicktune.adapters.errors import ConfigurationError, VectorDimensionError, VersionNotIndexedError
from clicktune.adapters.qdrant import CollectionVersion
from clicktune.plugin.options import check_search

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

    from clicktune.adapters.qdrant import AliasedCollections, CollectionDocumentStore


class SearchByVector:
    """The by-vector searches (sync; LangChain's async defaults run them in an executor)."""

    if TYPE_CHECKING:
        alias: str
        client: QdrantClient
        collections: AliasedCollections

        def store_for(self, live: CollectionVersion) -> CollectionDocumentStore: ...

        def _annotate_and_log(self, query: str | None, results: list[tuple[Document, float]], live: CollectionVersion,
                    log_impression: bool | None, user_id: str | None, session_id: str | None,
                    ) -> list[tuple[Document, float]]: ...

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, *, model_version: str | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents nearest ``embedding`` in ``model_version``'s collection (default: live), with cosines."""
        k = check_search(None, k, kwargs)
        _refuse_logging(kwargs)
        found = self._vector_target(embedding, model_version)
        if found is None:
            return []
        target, vector = found
        results = self.store_for(target).similarity_search_with_score_by_vector(vector, k, **kwargs)
        return self._annotate_and_log(None, results, target, False, None, None)

    def similarity_search_by_vector(self, embedding: list[float], k: int = 4, **kwargs: Any) -> list[Document]:
        """Documents nearest ``embedding``; ``model_version=`` names the version that made it (default: live)."""
        return [doc for doc, _ in self.similarity_search_with_score_by_vector(embedding, k, **kwargs)]

    def max_marginal_relevance_search_by_vector(
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5, *,
        model_version: str | None = None, **kwargs: Any,
    ) -> list[Document]:
        """MMR around ``embedding`` in ``model_version``'s collection (default: live)."""
        k = check_search(None, k, kwargs, fetch_k=fetch_k)
        _refuse_logging(kwargs)
        found = self._vector_target(embedding, model_version)
        if found is None:
            return []
        target, vector = found
        docs = self.store_for(target).max_marginal_relevance_search_by_vector(vector, k, fetch_k, lambda_mult,
                                                                               **kwargs)
        return [doc for doc, _ in self._annotate_and_log(None, [(d, math.nan) for d in docs], target, False, None, None)]

    def _vector_target(
        self, embedding: Sequence[float], model_version: str | None
    ) -> tuple[CollectionVersion, list[float]] | None:
        """The collection to search and the vector as floats; None when nothing is indexed yet."""
        if model_version is None:
            target = self.collections.live()
            if target is None:
                return None
        else:
            name = self.collections.name_for(model_version)  # InvalidVersionError for a malformed name
            if not self.client.collection_exists(name):
                indexed = ", ".join(c.version for c in self.collections.versions()) or "none"
                raise VersionNotIndexedError(
                    f"model version {model_version} has no collection under alias {self.alias!r} ({name}): it was "
                    f"never indexed here, or retention removed it (indexed versions: {indexed}); embed the query "
                    f"again with a version that is, or search by text")
            target = CollectionVersion(name, model_version)
        vector = [float(x) for x in embedding]
        dimension = self._dimension(target.collection)
        if len(vector) != dimension:
            raise VectorDimensionError(
                f"the vector has {len(vector)} dimensions but {target.version}'s collection {target.collection} "
                f"holds {dimension}: it was made by another model; pass model_version= of the version that made "
                f"it, or embed with store.embeddings.for_version({target.version!r})")
        return target, vector

    def _dimension(self, collection: str) -> int:
        """A collection's vector size, read once (a version's collection always has its model's size)."""
        cache: dict[str, int] = self.__dict__.setdefault("_dimensions", {})
        if collection not in cache:
            vectors = self.client.get_collection(collection).config.params.vectors
            cache[collection] = int(vectors.size)  # type: ignore[union-attr]
        return cache[collection]


def _refuse_logging(kwargs: dict[str, Any]) -> None:
    log_impression = kwargs.pop("log_impression", None)
    given = [n for n in ("user_id", "session_id") if kwargs.pop(n, None) is not None]
    if log_impression or given:
        raise ConfigurationError(
            f"searches by vector are not logged as impressions (no query text to learn from), so "
            f"{', '.join(given or ['log_impression=True'])} cannot apply: search by text to log the search")
