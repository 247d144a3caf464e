"""qdrant-client's models <-> qdrant_edge's types: vectors, points, selectors and filters.

Everything here is a pure function. What qdrant_edge cannot express raises
``EdgeUnsupportedError`` (or ``EdgeUnsupportedFilterError`` for a filter condition) naming the
feature, so a query is never answered with a silently different meaning.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import qdrant_edge as edge
from pydantic_core import to_jsonable_python
from qdrant_client import models

from clicktune.adapters.qdrant.errors import EdgeUnsupportedError, EdgeUnsupportedFilterError

DISTANCES = {
    models.Distance.COSINE: edge.Distance.Cosine,
    models.Distance.DOT: edge.Distance.Dot,
    models.Distance.EUCLID: edge.Distance.Euclid,
    models.Distance.MANHATTAN: edge.Distance.Manhattan,
}

#: Below this much vector data per segment (KB; about 6,600 384-dim float32 vectors) the edge engine
#: searches exactly and builds no graph; above it, HNSW. Qdrant's server default, kept: measured on the
#: 2-core box (benchmarks/embedded_search.py), 100,000 MiniLM vectors of SciFact sentences get recall@10
#: 0.997 at about 1 ms through the graph, where exact search takes about 12 ms. (Random vectors, the
#: worst case for any graph, get 0.14: the benchmark shows both.) A collection may name its own.
EXACT_UP_TO_KB = 10_000
#: The edge engine's defaults, reported by ``get_collection`` and used when a collection names none.
DEFAULT_HNSW = models.HnswConfig(m=16, ef_construct=100, full_scan_threshold=EXACT_UP_TO_KB)
DEFAULT_OPTIMIZERS = models.OptimizersConfigDiff(indexing_threshold=EXACT_UP_TO_KB)


# Collection configuration ------------------------------------------------------------------------
def vector_params(params: models.VectorParams) -> edge.EdgeVectorParams:
    unsupported = [name for name in ("quantization_config", "multivector_config", "datatype")
                   if getattr(params, name) is not None]
    if unsupported:
        raise EdgeUnsupportedError(f"create_collection: VectorParams.{unsupported[0]} is not supported by "
                                   "the edge engine")
    if params.hnsw_config is not None:
        raise EdgeUnsupportedError("create_collection: a per-vector hnsw_config is not supported by the edge "
                                   "engine; pass hnsw_config for the collection")
    return edge.EdgeVectorParams(size=params.size, distance=DISTANCES[params.distance], on_disk=params.on_disk)


def quantization(config: models.QuantizationConfig | None) -> edge.ScalarQuantizationConfig | None:
    """Scalar (int8) quantization as qdrant_edge takes it; product and binary raise EdgeUnsupportedError."""
    if config is None:
        return None
    if not isinstance(config, models.ScalarQuantization):
        raise EdgeUnsupportedError(f"create_collection: {type(config).__name__} is not supported by the edge "
                                   "engine (ScalarQuantization is)")
    scalar = config.scalar
    return edge.ScalarQuantizationConfig(edge.ScalarType.Int8, quantile=scalar.quantile,
                                         always_ram=scalar.always_ram)


def edge_config(vectors: models.VectorParams | Mapping[str, models.VectorParams], hnsw: models.HnswConfig,
                optimizers: models.OptimizersConfigDiff | None,
                quantization_config: models.QuantizationConfig | None = None) -> edge.EdgeConfig:
    """The shard's configuration for the collection's vectors, HNSW, optimizer and quantization settings."""
    if isinstance(vectors, Mapping):
        dense: Any = {name: vector_params(params) for name, params in vectors.items()}
    else:
        dense = vector_params(vectors)
    hnsw_config = edge.HnswIndexConfig(m=hnsw.m, ef_construct=hnsw.ef_construct,
                                       full_scan_threshold=hnsw.full_scan_threshold,
                                       max_indexing_threads=hnsw.max_indexing_threads or 0)
    optimizer_config = None
    if optimizers is not None:
        optimizer_config = edge.EdgeOptimizersConfig(
            deleted_threshold=optimizers.deleted_threshold,
            vacuum_min_vector_number=optimizers.vacuum_min_vector_number,
            default_segment_number=optimizers.default_segment_number,
            max_segment_size=optimizers.max_segment_size,
            indexing_threshold=optimizers.indexing_threshold,
        )
    return edge.EdgeConfig(vectors=dense, hnsw_config=hnsw_config, optimizers=optimizer_config,
                           quantization_config=quantization(quantization_config))


# Points ------------------------------------------------------------------------------------------
def point_id(value: models.ExtendedPointId) -> int | str:
    """An id as qdrant_edge takes it; a UUID in any spelling Qdrant accepts becomes its canonical form."""
    if isinstance(value, bool):
        raise ValueError(f"point id {value!r} is neither an unsigned integer nor a UUID")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"point id {value} is neither an unsigned integer nor a UUID")
        return value
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"point id {value!r} is neither an unsigned integer nor a UUID") from None


def known_ids(values: Iterable[models.ExtendedPointId]) -> list[int | str]:
    """The ids of ``values`` that can name a point; a read or delete by a malformed id finds nothing (as in
    local mode, where langchain's ``get_by_ids(["1"])`` and ``delete(["1"])`` succeed finding nothing)."""
    found = []
    for value in values:
        try:
            found.append(point_id(value))
        except ValueError:
            continue
    return found


def point_id_out(value: Any) -> int | str:
    """An id as qdrant-client returns it: an int, or a UUID as its canonical string."""
    return str(value) if isinstance(value, uuid.UUID) else value


def _vector(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        out = {}
        for name, vector in value.items():
            if isinstance(vector, models.SparseVector):
                raise EdgeUnsupportedError("upsert: sparse vectors are not supported by the edge engine")
            out[name] = _vector(vector)
        return out
    if isinstance(value, (models.SparseVector, models.Document, models.Image, models.InferenceObject)):
        raise EdgeUnsupportedError(f"upsert: {type(value).__name__} vectors are not supported by the edge engine")
    return [float(x) for x in value]


def payload_in(payload: Mapping[str, Any] | None) -> dict[str, Any]:
    """Stored as JSON, as Qdrant stores it: datetimes and UUIDs become strings."""
    return to_jsonable_python(dict(payload)) if payload else {}


def points(batch: models.Batch | Sequence[models.PointStruct]) -> list[edge.Point]:
    if isinstance(batch, models.Batch):
        ids = list(batch.ids)
        vectors = batch.vectors
        if isinstance(vectors, Mapping):
            per_point: list[Any] = [{name: vectors[name][i] for name in vectors} for i in range(len(ids))]
        else:
            per_point = list(vectors)
        payloads = list(batch.payloads) if batch.payloads is not None else [None] * len(ids)
        if not len(per_point) == len(ids) == len(payloads):
            raise ValueError("Batch: ids, vectors and payloads differ in length")
        return [edge.Point(point_id(i), _vector(v), payload_in(p))
                for i, v, p in zip(ids, per_point, payloads, strict=True)]
    return [edge.Point(point_id(p.id), _vector(p.vector), payload_in(p.payload)) for p in batch]


def with_payload(value: models.WithPayloadInterface | None) -> Any:
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, models.PayloadSelectorInclude):
        return edge.PayloadSelector.Include(list(value.include))
    if isinstance(value, models.PayloadSelectorExclude):
        return edge.PayloadSelector.Exclude(list(value.exclude))
    return edge.PayloadSelector.Include(list(value))


def with_vectors(value: models.WithVector | None) -> Any:
    if value is None or isinstance(value, bool):
        return bool(value)
    return list(value)


def vector_out(value: Any, named: bool) -> Any:
    """As qdrant_edge answers, which is as qdrant-client answers: a list for the unnamed vector (a
    collection of ``VectorParams`` or of ``{"": VectorParams}``, as langchain-qdrant creates them), a dict
    for named ones."""
    return dict(value) if isinstance(value, Mapping) else value


def record(raw: Any, named: bool) -> models.Record:
    return models.Record(id=point_id_out(raw.id), payload=raw.payload, vector=vector_out(raw.vector, named))


def scored(raw: Any, named: bool) -> models.ScoredPoint:
    return models.ScoredPoint(id=point_id_out(raw.id), version=raw.version, score=raw.score,
                              payload=raw.payload, vector=vector_out(raw.vector, named))


def search_params(params: models.SearchParams | None) -> edge.SearchParams | None:
    if params is None:
        return None
    if params.acorn is not None or params.idf is not None:
        raise EdgeUnsupportedError("query_points: search_params acorn/idf are not supported by the edge engine")
    rescoring = params.quantization
    return edge.SearchParams(hnsw_ef=params.hnsw_ef, exact=bool(params.exact),
                             indexed_only=bool(params.indexed_only),
                             quantization=None if rescoring is None else edge.QuantizationSearchParams(
                                 ignore=bool(rescoring.ignore), rescore=rescoring.rescore,
                                 oversampling=rescoring.oversampling))


# Queries -----------------------------------------------------------------------------------------
def query_request(shard: edge.EdgeShard, *, query: Any, using: str | None,
                  prefetch: Any, query_filter: models.Filter | None, search_params: models.SearchParams | None,
                  limit: int | None, offset: int | None, with_payload: Any, with_vectors: Any,
                  score_threshold: float | None, lookup_from: Any = None) -> edge.QueryRequest:
    """A nearest-vector query as qdrant_edge takes it; a point id as the query searches with that point's
    vector and leaves the point out, as Qdrant does. Other query kinds raise EdgeUnsupportedError."""
    if prefetch:
        raise EdgeUnsupportedError("query_points: prefetch is not supported by the edge engine")
    if lookup_from is not None:
        raise EdgeUnsupportedError("query_points: lookup_from is not supported by the edge engine")
    limit = 10 if limit is None else limit
    if limit < 1:
        raise ValueError(f"limit value {limit} is invalid. Must be 1 or larger.")
    if offset is not None and offset < 0:
        raise ValueError(f"offset value {offset} is invalid. Must be 0 or larger.")
    if query is None:
        raise EdgeUnsupportedError("query_points: a query without a vector is not supported by the edge engine")
    if not isinstance(query, models.NearestQuery) or query.mmr is not None:
        raise EdgeUnsupportedError(f"query_points: {type(query).__name__} is not supported by the edge engine "
                                   "(only nearest-vector queries are)")
    nearest, effective_filter = query.nearest, query_filter
    if isinstance(nearest, (int, str, uuid.UUID)):  # a point id: search with its vector, without it
        found = shard.retrieve([point_id(nearest)], False, True)
        if not found:
            raise ValueError(f"Point {nearest} is not found in the collection")
        vector = found[0].vector
        nearest = vector.get(using or "") if isinstance(vector, Mapping) else vector
        exclude = models.HasIdCondition(has_id=[point_id(query.nearest)])
        effective_filter = models.Filter(must=[query_filter] if query_filter else None, must_not=[exclude])
    elif hasattr(nearest, "tolist"):
        nearest = nearest.tolist()
    if not isinstance(nearest, list) or (nearest and not isinstance(nearest[0], (int, float))):
        raise EdgeUnsupportedError(f"query_points: a {type(nearest).__name__} query vector is not supported by "
                                   "the edge engine (dense vectors only)")
    return edge.QueryRequest(
        limit=limit, offset=offset or 0,
        query=edge.Query.Nearest([float(x) for x in nearest], using=using),
        filter=filter_(effective_filter), score_threshold=score_threshold,
        params=_search_params(search_params),
        with_payload=_with_payload(with_payload), with_vector=_with_vectors(with_vectors))


_search_params, _with_payload, _with_vectors = search_params, with_payload, with_vectors  # shadowed above


# Filters -----------------------------------------------------------------------------------------
def _conditions(value: Any) -> list[Any] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else [value]
    return [condition(item) for item in items]


def filter_(value: models.Filter | None) -> edge.Filter | None:
    """Translate a filter, nested ones included; an unsupported condition raises EdgeUnsupportedFilterError."""
    if value is None:
        return None
    min_should = None
    if value.min_should is not None:
        min_should = edge.MinShould(conditions=_conditions(value.min_should.conditions) or [],
                                    min_count=value.min_should.min_count)
    return edge.Filter(must=_conditions(value.must), should=_conditions(value.should),
                       must_not=_conditions(value.must_not), min_should=min_should)


def _match(match: Any) -> Any:
    if isinstance(match, models.MatchValue):
        return edge.MatchValue(match.value)
    if isinstance(match, models.MatchAny):
        return edge.MatchAny(list(match.any))
    if isinstance(match, models.MatchExcept):
        return edge.MatchExcept(list(match.except_))
    if isinstance(match, models.MatchText):
        return edge.MatchText(match.text)
    if isinstance(match, models.MatchTextAny):
        return edge.MatchTextAny(match.text_any)
    if isinstance(match, models.MatchPhrase):
        return edge.MatchPhrase(match.phrase)
    if isinstance(match, models.MatchPrefix):
        return edge.MatchPrefix(match.prefix)
    if isinstance(match, models.MatchSubstring):
        return edge.MatchSubstring(match.substring)
    raise EdgeUnsupportedFilterError(f"filter: match {type(match).__name__} is not supported by the edge engine")


def _range(value: models.Range | models.DatetimeRange) -> Any:
    if isinstance(value, models.DatetimeRange):
        def text(bound: datetime | str | None) -> str | None:
            return bound.isoformat() if isinstance(bound, datetime) else bound
        return edge.RangeDateTime(gte=text(value.gte), gt=text(value.gt), lte=text(value.lte), lt=text(value.lt))
    return edge.RangeFloat(gte=value.gte, gt=value.gt, lte=value.lte, lt=value.lt)


def condition(value: Any) -> Any:
    if isinstance(value, models.Filter):
        return filter_(value)
    if isinstance(value, models.FieldCondition):
        geo = [name for name in ("geo_bounding_box", "geo_radius", "geo_polygon") if getattr(value, name)]
        if geo:
            raise EdgeUnsupportedFilterError(f"filter: {geo[0]} conditions are not supported by the edge engine")
        if value.values_count is not None:
            vc = value.values_count
            return edge.FieldCondition(value.key, values_count=edge.ValuesCount(lt=vc.lt, gt=vc.gt, lte=vc.lte,
                                                                                 gte=vc.gte))
        return edge.FieldCondition(
            value.key,
            match=_match(value.match) if value.match is not None else None,
            range=_range(value.range) if value.range is not None else None,
            is_empty=value.is_empty,
            is_null=value.is_null,
        )
    if isinstance(value, models.IsEmptyCondition):
        return edge.IsEmptyCondition(value.is_empty.key)
    if isinstance(value, models.IsNullCondition):
        return edge.IsNullCondition(value.is_null.key)
    if isinstance(value, models.HasIdCondition):
        return edge.HasIdCondition(set(known_ids(value.has_id)))
    if isinstance(value, models.HasVectorCondition):
        return edge.HasVectorCondition(value.has_vector)
    if isinstance(value, models.NestedCondition):
        return edge.NestedCondition(value.nested.key, filter_(value.nested.filter))
    raise EdgeUnsupportedFilterError(f"filter: {type(value).__name__} is not supported by the edge engine")


def selector(value: Any) -> tuple[list[int | str] | None, edge.Filter | None]:
    """A points selector as (ids, None) or (None, filter); an empty id list is an error, as on the server."""
    if isinstance(value, models.PointIdsList):
        value = value.points
    if isinstance(value, models.FilterSelector):
        value = value.filter
    if isinstance(value, models.Filter):
        return None, filter_(value)
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError("Empty update request")
        return known_ids(value), None
    raise ValueError(f"Unsupported selector type: {type(value)}")
