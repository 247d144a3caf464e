"""What ``ClicktuneVectorStore(...)`` accepts besides its own parameters: settings, and langchain-qdrant's names.

An app moving from ``QdrantVectorStore`` keeps the arguments that mean something here
(``collection_name`` -> the alias, ``url``, ``api_key``, ``path`` -> where Qdrant is); any other name
raises :class:`ConfigurationError` naming the closest valid one, instead of being dropped. A search's
own arguments (query, ``k``, ``filter``) are checked here too (:func:`check_search`), so a wrong type
raises :class:`InvalidSearchError` saying what to pass instead of failing deep in langchain-qdrant.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any

from langchain_core.embeddings import Embeddings

from clicktune.adapters.errors import ConfigurationError, InvalidSearchError, UnsupportedEmbeddingsError
from clicktune.adapters.limits import check_query
from clicktune.adapters.qdrant import check_filter
from clicktune.adapters.settings import SETTING_NAMES, closest
from clicktune.plugin.embeddings import ClicktuneEmbeddings

#: langchain-qdrant's argument -> the clicktune setting it sets.
LANGCHAIN_QDRANT_NAMES = {
    "collection_name": "collection_alias",
    "url": "qdrant_url",
    "api_key": "qdrant_api_key",
    "path": "qdrant_path",
}
#: Settings that say where Qdrant is: an explicit ``client=`` already does.
_LOCATION = ("qdrant_url", "qdrant_path", "qdrant_api_key")


def setting_overrides(
    options: dict[str, Any], *, constructor: Callable[..., Any], alias: str | None, client: Any
) -> dict[str, Any]:
    """The setting overrides ``options`` stands for; raise on an unknown name or a conflict.

    ``constructor``'s own parameters are candidates for the "did you mean" of a misspelling;
    ``alias`` and ``client`` are its arguments, checked against what ``options`` says.
    """
    overrides: dict[str, Any] = {}
    for name, value in options.items():
        target = LANGCHAIN_QDRANT_NAMES.get(name, name)
        if target not in SETTING_NAMES:
            own = {p.name for p in inspect.signature(constructor).parameters.values()
                   if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"}
            valid = [*SETTING_NAMES, *sorted(own), *LANGCHAIN_QDRANT_NAMES]
            raise ConfigurationError(
                f"ClicktuneVectorStore got an unknown argument {name!r}{closest(name, valid)}; it takes its own "
                f"parameters, clicktune settings, and of langchain-qdrant's only {', '.join(LANGCHAIN_QDRANT_NAMES)}")
        if target in overrides:
            raise ConfigurationError(f"{name!r} and {_given_as(target, options)!r} both set {target}: pass one")
        overrides[target] = value
    if overrides.get("qdrant_url") and overrides.get("qdrant_path"):
        raise ConfigurationError(
            f"{_given_as('qdrant_url', options)!r} (a Qdrant server) and {_given_as('qdrant_path', options)!r} "
            "(an embedded folder) both say where Qdrant is: pass one")
    new_alias = overrides.get("collection_alias")
    if alias is not None and new_alias is not None and new_alias != alias:
        raise ConfigurationError(f"alias={alias!r} and {_given_as('collection_alias', options)}={new_alias!r} "
                                 "disagree: pass one")
    if client is not None and any(overrides.get(k) for k in _LOCATION):
        given = [_given_as(k, options) for k in _LOCATION if overrides.get(k)]
        raise ConfigurationError(f"client= already says which Qdrant to use; drop {', '.join(given)}")
    return overrides


def _given_as(setting: str, options: dict[str, Any]) -> str:
    """The name the caller used for ``setting`` (the first, for a conflict message)."""
    return next((n for n in options if LANGCHAIN_QDRANT_NAMES.get(n, n) == setting), setting)


def check_embeddings(embeddings: Embeddings | None) -> None:
    """The store embeds only with its registry's versions: anything else raises, the same way everywhere."""
    if embeddings is not None and not isinstance(embeddings, ClicktuneEmbeddings):
        raise UnsupportedEmbeddingsError(
            f"ClicktuneVectorStore embeds with its model registry's versions, so it cannot use "
            f"{type(embeddings).__name__}: pass a ClicktuneEmbeddings, or no embeddings to build one from the "
            "settings (base_model= picks the model it starts from)")


def check_count(value: Any, name: str = "k") -> int:
    """``k`` / ``fetch_k`` as an int, or :class:`InvalidSearchError` saying what to pass."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidSearchError(f"{name} is {value!r} of type {type(value).__name__}; pass a positive int, "
                                 f"such as {name}=4")
    if value < 1:
        raise InvalidSearchError(f"{name} is {value}; pass a positive int (the number of documents to return)")
    return int(value)


def check_search(query: Any, k: Any, kwargs: dict[str, Any], *, fetch_k: Any = None) -> int:
    """Refuse a search's query (None for a search by vector), ``k``, ``fetch_k`` or ``filter`` before
    anything is embedded, searched or logged; returns ``k`` as an int."""
    if query is not None:
        check_query(query)
    if fetch_k is not None:
        check_count(fetch_k, "fetch_k")
    check_filter(kwargs.get("filter"))
    return check_count(k)
