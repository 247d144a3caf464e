"""The store's arguments: langchain-qdrant's names mean what they say, unknown ones raise, and
anything but a ClicktuneEmbeddings is refused the same way by the constructor and ``from_texts``."""

from __future__ import annotations

import socket
import warnings
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

import clicktune.adapters.errors as errors
import clicktune.plugin
from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.errors import ConfigurationError, InvalidSearchError, UnsupportedEmbeddingsError
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.plugin.options import setting_overrides

pytestmark = pytest.mark.both_engines  # the Qdrant-facing behaviour, on each embedded engine


@pytest.fixture
def embeddings(settings: ClicktuneSettings):
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        yield emb


def test_langchain_qdrant_collection_name_and_path_are_the_alias_and_the_folder(
    home: Path, tmp_path: Path, embeddings: ClicktuneEmbeddings
) -> None:
    settings = ClicktuneSettings(home=home, progress=False)
    store = ClicktuneVectorStore(settings, embeddings=embeddings, collection_name="mine",
                                 path=str(tmp_path / "elsewhere"))
    store.add_texts(["hello"], ids=["h"])
    assert store.alias == "mine" and store.live().collection == "mine__v0001"
    assert store.settings.qdrant_path == str(tmp_path / "elsewhere")
    assert (tmp_path / "elsewhere").is_dir() and not (home / "qdrant").exists()


def test_langchain_qdrant_url_and_api_key_are_the_server_settings() -> None:
    overrides = setting_overrides({"url": "http://qdrant:6333", "api_key": "k", "collection_name": "mine"},
                                  constructor=ClicktuneVectorStore.__init__, alias=None, client=None)
    assert overrides == {"qdrant_url": "http://qdrant:6333", "qdrant_api_key": "k", "collection_alias": "mine"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"url": "http://x:6333", "path": "./elsewhere"}, "'url' .* and 'path' .* both say where Qdrant is"),
        ({"url": "http://x:6333", "qdrant_url": "http://y:6333"}, "'qdrant_url' and 'url' both set qdrant_url"),
        ({"collection_name": "mine", "alias": "theirs"}, "alias='theirs' and collection_name='mine' disagree"),
        ({"max_seq_lenght": 64}, "unknown argument 'max_seq_lenght' \\(did you mean 'max_seq_length'\\?\\)"),
        ({"annotate_result": False}, "did you mean 'annotate_results'"),
        ({"distance": "DOT"}, "unknown argument 'distance'.*collection_name, url, api_key, path"),
    ],
)
def test_unknown_or_conflicting_arguments_raise(
    settings: ClicktuneSettings, embeddings: ClicktuneEmbeddings, kwargs: dict, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ClicktuneVectorStore(settings, embeddings=embeddings, **kwargs)


def test_an_unreachable_url_is_a_one_line_configuration_error(home: Path, embeddings: ClicktuneEmbeddings) -> None:
    """The client connects lazily: a wrong url= used to pass construction and fail at the first search
    with the HTTP library's exception. Nothing listens on a port just freed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(ConfigurationError) as caught, warnings.catch_warnings():
        warnings.simplefilter("error")  # nor the client's multi-line version-check warning before it
        ClicktuneVectorStore(ClicktuneSettings(home=home, progress=False), embeddings=embeddings,
                             url=url).similarity_search("x")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"cannot reach Qdrant at {url} (")
    assert "check CLICKTUNE_QDRANT_URL (qdrant_url=, url=)" in message


def test_a_client_and_a_location_conflict(settings: ClicktuneSettings, embeddings: ClicktuneEmbeddings) -> None:
    from qdrant_client import QdrantClient

    with pytest.raises(ConfigurationError, match="client= already says which Qdrant to use; drop path"):
        ClicktuneVectorStore(settings, embeddings=embeddings, client=QdrantClient(":memory:"), path="./x")


def test_other_embeddings_are_refused_clearly_by_constructor_and_from_texts(settings: ClicktuneSettings) -> None:
    fake = DeterministicFakeEmbedding(size=384)
    with pytest.raises(UnsupportedEmbeddingsError, match="cannot use DeterministicFakeEmbedding: pass a ClicktuneEmb"):
        ClicktuneVectorStore(settings, embeddings=fake)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedEmbeddingsError, match="cannot use DeterministicFakeEmbedding: pass a ClicktuneEmb"):
        ClicktuneVectorStore.from_texts(["x"], fake, settings=settings)
    assert issubclass(UnsupportedEmbeddingsError, TypeError)


def test_the_errors_an_app_catches_are_exported_by_the_plugin() -> None:
    for name in ("ClicktuneError", "ConfigurationError", "FeedbackError", "MalformedIdError", "UnknownSearchError",
                 "DocNotShownError", "InvalidDwellError", "InvalidGradeError", "ClickWindowExpiredError",
                 "InvalidDocumentsError", "VersionNotIndexedError", "VectorDimensionError",
                 "UnsupportedEmbeddingsError"):
        assert getattr(clicktune.plugin, name) is getattr(errors, name)
        assert name in clicktune.plugin.__all__


@pytest.mark.parametrize("arguments, message", [
    ({"filter": "metadata.source == 'a'"}, "filter is of type str; pass a qdrant_client.models.Filter"),
    ({"filter": {"must": [{"key": "metadata.source", "match": {"value": "a"}}]}}, "filter is of type dict; pass a"),
    ({"k": "3"}, "k is '3' of type str; pass a positive int"),
    ({"k": 2.5}, "k is 2.5 of type float"),
    ({"k": True}, "k is True of type bool"),
    ({"k": 0}, "k is 0; pass a positive int"),
], ids=["str-filter", "dict-filter", "str-k", "float-k", "bool-k", "zero-k"])
def test_search_arguments_of_the_wrong_kind_raise_errors_that_say_what_to_pass(
    settings: ClicktuneSettings, embeddings: ClicktuneEmbeddings, arguments: dict, message: str
) -> None:
    """Reliability issue, item 10: these failed deep in langchain-qdrant (AttributeError 'min_should',
    TypeError) or not at all; now each raises InvalidSearchError, by text, by vector and MMR alike."""
    store = ClicktuneVectorStore(settings, embeddings=embeddings)
    store.add_texts(["hello there", "goodbye"], ids=["h", "g"])
    k = arguments.get("k", 1)
    extra = {n: v for n, v in arguments.items() if n != "k"}
    vector = embeddings.embed_query("hello")
    with pytest.raises(InvalidSearchError, match=message):
        store.similarity_search("hello", k, **extra)
    with pytest.raises(InvalidSearchError, match=message):
        store.max_marginal_relevance_search("hello", k, **extra)
    with pytest.raises(InvalidSearchError, match=message):
        store.similarity_search_by_vector(vector, k, **extra)
    with pytest.raises(InvalidSearchError, match=message):
        store.as_retriever(search_kwargs={"k": k, **extra}).invoke("hello")
    assert store.feedback.stats() == {"impressions": 0, "clicks": 0}
    assert [d.id for d in store.similarity_search("hello", 1, log_impression=False)] == ["h"]
