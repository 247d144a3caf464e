"""The index API: what the loop reads and builds, by version and caller id, on embedded Qdrant and the real model."""

from __future__ import annotations

import random

import pytest

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.qdrant import ReindexVerificationError, VersionIndex
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine

DOCS = 40


@pytest.fixture
def store(settings: ClicktuneSettings):
    """v0001 live with 40 SciFact abstracts, and an empty v0002 collection beside it."""
    corpus = list(BeirDataset.load(BUNDLED_SCIFACT).corpus.values())[:DOCS]
    embeddings = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=embeddings)
    store.add_texts([d.content for d in corpus], [{"n": i} for i in range(DOCS)], ids=[d.doc_id for d in corpus])
    store.collections.create("v0002", store.handle.encoder("v0001").dimension)
    yield store
    embeddings.close()


def _encode(store: ClicktuneVectorStore):
    encoder = store.handle.encoder("v0001")
    return lambda texts: encoder.encode(texts, batch_size=16)


def test_texts_and_doc_ids_speak_caller_ids(store: ClicktuneVectorStore) -> None:
    index: VersionIndex = store.handle.index
    ids = sorted(index.doc_ids("v0001"))
    assert len(ids) == DOCS and index.count("v0001") == DOCS
    texts = index.texts("v0001", [ids[0], ids[1], "never-indexed"])
    assert set(texts) == {ids[0], ids[1]}
    assert texts[ids[0]] == store.get_by_ids([ids[0]])[0].page_content


def test_rank_finds_each_document_by_its_own_text(store: ClicktuneVectorStore) -> None:
    index = store.handle.index
    ids = sorted(index.doc_ids("v0001"))[:5]
    texts = index.texts("v0001", ids)
    rankings = index.rank("v0001", _encode(store)([texts[i] for i in ids]), k=3)
    assert [r[0] for r in rankings] == ids and all(len(r) == 3 for r in rankings)


def test_copy_then_replay_brings_the_target_to_the_source(store: ClicktuneVectorStore) -> None:
    index, encode = store.handle.index, _encode(store)
    pages: list[int] = []
    index.page = 16  # several pages, so paging is exercised
    assert index.copy("v0001", "v0002", encode, on_copied=pages.append) == DOCS
    assert pages == [16, 16, 8]
    index.verify_copies("v0001", "v0002", sample=10, rng=random.Random(0))
    index.verify_search("v0002", encode, probes=3, rng=random.Random(0))

    # writes to the source after the copy: one added, one deleted, one changed
    gone, changed = sorted(index.doc_ids("v0001"))[:2]
    store.add_texts(["a document written during the copy"], ids=["late"])
    with pytest.raises(ReindexVerificationError, match="holds 40 points but docs__v0001 holds 41"):
        index.verify_counts("v0001", "v0002")
    store.delete([gone])
    store.add_texts(["new text for an old id"], [{"n": -1}], ids=[changed])
    assert index.replay("v0001", "v0002", ["late", gone, changed], encode) == 3
    assert index.doc_ids("v0002") == index.doc_ids("v0001")
    assert index.texts("v0002", [changed]) == {changed: "new text for an old id"}
    index.verify_copies("v0001", "v0002", sample=DOCS, rng=random.Random(1))


def test_verify_copies_refuses_a_copy_that_differs(store: ClicktuneVectorStore) -> None:
    index, encode = store.handle.index, _encode(store)
    index.copy("v0001", "v0002", encode)
    one = sorted(index.doc_ids("v0001"))[0]
    store.add_texts(["changed behind the copy's back"], ids=[one])  # the live version only
    with pytest.raises(ReindexVerificationError, match=one):
        index.verify_copies("v0001", "v0002", sample=DOCS, rng=random.Random(0))


def test_verify_search_refuses_an_empty_collection(store: ClicktuneVectorStore) -> None:
    with pytest.raises(ReindexVerificationError, match="empty"):
        store.handle.index.verify_search("v0002", _encode(store), probes=3, rng=random.Random(0))
