"""Adopting a collection made by langchain-qdrant's QdrantVectorStore (``clicktune import``,
``ClicktuneVectorStore.from_existing_collection``): real langchain-qdrant, embedded Qdrant, the packaged model."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models
from shared_homes import clone_home

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.errors import LeaseLostError
from clicktune.adapters.qdrant import (
    AliasIsCollectionError,
    ForeignCollectionError,
    close_shared_clients,
    import_collection,
)
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.cli import main
from clicktune.scheduler.loop import lock_name

N = 24


@pytest.fixture(scope="module")
def corpus() -> list[tuple[str | int, str, dict]]:
    """(id, text, metadata): the start of SciFact abstracts (short: cheap to encode), half with UUID ids and
    half with integer ids, as Qdrant allows."""
    docs = list(BeirDataset.load(BUNDLED_SCIFACT).corpus.values())[:N]
    return [(str(uuid.uuid5(uuid.NAMESPACE_URL, d.doc_id)) if i % 2 else i, d.content[:200],
             {"source": "scifact", "beir_id": d.doc_id, "n": i}) for i, d in enumerate(docs)]


@pytest.fixture(scope="module")
def module_home(template_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return clone_home(template_home, tmp_path_factory.mktemp("import-home"))


@pytest.fixture(scope="module")
def emb(module_home: Path):
    """One loaded model for the module's in-process tests (each test uses its own Qdrant)."""
    with ClicktuneEmbeddings(ClicktuneSettings(home=module_home, progress=False), watch=False) as embeddings:
        yield embeddings


@pytest.fixture
def settings(module_home: Path) -> ClicktuneSettings:
    return ClicktuneSettings(home=module_home, progress=False, qdrant_path=":memory:")


def _make(corpus: list, embedding, **kwargs) -> QdrantVectorStore:
    ids, texts, metadatas = zip(*corpus, strict=True)
    return QdrantVectorStore.from_texts(list(texts), embedding, list(metadatas), ids=list(ids), collection_name="kb",
                                        **kwargs)


def _layout(client: QdrantClient) -> tuple[set[str], dict[str, str]]:
    return ({c.name for c in client.get_collections().collections},
            {a.alias_name: a.collection_name for a in client.get_aliases().aliases})


def _assert_everything_kept(store: ClicktuneVectorStore, corpus: list) -> None:
    found = {d.id: d for d in store.get_by_ids([str(i) for i, _, _ in corpus])}
    assert len(found) == len(corpus)
    for doc_id, text, metadata in corpus:
        assert found[str(doc_id)].page_content == text and found[str(doc_id)].metadata == metadata
    _, text, metadata = corpus[5]
    hit = store.similarity_search(text, k=1)[0]
    assert hit.id == str(corpus[5][0]) and hit.metadata["clicktune"]["model_version"] == "v0001"


def test_a_collection_of_the_same_model_keeps_its_vectors_ids_texts_and_metadata_and_its_readers(
    settings: ClicktuneSettings, emb: ClicktuneEmbeddings, corpus: list, tmp_path: Path
) -> None:
    path = str(tmp_path / "qdrant")
    _make(corpus, emb, path=path).client.close()  # the team's collection, in an embedded folder
    try:
        _adopt_in_a_folder(settings, emb, corpus, path)
    finally:
        close_shared_clients()


def _adopt_in_a_folder(settings: ClicktuneSettings, emb: ClicktuneEmbeddings, corpus: list, path: str) -> None:

    store = ClicktuneVectorStore.from_existing_collection("kb", emb, settings=settings, path=path)
    report = store.last_import
    assert (report.status, report.target, report.points, report.vectors) == ("imported", "kb__v0001", N, "copied")
    assert report.encoded == 0 and report.min_cosine >= 0.999  # no text was re-encoded to copy it
    assert _layout(store.client) == ({"kb__v0001"}, {"kb": "kb__v0001"})
    _assert_everything_kept(store, corpus)

    # A reader written for the old collection keeps working through the alias, unchanged.
    reader = QdrantVectorStore(store.client, collection_name="kb", embedding=emb)
    _, text, metadata = corpus[7]
    hit = reader.similarity_search(text, k=1)[0]
    assert hit.page_content == text and {k: hit.metadata[k] for k in metadata} == metadata

    again = ClicktuneVectorStore.from_existing_collection("kb", emb, settings=settings, path=path)
    assert again.last_import.status == "already" and again.last_import.points == N


