"""Adopting a collection made by langchain-qdrant's ``QdrantVectorStore``: ``docs`` -> ``docs__v0001`` + alias.

An app that already has a ``QdrantVectorStore`` collection named ``docs`` cannot point clicktune at it:
clicktune needs ``docs`` for the alias. :func:`import_collection` copies it into ``docs__<CURRENT>``
(caller ids, texts and metadata kept; each point gets clicktune's payload and UUID5 id), verifies the
copy, deletes ``docs`` and creates the alias ``docs`` on the copy, so readers that open ``docs`` keep
working. The stored vectors are copied as they are when a sample re-encoded by our model agrees with
them (cosine >= ``min_cosine``); otherwise every text is re-encoded, and the report says why: another
model, or our model run at another ``max_seq_length`` (:func:`writer_max_seq_length`), which only
changes texts longer than the shorter limit and is fixed by a setting, not by another model.

Crash safety. Qdrant refuses an alias named like an existing collection, so the old collection must be
deleted before the alias can exist: that delete is the commit point, and readers of ``docs`` find
nothing between it and the alias (the switch-over window, measured in the report). Before deleting,
the verified copy gets a marker alias (``docs__import``, see ``collections.import_marker``):
- killed before the marker, or with the marker but before the delete: ``docs`` is intact; the next
  run drops the partial copy (and the marker) and starts again;
- killed after the delete: the next ``AliasedCollections.live()`` in any process (a store's first
  search or write, a re-run of the import, a reindex's reconcile) replaces the marker by the alias.
Crash points: ``import.created``, ``import.copied``, ``import.verified``, ``import.source_deleted``.
Writers of the old collection must stop during an import: a point count checked right before the
delete catches an add or a delete made meanwhile (the import then fails, changing nothing), not an update.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from clicktune.adapters.crashpoints import crash_point
from clicktune.adapters.limits import check_doc_id
from clicktune.adapters.models import VersionEncoder
from clicktune.adapters.progress import PointsProgress
from clicktune.adapters.qdrant.collections import import_marker
from clicktune.adapters.qdrant.documents import (
    ANNOTATIONS_KEY,
    CONTENT_KEY,
    DOC_ID_KEY,
    METADATA_KEY,
    build_payload,
    point_id,
)
from clicktune.adapters.qdrant.errors import (
    CollectionNotFoundError,
    ForeignCollectionError,
    ImportVerificationError,
)
from clicktune.adapters.qdrant.handle import IndexHandle

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ForeignLayout:
    """Where a langchain-qdrant collection keeps texts, metadata and (maybe) a dense vector."""

    collection: str
    content_key: str = CONTENT_KEY
    metadata_key: str = METADATA_KEY
    #: "" for the unnamed vector, a name, or None when there is no dense vector to copy.
    vector_name: str | None = ""
    dimension: int | None = None


def read_layout(
    client: QdrantClient, collection: str, *, content_key: str = CONTENT_KEY, metadata_key: str = METADATA_KEY,
    vector_name: str | None = None,
) -> ForeignLayout:
    """The collection's dense vector: ``vector_name`` if given ("" = unnamed), else the only one it has."""
    vectors = client.get_collection(collection).config.params.vectors
    if isinstance(vectors, models.VectorParams):
        if vector_name:
            raise ForeignCollectionError(f"{collection} has one unnamed vector, no vector {vector_name!r}: "
                                         "drop --vector-name (vector_name=)")
        return ForeignLayout(collection, content_key, metadata_key, "", vectors.size)
    named = dict(vectors or {})
    if vector_name is None and len(named) <= 1:
        vector_name = next(iter(named), None)
    if vector_name is None:
        if not named:  # sparse only: nothing dense to copy, the texts are re-encoded
            return ForeignLayout(collection, content_key, metadata_key, None, None)
        raise ForeignCollectionError(f"{collection} has the vectors {sorted(named)}: pick the dense one to copy "
                                     "with --vector-name (vector_name=)")
    if vector_name not in named:
        raise ForeignCollectionError(f"{collection} has no vector {vector_name!r}; it has "
                                     f"{sorted(named) or 'an unnamed one'}: fix --vector-name (vector_name=)")
    return ForeignLayout(collection, content_key, metadata_key, vector_name, named[vector_name].size)


