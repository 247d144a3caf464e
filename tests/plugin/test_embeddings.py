"""ClicktuneEmbeddings with the real packaged model and a real registry folder."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from clicktune.adapters import ClicktuneSettings, ModelRegistry, VersionNotFoundError
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore, ModelVersionSwitchWarning

TEXTS = [
    "Vitamin D deficiency is associated with higher risk of fractures.",
    "The court held that the contract was void for lack of consideration.",
    "Interest rates rose by fifty basis points in the third quarter.",
]


def _cos(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def assert_same_vectors(a, b, *, min_cos: float = 0.999) -> None:
    """Same vectors up to precision: bf16 (the default where native) agrees with fp32 to ~0.99998."""
    a, b = np.atleast_2d(np.asarray(a)), np.atleast_2d(np.asarray(b))
    assert a.shape == b.shape
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cos.min() >= min_cos, cos.min()


def test_vectors_match_plain_sentence_transformers(settings: ClicktuneSettings) -> None:
    with ClicktuneEmbeddings(settings) as emb:
        ours = np.asarray(emb.embed_documents(TEXTS))
        reference = emb.registry.load_model("v0001").encode(TEXTS, normalize_embeddings=True)
        assert ours.shape == (3, 384)
        assert_same_vectors(ours, reference)
        assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        query = emb.embed_query(TEXTS[0])
        assert _cos(query, ours[0]) > 0.999
        assert emb.embed_documents([]) == []


def test_batches_do_not_change_results(settings: ClicktuneSettings) -> None:
    with ClicktuneEmbeddings(settings, batch_size=2) as small, ClicktuneEmbeddings(settings, batch_size=64) as big:
        assert_same_vectors(small.embed_documents(TEXTS * 3), big.embed_documents(TEXTS * 3))


def test_pinned_version_and_for_version(settings: ClicktuneSettings, variant_model) -> None:
    registry = ModelRegistry.from_settings(settings)
    v2 = registry.register(variant_model, parent="v0001")
    with ClicktuneEmbeddings(settings) as emb:
        assert emb.current_version == "v0001"
        pinned = emb.for_version(v2)
        assert pinned.current_version == v2
        assert emb.for_version(v2).encoder() is pinned.encoder()  # loaded once, shared
        assert _cos(pinned.embed_query(TEXTS[0]), emb.embed_query(TEXTS[0])) < 0.9999
        with pytest.raises(VersionNotFoundError):
            ClicktuneEmbeddings(settings, version="v0042")


def test_many_threads_get_the_same_vectors(settings: ClicktuneSettings) -> None:
    with ClicktuneEmbeddings(settings) as emb:
        expected = emb.embed_documents(TEXTS)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: emb.embed_documents(TEXTS), range(24)))
            queries = list(pool.map(lambda i: emb.embed_query(TEXTS[i % 3]), range(24)))
    for result in results:
        assert np.allclose(result, expected, atol=1e-6)  # same batches, same precision: identical
    for i, vector in enumerate(queries):
        assert_same_vectors(vector, expected[i % 3])


async def test_async_variants(settings: ClicktuneSettings) -> None:
    with ClicktuneEmbeddings(settings) as emb:
        docs = await emb.aembed_documents(TEXTS)
        query = await emb.aembed_query(TEXTS[1])
        assert np.allclose(docs, emb.embed_documents(TEXTS), atol=1e-6)
        assert _cos(query, docs[1]) > 0.999


_PROMOTE = "import sys; from clicktune.adapters import ModelRegistry; ModelRegistry(sys.argv[1]).promote(sys.argv[2])"


def test_hot_reload_of_a_promotion_by_another_process(settings: ClicktuneSettings, variant_model) -> None:
    registry = ModelRegistry.from_settings(settings)
    v2 = registry.register(variant_model, parent="v0001")
    expected_v2 = variant_model.encode([TEXTS[0]], normalize_embeddings=True)[0]
    with ClicktuneEmbeddings(settings) as emb:
        before = emb.embed_query(TEXTS[0])
        subprocess.run([sys.executable, "-c", _PROMOTE, str(registry.root), v2], check=True)
        promoted_at = time.monotonic()
        while emb.current_version != v2 and time.monotonic() - promoted_at < 2.0:
            time.sleep(0.01)
        assert emb.current_version == v2, "promotion not picked up within 2 s"
        after = emb.embed_query(TEXTS[0])
        assert_same_vectors(after, expected_v2)
        assert not np.allclose(after, before, atol=1e-3)


def test_running_call_finishes_on_its_starting_version(settings: ClicktuneSettings, variant_model) -> None:
    registry = ModelRegistry.from_settings(settings)
    v2 = registry.register(variant_model, parent="v0001")
    texts = [f"document number {i} about {TEXTS[i % 3]}" for i in range(256)]
    with ClicktuneEmbeddings(settings, batch_size=8) as emb:
        emb.for_version(v2).encoder()  # preload so the promotion switches quickly
        expected_v1 = emb.encoder("v0001").model.encode(texts, normalize_embeddings=True)
        result: list[list[float]] = []
        worker = threading.Thread(target=lambda: result.extend(emb.embed_documents(texts)))
        worker.start()
        time.sleep(0.2)
        registry.promote(v2)
        deadline = time.monotonic() + 2.0
        while emb.current_version != v2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert emb.current_version == v2
        assert worker.is_alive(), "the long call should still be running when the switch happens"
        worker.join()
    assert_same_vectors(result, expected_v1)


def test_without_watcher_reads_current_per_call(settings: ClicktuneSettings, variant_model) -> None:
    registry = ModelRegistry.from_settings(settings)
    v2 = registry.register(variant_model, parent="v0001")
    emb = ClicktuneEmbeddings(settings, watch=False)
    assert emb.current_version == "v0001"
    registry.promote(v2)
    assert emb.current_version == v2


def test_a_version_switch_under_embeddings_no_store_uses_warns_once(settings: ClicktuneSettings, variant_model) -> None:
    """Used alone (e.g. with a plain QdrantVectorStore on a fixed collection), a promotion or a rollback
    silently changed the query model under the store's vectors: the first switch now warns, once."""
    registry = ModelRegistry.from_settings(settings)
    v2 = registry.register(variant_model, parent="v0001")
    alone = ClicktuneEmbeddings(settings, watch=False)
    owned = ClicktuneEmbeddings(settings, watch=False)
    ClicktuneVectorStore(settings, embeddings=owned)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing warns before a switch, nor for a store's embeddings
        alone.embed_query(TEXTS[0])
        owned.embed_query(TEXTS[0])
    registry.promote(v2)
    with pytest.warns(ModelVersionSwitchWarning, match=f"now embeds with {v2}, not v0001") as caught:
        alone.embed_documents(TEXTS[:1])
    assert len(caught) == 1 and caught[0].filename == __file__  # points at the caller's line
    registry.rollback()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert alone.current_version == "v0001"
        alone.embed_query(TEXTS[0])  # a second switch: already warned
        owned.embed_query(TEXTS[0])
        owned.for_version(v2).embed_query(TEXTS[0])  # pinned: never switches