def test_custom_payload_keys_and_a_named_vector(settings: ClicktuneSettings, emb: ClicktuneEmbeddings,
                                                corpus: list) -> None:
    source = _make(corpus, emb, location=":memory:", content_payload_key="text", metadata_payload_key="meta",
                   vector_name="dense")
    with pytest.raises(ForeignCollectionError, match="--content-key"):
        ClicktuneVectorStore.from_existing_collection("kb", emb, settings=settings, client=source.client)
    with pytest.raises(ForeignCollectionError, match="no vector 'sparse'"):
        ClicktuneVectorStore.from_existing_collection("kb", emb, settings=settings, client=source.client,
                                                      content_payload_key="text", vector_name="sparse")
    assert _layout(source.client) == ({"kb"}, {})  # refused before anything was made

    store = ClicktuneVectorStore.from_existing_collection(
        "kb", emb, settings=settings, client=source.client, content_payload_key="text",
        metadata_payload_key="meta", vector_name="dense")
    assert store.last_import.vectors == "copied" and store.last_import.encoded == 0
    _assert_everything_kept(store, corpus)


def test_vectors_of_another_model_are_re_encoded(settings: ClicktuneSettings, emb: ClicktuneEmbeddings,
                                                 corpus: list) -> None:
    source = _make(corpus, DeterministicFakeEmbedding(size=384), location=":memory:")
    store = ClicktuneVectorStore.from_existing_collection("kb", emb, settings=settings, client=source.client)
    report = store.last_import
    assert (report.vectors, report.encoded, report.points) == ("re-encoded", N, N)
    assert "not made by v0001's model: lowest cosine" in report.reason
    _assert_everything_kept(store, corpus)

    other = QdrantClient(":memory:")  # another dimension: re-encoded without sampling (empty here: adopted as is)
    other.create_collection("kb", vectors_config=models.VectorParams(size=768, distance=models.Distance.DOT))
    report = ClicktuneVectorStore.from_existing_collection("kb", emb, settings=settings, client=other).last_import
    assert (report.status, report.vectors, report.points) == ("imported", "re-encoded", 0)
    assert "768 dimensions" in report.reason and _layout(other) == ({"kb__v0001"}, {"kb": "kb__v0001"})


class _SameModelAt(Embeddings):
    """Another app's embeddings: the same weights as v0001, run at another token limit."""

    def __init__(self, model, max_seq_length: int) -> None:  # noqa: ANN001 - a SentenceTransformer
        self.model = model
        self.model.max_seq_length = max_seq_length

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.model.encode(texts, normalize_embeddings=True).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def test_vectors_of_the_same_model_at_another_max_seq_length_are_named_as_such(
    settings: ClicktuneSettings, emb: ClicktuneEmbeddings
) -> None:
    """Whole SciFact abstracts (most over 128 tokens) written by v0001's own weights truncating at 128,
    where v0001 runs at 256: the import re-encodes, and says the token limit is the difference, not the model."""
    docs = list(BeirDataset.load(BUNDLED_SCIFACT).corpus.values())[:12]
    writer = _SameModelAt(emb.registry.load_model("v0001"), max_seq_length=128)
    source = QdrantVectorStore.from_texts([d.content for d in docs], writer, ids=list(range(len(docs))),
                                          collection_name="kb", location=":memory:")
    report = ClicktuneVectorStore.from_existing_collection("kb", emb, settings=settings,
                                                           client=source.client).last_import
    assert (report.vectors, report.points) == ("re-encoded", len(docs))
    assert "made by v0001's model, but at max_seq_length=128, not 256" in report.reason, report.reason
    assert "not made by" not in report.reason and "CLICKTUNE_MAX_SEQ_LENGTH=128" in report.reason


def test_a_run_that_lost_its_lease_deletes_nothing(settings: ClicktuneSettings, emb: ClicktuneEmbeddings,
                                                   corpus: list) -> None:
    source = _make(corpus, DeterministicFakeEmbedding(size=384), location=":memory:")
    store = ClicktuneVectorStore(settings, embeddings=emb, client=source.client, collection_name="kb")

    def lost() -> None:
        raise LeaseLostError("lost the lock (test)")

    with pytest.raises(LeaseLostError):
        import_collection(store.handle, guard=lost)  # the guard runs right before the delete
    assert _layout(source.client) == ({"kb"}, {})  # copy and marker dropped, the collection untouched
    assert source.client.count("kb").count == N