def adopted_point(point: Any, layout: ForeignLayout) -> tuple[str, dict[str, Any]]:
    """Our point id and payload for a foreign point: its id becomes the caller id (``doc_id``), its text
    and metadata move to clicktune's keys, any other payload key is kept as it is."""
    payload = dict(point.payload or {})
    where = f"point {point.id} of {layout.collection}"
    if layout.content_key not in payload:
        raise ForeignCollectionError(
            f"{where} has no payload key {layout.content_key!r} (it has {sorted(payload)}): pass the key "
            "that holds the text with --content-key (content_payload_key=)")
    text, metadata = payload.pop(layout.content_key), payload.pop(layout.metadata_key, None)
    if not isinstance(text, str):
        raise ForeignCollectionError(f"{where}: {layout.content_key!r} holds a {type(text).__name__}, not a text")
    if metadata is not None and not isinstance(metadata, dict):
        raise ForeignCollectionError(f"{where}: {layout.metadata_key!r} holds a {type(metadata).__name__}, not a "
                                     "dict: pass the key that holds the metadata with --metadata-key")
    if metadata and ANNOTATIONS_KEY in metadata:
        raise ForeignCollectionError(f"{where}: its metadata has the key {ANNOTATIONS_KEY!r}, which clicktune "
                                     "reserves for its annotations of search results: rename that key first")
    ours = build_payload(text, metadata, check_doc_id(str(point.id), what=where))
    taken = sorted(set(payload) & set(ours))
    if taken:
        raise ForeignCollectionError(f"{where} has the payload key(s) {taken}, which clicktune uses; rename them, "
                                     "or name them with --content-key / --metadata-key")
    return point_id(ours[DOC_ID_KEY]), {**payload, **ours}


def stored_vector(point: Any, layout: ForeignLayout) -> list[float] | None:
    vector = point.vector
    if isinstance(vector, dict):
        vector = vector.get(layout.vector_name or "")
    return list(vector) if isinstance(vector, list) and len(vector) == layout.dimension else None


def foreign_pages(client: QdrantClient, layout: ForeignLayout, *, vectors: bool, page: int) -> Iterator[list[Any]]:
    offset: Any = None
    while True:
        points, offset = client.scroll(layout.collection, limit=page, offset=offset, with_payload=True,
                                       with_vectors=vectors)
        if points:
            yield points
        if offset is None:
            return


def vectors_match(client: QdrantClient, layout: ForeignLayout, encoder: VersionEncoder, *, sample: int,
                  min_cosine: float, batch_size: int) -> tuple[bool, str, float | None]:
    """Were the stored vectors made by ``encoder``'s model? Re-encode a sample and compare (cosine)."""
    if layout.vector_name is None:
        return False, "no dense vector to copy", None
    if layout.dimension != encoder.dimension:
        return False, f"its vectors have {layout.dimension} dimensions, {encoder.version}'s {encoder.dimension}", None
    points, _ = client.scroll(layout.collection, limit=sample, with_payload=True, with_vectors=True)
    pairs = [(stored_vector(p, layout), adopted_point(p, layout)[1][CONTENT_KEY]) for p in points]
    if not pairs:
        return True, "empty collection", None
    if any(v is None for v, _ in pairs):
        return False, f"some points have no {layout.vector_name or 'unnamed'} vector", None
    stored = np.asarray([v for v, _ in pairs], dtype=np.float32)
    stored /= np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-12)
    ours = encoder.encode([t for _, t in pairs], batch_size=batch_size)
    worst = float(np.min(np.sum(stored * ours, axis=1)))
    if worst >= min_cosine:
        return True, f"made by {encoder.version}'s model: lowest cosine {worst:.5f} over {len(pairs)} points", worst
    texts = [t for _, t in pairs]
    writer = writer_max_seq_length(encoder, texts, stored, min_cosine=min_cosine, batch_size=batch_size)
    if writer is not None:
        ours = encoder.model.max_seq_length
        return False, (f"made by {encoder.version}'s model, but at max_seq_length={writer}, not {ours} as "
                       f"{encoder.version} runs: texts over {min(writer, ours)} tokens embed differently, so every text "
                       f"is re-encoded at {ours}; to copy the vectors instead, import into a new home with "
                       f"CLICKTUNE_MAX_SEQ_LENGTH={writer}"), worst
    return False, f"not made by {encoder.version}'s model: lowest cosine {worst:.4f} < {min_cosine}", worst


