"""What LangChain users get back: annotations that never touch their keys, 0-1 relevance scores as
langchain-qdrant gives them, and searches by vector against the version that made the vector."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator

import pytest
from langchain_qdrant import QdrantVectorStore

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.errors import (
    ConfigurationError,
    InvalidDocumentsError,
    InvalidVersionError,
    VectorDimensionError,
    VersionNotIndexedError,
)
from clicktune.adapters.qdrant import CollectionDocumentStore
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine

DOCS = {
    "fracture-1": "Vitamin D supplements lower the risk of hip fractures.",
    "contract-7": "A contract without consideration is void.",
    "rates-3": "The central bank raised rates by fifty basis points.",
}
QUERY = "does vitamin D prevent broken bones?"


@pytest.fixture
def store(settings: ClicktuneSettings) -> Iterator[ClicktuneVectorStore]:
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        store.add_texts(list(DOCS.values()), metadatas=[{"rank": "gold", "model_version": "draft 2"}, {}, {}],
                        ids=list(DOCS))
        yield store


# Annotations ---------------------------------------------------------------------------------------
def test_annotations_live_under_one_key_and_user_keys_are_kept(store: ClicktuneVectorStore) -> None:
    docs = store.similarity_search(QUERY, k=3)
    top = docs[0]
    assert top.id == "fracture-1"
    assert top.metadata["rank"] == "gold" and top.metadata["model_version"] == "draft 2"
    assert [d.metadata["clicktune"]["rank"] for d in docs] == [1, 2, 3]
    annotations = top.metadata["clicktune"]
    assert annotations["model_version"] == annotations["query_model_version"] == "v0001"
    assert store.feedback.get_impression(annotations["search_id"]) is not None
    assert set(docs[1].metadata) == {"clicktune"}


def test_add_texts_refuses_the_reserved_annotations_key(store: ClicktuneVectorStore) -> None:
    with pytest.raises(InvalidDocumentsError, match="'clicktune'.*reserves"):
        store.add_texts(["x"], metadatas=[{"clicktune": 1}], ids=["x"])
    assert store.get_by_ids(["x"]) == []


# Relevance scores ----------------------------------------------------------------------------------
def test_relevance_scores_are_langchain_qdrants_cosine_mapping(store: ClicktuneVectorStore) -> None:
    cosines = {d.id: s for d, s in store.similarity_search_with_score(QUERY, k=3)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # LangChain warns when a relevance score is outside [0, 1]
        relevance = {d.id: s for d, s in store.similarity_search_with_relevance_scores(QUERY, k=3)}
    assert min(cosines.values()) < 0  # a raw cosine would have been out of range
    mapping = QdrantVectorStore._cosine_relevance_score_fn
    assert relevance == pytest.approx({i: mapping(c) for i, c in cosines.items()})
    assert all(0 <= s <= 1 for s in relevance.values())


def test_async_relevance_scores_and_threshold_retriever(store: ClicktuneVectorStore) -> None:
    scored = asyncio.run(store.asimilarity_search_with_relevance_scores(QUERY, k=3))
    assert scored[0][0].id == "fracture-1" and 0.5 < scored[0][1] <= 1
    retriever = store.as_retriever(search_type="similarity_score_threshold",
                                   search_kwargs={"k": 3, "score_threshold": 0.7})
    assert [d.id for d in asyncio.run(retriever.ainvoke(QUERY))] == ["fracture-1"]
    assert [d.id for d in retriever.invoke(QUERY)] == ["fracture-1"]


# Searches by vector --------------------------------------------------------------------------------
def test_search_by_vector_of_the_live_version_matches_the_text_search(store: ClicktuneVectorStore) -> None:
    vector = store.embeddings.embed_query(QUERY)
    by_text = store.similarity_search_with_score(QUERY, k=3, log_impression=False)
    by_vector = store.similarity_search_with_score_by_vector(vector, k=3)
    assert [(d.id, pytest.approx(s)) for d, s in by_text] == [(d.id, s) for d, s in by_vector]
    assert [d.id for d in store.similarity_search_by_vector(vector, k=2, model_version="v0001")] == \
        ["fracture-1", by_text[1][0].id]
    assert [d.id for d in store.max_marginal_relevance_search_by_vector(vector, k=2, fetch_k=3)][0] == "fracture-1"
    assert [d.id for d in asyncio.run(store.asimilarity_search_by_vector(vector, k=1))] == ["fracture-1"]
    assert [d.id for d in asyncio.run(store.amax_marginal_relevance_search_by_vector(vector, k=1))] == ["fracture-1"]


def test_search_by_vector_is_annotated_but_never_logged(store: ClicktuneVectorStore) -> None:
    docs = store.similarity_search_by_vector(store.embeddings.embed_query(QUERY), k=2)
    assert [d.metadata["clicktune"] for d in docs] == [
        {"search_id": None, "rank": r, "model_version": "v0001", "query_model_version": "v0001"} for r in (1, 2)]
    assert docs[0].metadata["rank"] == "gold"
    assert store.feedback.stats()["impressions"] == 0
    with pytest.raises(ConfigurationError, match="not logged"):
        store.similarity_search_by_vector(store.embeddings.embed_query(QUERY), user_id="alice")


def test_search_by_vector_names_the_version_that_made_it(store: ClicktuneVectorStore, variant_model) -> None:
    """``model_version=`` searches that version's collection (here a candidate's, not live)."""
    assert store.registry.register(variant_model, parent="v0001") == "v0002"
    v2 = store.embeddings.for_version("v0002")
    other = store.collections.create("v0002", v2.dimension)
    CollectionDocumentStore(client=store.client, collection_name=other, embedding=v2,
                           validate_collection_config=False).add_texts(["Calcium and bone density."], ids=["bone-9"])
    [doc] = store.similarity_search_by_vector(v2.embed_query(QUERY), k=1, model_version="v0002")
    assert doc.id == "bone-9" and doc.metadata["clicktune"]["model_version"] == "v0002"
    vector = store.embeddings.embed_query(QUERY)
    assert store.similarity_search_by_vector(vector, k=1)[0].id == "fracture-1"  # default: the live version


def test_search_by_vector_refuses_an_unknown_version_or_a_wrong_length(store: ClicktuneVectorStore) -> None:
    vector = store.embeddings.embed_query(QUERY)
    with pytest.raises(VersionNotIndexedError, match=r"v0007 has no collection .*indexed versions: v0001"):
        store.similarity_search_by_vector(vector, model_version="v0007")
    with pytest.raises(InvalidVersionError):
        store.similarity_search_by_vector(vector, model_version="latest")
    with pytest.raises(VectorDimensionError, match="has 3 dimensions but v0001's collection docs__v0001 holds 384"):
        store.similarity_search_with_score_by_vector([0.1, 0.2, 0.3])
    with pytest.raises(VectorDimensionError):
        asyncio.run(store.amax_marginal_relevance_search_by_vector([0.0] * 768, k=1))


def test_search_by_vector_before_anything_is_indexed_finds_nothing(settings: ClicktuneSettings) -> None:
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        empty = ClicktuneVectorStore(settings, embeddings=emb)
        assert empty.similarity_search_by_vector([0.0] * 384) == []
        assert empty.max_marginal_relevance_search_by_vector([0.0] * 384) == []