_SCRIPT = textwrap.dedent(
    """
    import sys
    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.qdrant import IndexHandle, import_collection
    settings = ClicktuneSettings(home=sys.argv[1], qdrant_path=sys.argv[2], progress=False, collection_alias="kb")
    import_collection(IndexHandle.from_settings(settings))
    print("finished")
    """
)


CRASH_POINTS = ["import.verified", "import.source_deleted"]  # the last point before the delete, the first after


@pytest.fixture(scope="module")
def killed(module_home: Path, emb: ClicktuneEmbeddings, corpus: list,
           tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, int, str]]:
    """One import SIGKILLed at each crash point, each on its own copy of the team's folder, run side by side
    (most of each run is starting Python and torch)."""
    runs = {}
    for crash_at in CRASH_POINTS:
        path = str(tmp_path_factory.mktemp("killed") / "qdrant")
        _make(corpus, emb, path=path).client.close()
        runs[crash_at] = path, subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(module_home), path], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env={**os.environ, "CLICKTUNE_CRASH_AT": crash_at})
    return {crash_at: (path, proc.wait(timeout=300), proc.communicate()[1]) for crash_at, (path, proc) in runs.items()}


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_sigkill_before_and_after_the_old_collection_is_deleted_loses_nothing(
    module_home: Path, emb: ClicktuneEmbeddings, corpus: list, killed: dict, crash_at: str
) -> None:
    path, returncode, stderr = killed[crash_at]
    assert returncode == -signal.SIGKILL, stderr[-2000:]
    settings = ClicktuneSettings(home=module_home, qdrant_path=path, progress=False, collection_alias="kb")
    try:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        if crash_at == "import.verified":  # killed with the copy verified, before the delete
            assert _layout(store.client) == ({"kb", "kb__v0001"}, {"kb__import": "kb__v0001"})
            assert store.client.count("kb").count == N  # the team's collection is intact
            with pytest.raises(AliasIsCollectionError, match="interrupted"):
                store.similarity_search("anything")
            store = ClicktuneVectorStore.from_existing_collection("kb", emb, settings=settings)
            assert store.last_import.status == "imported"  # started again from the intact collection
        else:  # killed after the delete: the first look through the alias finishes it
            assert _layout(store.client) == ({"kb__v0001"}, {"kb__import": "kb__v0001"})
            assert store.similarity_search(corpus[3][1], k=1)[0].id == str(corpus[3][0])
        assert _layout(store.client) == ({"kb__v0001"}, {"kb": "kb__v0001"})
        _assert_everything_kept(store, corpus)
    finally:
        close_shared_clients()


def test_the_import_command(home: Path, emb: ClicktuneEmbeddings, corpus: list, capsys: pytest.CaptureFixture,
                            caplog: pytest.LogCaptureFixture) -> None:
    assert main(["--home", str(home), "import", "kb"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("clicktune: error: there is no collection 'kb' to import") and err.count("\n") == 1

    settings = ClicktuneSettings(home=home, progress=False)
    _make(corpus[:8], emb, path=str(home / "qdrant")).client.close()
    assert main(["--home", str(home), "--alias", "docs", "import", "kb"]) == 1
    assert "drop --alias" in capsys.readouterr().err
    assert main(["--home", str(home), "import", "kb__old"]) == 1
    assert "may not contain '__'" in capsys.readouterr().err

    feedback = ClickLog.from_settings(settings)
    assert feedback.acquire_lock(lock_name("kb"), "someone-else", 60)
    assert main(["--home", str(home), "import", "kb"]) == 3
    feedback.release_lock(lock_name("kb"), "someone-else")

    assert main(["--home", str(home), "import", "kb"]) == 0
    out = capsys.readouterr().out
    assert "kb -> kb__v0001: 8 points, vectors copied" in out and "found no collection for" in out
    assert "import kb -> kb__v0001: copying 8 points" in caplog.text  # no TTY: progress as INFO lines
    assert main(["--home", str(home), "import", "kb"]) == 0
    assert "nothing to import: kb is the alias of kb__v0001 (8 points)" in capsys.readouterr().out