#: Token limits a writer commonly runs a model at, besides the tokenizer's own limit.
COMMON_MAX_SEQ_LENGTHS = (128, 256, 384, 512)


def writer_max_seq_length(encoder: VersionEncoder, texts: list[str], stored: np.ndarray, *, min_cosine: float,
                          batch_size: int) -> int | None:
    """The token limit at which ``encoder``'s model gives ``stored`` for ``texts``, if another than its own.

    The same weights truncate texts at their ``max_seq_length``: a collection written with the same
    model at another limit differs only on texts longer than the shorter limit. No collection records
    its writer's limit, so the common ones (and the tokenizer's, up to the model's position
    embeddings) are tried on the sample.
    """
    model = encoder.model
    ours = model.max_seq_length
    config = getattr(getattr(model[0], "auto_model", None), "config", None) if len(model) else None
    positions = int(getattr(config, "max_position_embeddings", 0) or 0) or max(COMMON_MAX_SEQ_LENGTHS)
    tokenizer_limit = int(getattr(getattr(model, "tokenizer", None), "model_max_length", 0) or 0)
    lengths = sorted({n for n in (*COMMON_MAX_SEQ_LENGTHS, tokenizer_limit) if 0 < n <= positions and n != ours})
    for length in lengths:
        vectors = encoder.encode_at_length(texts, length, batch_size=batch_size)
        if float(np.min(np.sum(stored * vectors, axis=1))) >= min_cosine:
            return length
    return None


@dataclass
class ImportReport:
    """What an import did. ``status``: ``imported``, ``finished`` (a run killed after its delete was
    completed) or ``already`` (the name is already clicktune's alias: nothing to do)."""

    source: str
    target: str | None = None
    version: str | None = None
    status: str = "imported"
    points: int = 0
    #: ``copied`` (stored vectors kept) or ``re-encoded``; why, and the sample's lowest cosine.
    vectors: str | None = None
    reason: str | None = None
    min_cosine: float | None = None
    #: Texts encoded to copy points (not counting the sample): 0 when every vector was copied.
    encoded: int = 0
    #: Seconds from the old collection's delete to the alias's creation: readers of the name found nothing.
    window_seconds: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def import_collection(
    handle: IndexHandle,
    *,
    content_key: str = CONTENT_KEY,
    metadata_key: str = METADATA_KEY,
    vector_name: str | None = None,
    sample: int = 32,
    min_cosine: float = 0.999,
    page: int = 256,
    show_progress: bool | None = None,
    guard: Callable[[], None] | None = None,
    seed: int = 0,
) -> ImportReport:
    """Adopt the langchain-qdrant collection named like ``handle``'s alias (module docstring).

    Idempotent: on a name that is already clicktune's alias it does nothing (``status="already"``), and
    it finishes or restarts what a killed run left. ``guard`` (the alias's lease) runs right before the
    old collection is deleted. Raises :class:`CollectionNotFoundError`, :class:`ForeignCollectionError`
    or :class:`ImportVerificationError` (the old collection then left as it was).
    """
    client, collections = handle.client, handle.collections
    name = collections.alias
    aliases = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
    existing = {c.name for c in client.get_collections().collections}
    marker = aliases.get(import_marker(name))
    if name in aliases or (name not in existing and marker is not None):
        live = collections.require_live()  # finishes a run killed after its delete
        if marker is not None and name in aliases:
            client.update_collection_aliases(change_aliases_operations=[
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=import_marker(name)))])
        status = "finished" if marker is not None else "already"
        return ImportReport(source=name, target=live.collection, version=live.version, status=status,
                            points=collections.count(live.collection))
    if name not in existing:
        where = handle.settings.qdrant_url or handle.settings.resolved_qdrant_path
        raise CollectionNotFoundError(f"there is no collection {name!r} to import on the Qdrant at {where}: check "
                                      "the name, and CLICKTUNE_QDRANT_URL / CLICKTUNE_QDRANT_PATH")
    layout = read_layout(client, name, content_key=content_key, metadata_key=metadata_key, vector_name=vector_name)
    version = handle.registry.bootstrap()  # a fresh home: v0001 from the base model
    target = collections.name_for(version)
    if marker is not None or target in existing:  # left by a run that died before deleting the old collection
        log.warning("dropping %s, left by an import that did not finish; %s is intact", target, name)
        _undo(client, name, target)
    show = handle.settings.show_progress() if show_progress is None else show_progress
    return _Import(handle, layout, version, target, page=page, show_progress=show, guard=guard,
                   rng=random.Random(seed)).run(sample=sample, min_cosine=min_cosine)


