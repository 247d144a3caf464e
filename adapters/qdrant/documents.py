"""One version collection seen as a LangChain vector store, with caller ids kept intact.

Plain ``QdrantVectorStore`` rejects ids that are not UUIDs or integers and returns documents with no
``Document.id``. Here any string id is mapped to a UUID5 point id and kept in the payload
(``doc_id``), so the caller's ids survive re-indexing and clicks speak them. Everything else
(querying, filters, score thresholds, MMR, retriever plumbing) is langchain-qdrant's own.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterable, Mapping, Sequence
from itertools import islice
from typing import Any

from langchain_core.documents import Document
from langchain_qdrant import QdrantVectorStore
from qdrant_client import models

from clicktune.adapters.errors import InvalidDocumentsError, InvalidSearchError
from clicktune.adapters.limits import check_doc_id
from clicktune.adapters.qdrant.client import searches_exactly
from clicktune.adapters.qdrant.collections import RESCORED_SEARCH
from clicktune.adapters.qdrant.layout import CONTENT_KEY, DOC_ID_KEY, METADATA_KEY, point_id
from clicktune.adapters.qdrant.payload_check import check_metadata

#: The one metadata key of search results that clicktune writes: ``{"search_id", "rank", "model_version",
#: "query_model_version"}``. Reserved, so that no user key is ever overwritten: add_texts refuses it.
ANNOTATIONS_KEY = "clicktune"
# langchain-qdrant reads and writes these keys; ``layout`` spells them without importing LangChain.
assert (CONTENT_KEY, METADATA_KEY) == (QdrantVectorStore.CONTENT_KEY, QdrantVectorStore.METADATA_KEY)


def document_from_payload(payload: dict[str, Any], fallback_id: Any = None) -> Document:
    doc_id = payload.get(DOC_ID_KEY, fallback_id)
    return Document(
        id=None if doc_id is None else str(doc_id),
        page_content=payload.get(CONTENT_KEY, ""),
        metadata=dict(payload.get(METADATA_KEY) or {}),
    )


def validate_documents(
    texts: Sequence[Any], metadatas: Sequence[Any] | None = None, ids: Sequence[Any] | None = None
) -> list[str]:
    """Check a whole write before any of it is written; return its document ids.

    Every text must be a string, every metadata a dict (or None), with one metadata and one id per
    text when given, without the reserved key ``ANNOTATIONS_KEY`` and holding only what Qdrant stores
    (``payload_check``: finite numbers, valid Unicode, JSON types); every id a string the click log can
    hold (``adapters.limits``: a document that could never be clicked is never indexed), or None for a
    fresh one. Raises
    :class:`InvalidDocumentsError` or :class:`MalformedIdError` naming the first bad item.
    """
    if metadatas is not None and len(metadatas) != len(texts):
        raise InvalidDocumentsError(
            f"got {len(texts)} texts but {len(metadatas)} metadatas: pass one metadata per text, or none")
    if ids is not None and len(ids) != len(texts):
        raise InvalidDocumentsError(f"got {len(texts)} texts but {len(ids)} ids: pass one id per text, or none")
    for i, text in enumerate(texts):
        if text is None:
            raise InvalidDocumentsError(f"text {i} is None: remove it or give it a string before adding")
        if not isinstance(text, str):
            raise InvalidDocumentsError(f"text {i} is of type {type(text).__name__}, not str: pass strings")
    for i, metadata in enumerate(metadatas or []):
        if metadata is not None and not isinstance(metadata, Mapping):
            raise InvalidDocumentsError(
                f"metadata {i} is of type {type(metadata).__name__}, not a dict: pass a dict (or None) per text")
        if metadata is not None and ANNOTATIONS_KEY in metadata:
            raise InvalidDocumentsError(
                f"metadata {i} has the key {ANNOTATIONS_KEY!r}, which clicktune reserves for its annotations of "
                "search results (search id, rank, model version): rename that key")
        if metadata is not None:
            check_metadata(i, metadata)
    if ids is None:
        return [uuid.uuid4().hex for _ in texts]
    return [uuid.uuid4().hex if i is None else check_doc_id(i, what=f"ids[{n}]") for n, i in enumerate(ids)]


def check_filter(value: Any) -> None:
    """Refuse a search ``filter`` that is not Qdrant's ``Filter`` (a dict or a string reaches
    langchain-qdrant as is and fails deep inside it with an ``AttributeError``)."""
    if value is not None and not isinstance(value, models.Filter):
        raise InvalidSearchError(
            f"filter is of type {type(value).__name__}; pass a qdrant_client.models.Filter, for example "
            "Filter(must=[FieldCondition(key='metadata.source', match=MatchValue(value='a.pdf'))]) "
            "(metadata keys live under 'metadata.'), or no filter")


def build_payload(text: str, metadata: dict | None, doc_id: str) -> dict[str, Any]:
    if text is None:
        raise ValueError("a text is None: remove it before adding")
    return {CONTENT_KEY: text, METADATA_KEY: metadata or {}, DOC_ID_KEY: doc_id}


class CollectionDocumentStore(QdrantVectorStore):
    """``QdrantVectorStore`` over one concrete collection, embedding with that collection's version.

    Searches without ``search_params`` get :data:`RESCORED_SEARCH` (int8 candidates rescored in float32,
    oversampled twice), except on local mode, which always searches exactly and warns about any.
    """

    def _search_defaults(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        if kwargs.get("search_params") is None and not searches_exactly(self.client):
            kwargs["search_params"] = RESCORED_SEARCH
        return kwargs

    def similarity_search_with_score(self, query: str, k: int = 4, **kwargs: Any) -> list[tuple[Document, float]]:
        return super().similarity_search_with_score(query, k, **self._search_defaults(kwargs))

    def similarity_search_with_score_by_vector(self, embedding: list[float], k: int = 4,
                                               **kwargs: Any) -> list[tuple[Document, float]]:
        return super().similarity_search_with_score_by_vector(embedding, k, **self._search_defaults(kwargs))

    def max_marginal_relevance_search_with_score_by_vector(self, embedding: list[float], k: int = 4,
                                                           **kwargs: Any) -> list[tuple[Document, float]]:
        return super().max_marginal_relevance_search_with_score_by_vector(embedding, k,
                                                                          **self._search_defaults(kwargs))

    @classmethod
    def _document_from_point(
        cls, scored_point: Any, collection_name: str, content_payload_key: str, metadata_payload_key: str
    ) -> Document:
        return document_from_payload(scored_point.payload or {}, scored_point.id)

    def _generate_batches(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        ids: Sequence[str | int] | None = None,
        batch_size: int = 64,
    ) -> Generator[tuple[list[str | int], list[models.PointStruct]], Any, None]:
        texts = list(texts)
        # the whole call, before the first batch is upserted: a bad item writes nothing
        caller_ids = validate_documents(texts, metadatas or None, ids or None)
        metadatas_iter = iter(metadatas or [])
        ids_iter = iter(caller_ids)
        texts_iter = iter(texts)
        while batch_texts := list(islice(texts_iter, batch_size)):
            batch_ids = list(islice(ids_iter, batch_size))
            batch_meta = list(islice(metadatas_iter, batch_size)) or [None] * len(batch_texts)
            payloads = [build_payload(t, m, i) for t, m, i in zip(batch_texts, batch_meta, batch_ids, strict=True)]
            vectors = self._build_vectors(batch_texts)
            points = [
                models.PointStruct(id=point_id(i), vector=v, payload=p)
                for i, v, p in zip(batch_ids, vectors, payloads, strict=True)
            ]
            yield list(batch_ids), points

    def delete(self, ids: list[str | int] | None = None, **kwargs: Any) -> bool | None:
        if not ids:
            return None
        return super().delete([point_id(i) for i in ids], **kwargs)

    def get_by_ids(self, ids: Sequence[str | int], /) -> list[Document]:
        if not ids:
            return []
        return super().get_by_ids([point_id(i) for i in ids])
