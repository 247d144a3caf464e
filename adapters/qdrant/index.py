"""What the loop does with an alias's version collections, in versions and caller ids only.

The scheduler ranks, looks up texts, re-embeds a collection into another and checks the copy; none of
that should know how a document is laid out in a Qdrant point (payload keys, UUID5 point ids) or how
Qdrant pages through a collection. This module, ``layout`` and ``documents`` are the only places that do, so a
second embedded engine (or a change of payload format) touches adapters/qdrant and nothing else.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from clicktune.adapters.qdrant.collections import AliasedCollections
from clicktune.adapters.qdrant.errors import ReindexVerificationError
from clicktune.adapters.qdrant.layout import CONTENT_KEY, DOC_ID_KEY, point_id

# Ranking asks for exact search (a server or the edge engine would otherwise answer from HNSW or int8
# copies); local mode is always exact and warns that the parameter has no effect there, once per batch.
warnings.filterwarnings("ignore", message="Local mode performs exact", category=UserWarning)

#: Texts in, one unit-length row per text out: a version's document encoder.
Encode = Callable[[list[str]], np.ndarray]
#: How many points one scroll or retrieve request carries.
PAGE = 1024
#: Query vectors per ``query_batch_points`` request.
QUERY_BATCH = 64


class VersionIndex:
    """The documents of one alias's version collections, addressed by model version and caller id."""

    def __init__(self, client: QdrantClient, collections: AliasedCollections, *, page: int = PAGE) -> None:
        self.client = client
        self.collections = collections
        self.page = page

    # Reading -----------------------------------------------------------------------------------
    def exists(self, version: str) -> bool:
        return self.collections.exists(self.collections.name_for(version))

    def count(self, version: str, *, exact: bool = True) -> int:
        """Documents in the version's collection (``exact=False``: a server's cheap estimate)."""
        return self.collections.count(self.collections.name_for(version), exact=exact)

    def doc_ids(self, version: str) -> set[str]:
        """Every caller id in the version's collection (a full scroll: for checks and tests)."""
        return {doc_id for doc_id, _ in self._scroll(version, texts=False)}

    def texts(self, version: str, doc_ids: Iterable[str]) -> dict[str, str]:
        """Caller id -> text for the ids the collection holds (missing ones are left out)."""
        ids = list(dict.fromkeys(str(i) for i in doc_ids))
        found: dict[str, str] = {}
        for start in range(0, len(ids), self.page):
            for point in self._retrieve(version, ids[start : start + self.page]):
                payload = point.payload or {}
                found[str(payload.get(DOC_ID_KEY, point.id))] = payload.get(CONTENT_KEY, "")
        return found

    def rank(self, version: str, vectors: np.ndarray, *, k: int = 10, exact: bool = True) -> list[list[str]]:
        """The top-k caller ids for each query vector, by exact search unless told otherwise.

        Exact by default: the loop's scores must not depend on how far a server's HNSW graph has got.
        """
        collection = self.collections.name_for(version)
        rankings: list[list[str]] = []
        for start in range(0, len(vectors), QUERY_BATCH):
            requests = [
                models.QueryRequest(query=vector.tolist(), limit=k, with_payload=[DOC_ID_KEY],
                                    params=models.SearchParams(exact=exact))
                for vector in vectors[start : start + QUERY_BATCH]
            ]
            for response in self.client.query_batch_points(collection, requests=requests):
                rankings.append([str((p.payload or {}).get(DOC_ID_KEY, p.id)) for p in response.points])
        return rankings

    # Building a version from another ----------------------------------------------------------
    def copy(self, source: str, target: str, encode: Encode, *, on_copied: Callable[[int], None] | None = None) -> int:
        """Re-embed every document of version ``source`` into ``target`` (payloads kept as they are).

        Pages through the source without a lock: what writers change meanwhile is brought over by
        :meth:`replay`. ``on_copied(n)`` after each page, for a progress bar. Returns the points copied.
        """
        copied = 0
        offset: Any = None
        source_collection = self.collections.name_for(source)
        while True:
            points, offset = self.client.scroll(source_collection, limit=self.page, offset=offset, with_payload=True,
                                                with_vectors=False)
            if points:
                self._upsert(target, [(p.id, p.payload or {}) for p in points], encode)
                copied += len(points)
                if on_copied is not None:
                    on_copied(len(points))
            if offset is None:
                return copied

    def replay(self, source: str, target: str, doc_ids: Sequence[str], encode: Encode) -> int:
        """Bring ``doc_ids`` in ``target`` to their current state in ``source``: re-embedded, or deleted."""
        for start in range(0, len(doc_ids), self.page):
            chunk = [str(i) for i in doc_ids[start : start + self.page]]
            current = self._retrieve(source, chunk)
            present = {str(p.id) for p in current}
            gone = [pid for pid in map(point_id, chunk) if pid not in present]
            if gone:
                self.client.delete(self.collections.name_for(target), points_selector=models.PointIdsList(points=gone),
                                   wait=True)
            if current:
                self._upsert(target, [(p.id, p.payload or {}) for p in current], encode)
        return len(doc_ids)

    # Verification ------------------------------------------------------------------------------
    def verify_counts(self, source: str, target: str) -> None:
        source_count, target_count = self.count(source), self.count(target)
        if source_count != target_count:
            raise ReindexVerificationError(
                f"{self.collections.name_for(target)} holds {target_count} points but "
                f"{self.collections.name_for(source)} holds {source_count}")

    def verify_copies(self, source: str, target: str, *, sample: int, rng: random.Random) -> None:
        """Same count, and identical documents on a random sample: the copy lost nothing and changed nothing."""
        self.verify_counts(source, target)
        points, _ = self.client.scroll(self.collections.name_for(source), limit=max(sample * 4, 64), with_payload=True)
        points = rng.sample(points, min(sample, len(points)))
        if not points:
            return
        copies = {str(p.id): p for p in self.client.retrieve(self.collections.name_for(target), [p.id for p in points],
                                                              with_payload=True)}
        for point in points:
            copy = copies.get(str(point.id))
            if copy is None or copy.payload != point.payload:
                raise ReindexVerificationError(
                    f"document {(point.payload or {}).get(DOC_ID_KEY, point.id)} differs between "
                    f"{self.collections.name_for(source)} and {self.collections.name_for(target)}")

    def verify_search(self, version: str, encode: Encode, *, probes: int, rng: random.Random) -> None:
        """A few documents, used as queries with the version's model, find themselves in its top 10.

        Meant to run while writers go on (it encodes), so a probe deleted meanwhile is skipped.
        """
        collection = self.collections.name_for(version)
        if self.collections.count(collection) == 0:
            raise ReindexVerificationError(f"{collection} is empty")
        sampled, _ = self.client.scroll(collection, limit=max(probes * 8, 40), with_payload=True)
        sampled = rng.sample(sampled, min(probes, len(sampled)))
        vectors = encode([(p.payload or {}).get(CONTENT_KEY, "") for p in sampled])
        for point, vector in zip(sampled, vectors, strict=True):
            hits = self.client.query_points(collection, query=vector.tolist(), limit=10, with_payload=True).points
            text = (point.payload or {}).get(CONTENT_KEY)
            if any(str(h.id) == str(point.id) or (h.payload or {}).get(CONTENT_KEY) == text for h in hits):
                continue
            if not self.client.retrieve(collection, [point.id]):
                continue  # deleted by a writer since it was sampled
            raise ReindexVerificationError(
                f"document {(point.payload or {}).get(DOC_ID_KEY)} does not find itself in the top 10 of {collection}")

    # Internals ---------------------------------------------------------------------------------
    def _retrieve(self, version: str, doc_ids: Sequence[str]) -> list[Any]:
        return self.client.retrieve(self.collections.name_for(version), [point_id(i) for i in doc_ids],
                                    with_payload=True, with_vectors=False)

    def _scroll(self, version: str, *, texts: bool) -> Iterator[tuple[str, str]]:
        collection = self.collections.name_for(version)
        keys = [DOC_ID_KEY, CONTENT_KEY] if texts else [DOC_ID_KEY]
        offset: Any = None
        while True:
            points, offset = self.client.scroll(collection, limit=self.page, offset=offset, with_payload=keys,
                                                with_vectors=False)
            for p in points:
                payload = p.payload or {}
                yield str(payload.get(DOC_ID_KEY, p.id)), payload.get(CONTENT_KEY, "")
            if offset is None:
                return

    def _upsert(self, version: str, points: list[tuple[Any, dict]], encode: Encode) -> None:
        vectors = encode([payload.get(CONTENT_KEY, "") for _, payload in points])
        self.client.upsert(
            self.collections.name_for(version),
            points=models.Batch(ids=[pid for pid, _ in points], vectors=vectors.tolist(),
                                payloads=[payload for _, payload in points]),
            wait=True,
        )