def _undo(client: QdrantClient, name: str, target: str) -> None:
    """Drop a copy that was never committed: the marker alias (if any), then the collection."""
    if any(a.alias_name == import_marker(name) for a in client.get_aliases().aliases):
        client.update_collection_aliases(change_aliases_operations=[
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=import_marker(name)))])
    if any(c.name == target for c in client.get_collections().collections):
        client.delete_collection(target)


class _Import:
    def __init__(self, handle: IndexHandle, layout: ForeignLayout, version: str, target: str, *, page: int,
                 show_progress: bool, guard: Callable[[], None] | None, rng: random.Random) -> None:
        self.handle, self.client, self.layout = handle, handle.client, layout
        self.version, self.target, self.page = version, target, page
        self.show_progress, self.guard, self.rng = show_progress, guard, rng
        self.encoder = handle.encoder(version)
        self.batch_size = handle.settings.batch_size
        self.report = ImportReport(source=layout.collection, target=target, version=version)

    def run(self, *, sample: int, min_cosine: float) -> ImportReport:
        report, timings, started = self.report, self.report.seconds, time.perf_counter()
        copy, report.reason, report.min_cosine = vectors_match(
            self.client, self.layout, self.encoder, sample=sample, min_cosine=min_cosine, batch_size=self.batch_size)
        report.vectors = "copied" if copy else "re-encoded"
        log.info("import %s -> %s: vectors %s (%s)", self.layout.collection, self.target, report.vectors, report.reason)
        deleted = False
        try:
            self.handle.collections.create(self.version, self.encoder.dimension, bulk_load=True,
                                           copy_of=self.layout.collection)
            crash_point("import.created")
            t = time.perf_counter()
            report.points = self._copy_all(copy)
            self.handle.collections.finish_bulk_load(self.target)
            timings["copy"] = time.perf_counter() - t
            crash_point("import.copied")
            t = time.perf_counter()
            self._verify()
            timings["verify"] = time.perf_counter() - t
            if not copy:
                self.handle.registry.update_info(self.version, index_precision=self.encoder.precision)
            # The durable record that the copy is verified: from here a run killed after the delete is
            # finished by pointing the alias at it (collections.live()).
            self.client.update_collection_aliases(change_aliases_operations=[models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=self.target,
                                                alias_name=import_marker(self.layout.collection)))])
            crash_point("import.verified")
            self._check_counts()  # writers of the old collection since the copy would be lost
            if self.guard is not None:
                self.guard()
            t = time.perf_counter()
            self.client.delete_collection(self.layout.collection)
            deleted = True
            crash_point("import.source_deleted")
            self.handle.collections.finish_import(self.target)
            report.window_seconds = time.perf_counter() - t
        except Exception:
            if not deleted:  # the old collection is intact: leave nothing half-made beside it
                _undo(self.client, self.layout.collection, self.target)
            raise
        timings["total"] = time.perf_counter() - started
        log.info("import %s -> %s: %d points, vectors %s, alias %s -> %s; readers of %s had no collection for "
                 "%.1f ms", self.layout.collection, self.target, report.points, report.vectors,
                 self.layout.collection, self.target, self.layout.collection, 1000 * report.window_seconds)
        return report

    def _copy_all(self, copy: bool) -> int:
        total = self.handle.collections.count(self.layout.collection)
        with PointsProgress(f"import {self.layout.collection} -> {self.target}", total, show_bar=self.show_progress,
                            log=log, detail=f" (vectors {'copied' if copy else 're-encoded'})", unit="doc") as progress:
            for points in foreign_pages(self.client, self.layout, vectors=copy, page=self.page):
                self._upsert(points, copy)
                progress.update(len(points))
        return progress.done

    def _upsert(self, points: list[Any], copy: bool) -> None:
        adopted = [adopted_point(p, self.layout) for p in points]
        vectors = [stored_vector(p, self.layout) if copy else None for p in points]
        missing = [i for i, v in enumerate(vectors) if v is None]
        if missing:
            encoded = self.encoder.encode([adopted[i][1][CONTENT_KEY] for i in missing], batch_size=self.batch_size)
            for i, vector in zip(missing, encoded, strict=True):
                vectors[i] = vector.tolist()
            self.report.encoded += len(missing)
        self.client.upsert(self.target, points=models.Batch(
            ids=[pid for pid, _ in adopted], vectors=vectors, payloads=[payload for _, payload in adopted]), wait=True)

    def _check_counts(self) -> None:
        source, target = self.handle.collections.count(self.layout.collection), self.handle.collections.count(self.target)
        if source != target:
            raise ImportVerificationError(
                f"{self.target} holds {target} points but {self.layout.collection} holds {source}: was it written "
                f"to during the import? Stop its writers and import again ({self.layout.collection} is unchanged)")

    def _verify(self, queries: int = 5) -> None:
        """Same count; payloads as adopted on a sample; a few documents, as queries, find themselves."""
        self._check_counts()
        points, _ = self.client.scroll(self.layout.collection, limit=256, with_payload=True)
        points = self.rng.sample(points, min(32, len(points)))
        expected = dict(adopted_point(p, self.layout) for p in points)
        copies = {str(p.id): p for p in self.client.retrieve(self.target, list(expected), with_payload=True)}
        for pid, payload in expected.items():
            if pid not in copies or copies[pid].payload != payload:
                raise ImportVerificationError(f"document {payload[DOC_ID_KEY]} differs between {self.layout.collection} "
                                              f"and {self.target}; {self.layout.collection} is unchanged")
        probes = list(expected.items())[:queries]
        vectors = self.encoder.encode([payload[CONTENT_KEY] for _, payload in probes], batch_size=self.batch_size)
        for (pid, payload), vector in zip(probes, vectors, strict=True):
            hits = self.client.query_points(self.target, query=vector.tolist(), limit=10, with_payload=True).points
            if not any(str(h.id) == pid or (h.payload or {}).get(CONTENT_KEY) == payload[CONTENT_KEY] for h in hits):
                raise ImportVerificationError(
                    f"document {payload[DOC_ID_KEY]} does not find itself in the top 10 of {self.target}: its copied "
                    f"vectors do not fit {self.version}'s model; {self.layout.collection} is unchanged")
