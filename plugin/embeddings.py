"""The LangChain ``Embeddings`` an app drops in: it always serves a registry version, never a loose model."""

from __future__ import annotations

import logging
import threading
import warnings

from langchain_core.embeddings import Embeddings

from clicktune.adapters.models import EncoderCache, VersionEncoder, encoder_for_version
from clicktune.adapters.registry import ModelRegistry, RegistryWatcher, parse_version
from clicktune.adapters.settings import ClicktuneSettings, load_settings

log = logging.getLogger(__name__)


class ModelVersionSwitchWarning(UserWarning):
    """A :class:`ClicktuneEmbeddings` that no :class:`~clicktune.plugin.ClicktuneVectorStore` uses
    switched the model it embeds queries with (a promotion or a rollback changed CURRENT), while the
    vectors of the store it feeds may still be the old model's."""


class ClicktuneEmbeddings(Embeddings):
    """Embeds with the registry's CURRENT model (or a pinned ``version``), hot-reloading promotions.

    Why a registry version and not a model name: a vector is only comparable with vectors made by the
    same weights, so everything downstream (collections, impressions, the gate) is keyed by version.

    Hot reload: a watchdog observer sees CURRENT replaced by another process, loads the new version in
    the background, then switches; a call already running keeps the encoder it started with.

    Used on its own (with langchain-qdrant's ``QdrantVectorStore`` or any other store), it is safe only
    where that store reads through the clicktune alias (``collection_name=`` the alias, e.g. ``docs``):
    the alias and CURRENT move together (a promotion, a rollback), so the store's vectors and the query
    model change at once. A store on a fixed collection keeps its vectors while the query model
    changes, and its searches quietly compare two models' vectors. So the first switch of version under
    an instance that no ``ClicktuneVectorStore`` uses warns, once, with
    :class:`ModelVersionSwitchWarning`; pin ``version=`` to keep one model, or use
    ``ClicktuneVectorStore``, which embeds each query with the version that built the collection it
    searches.
    """

    def __init__(
        self,
        settings: ClicktuneSettings | None = None,
        *,
        version: str | None = None,
        registry: ModelRegistry | None = None,
        batch_size: int | None = None,
        watch: bool | None = None,
        show_progress: bool | None = None,
        _cache: EncoderCache | None = None,
        **setting_overrides: object,
    ) -> None:
        self.settings = load_settings(settings, **setting_overrides)
        self.registry = registry or ModelRegistry.from_settings(self.settings)
        if version is not None:
            parse_version(version)
            self.registry.path(version)
        self.pinned_version = version
        self.batch_size = batch_size or self.settings.batch_size
        self.show_progress = self.settings.show_progress() if show_progress is None else show_progress
        self._cache = _cache or EncoderCache(self._load, max_size=self.settings.model_cache_size)
        self._state_lock = threading.Lock()
        self._watcher: RegistryWatcher | None = None
        self._current: str | None = None
        #: A ClicktuneVectorStore uses this instance: it resolves versions per collection, no warning needed.
        self._owned_by_store = False
        self._served: str | None = None  # the version the last call embedded with
        self._switch_warned = False
        if version is None:
            self._current = self.registry.bootstrap()  # the live version, made from the base model on first use
            use_watch = self.settings.watch_registry if watch is None else watch
            if use_watch:
                self._watcher = RegistryWatcher(
                    self.registry, self._on_promotion, polling=self.settings.watch_polling
                ).start()

    # Versions ----------------------------------------------------------------------------------
    def _load(self, version: str) -> VersionEncoder:
        return encoder_for_version(self.registry, version, self.settings)

    def _on_promotion(self, version: str) -> None:
        self._cache.get(version)  # warm up first, so no request pays for the load
        with self._state_lock:
            previous, self._current = self._current, version
        log.info("hot reload: now serving %s (was %s)", version, previous)

    @property
    def current_version(self) -> str:
        """The version a call made now would use."""
        if self.pinned_version is not None:
            return self.pinned_version
        if self._watcher is None:
            return self.registry.current()
        with self._state_lock:
            assert self._current is not None
            return self._current

    def encoder(self, version: str | None = None) -> VersionEncoder:
        """The loaded encoder of ``version`` (default: the one this instance serves now)."""
        return self._cache.get(version or self.current_version)

    def _serving(self) -> VersionEncoder:
        """The encoder for a call made now, noting a switch of version (see the class docstring)."""
        version = self.current_version
        if self.pinned_version is None and not self._owned_by_store:
            with self._state_lock:
                previous, self._served = self._served, version
                warn = previous is not None and previous != version and not self._switch_warned
                self._switch_warned = self._switch_warned or warn
            if warn:
                warnings.warn(ModelVersionSwitchWarning(
                    f"ClicktuneEmbeddings now embeds with {version}, not {previous}: CURRENT changed (a promotion "
                    f"or a rollback). A vector store on a fixed collection still holds {previous}'s vectors, "
                    "which these queries no longer match; search through the clicktune alias, use "
                    "ClicktuneVectorStore, or pin version=. (Warned once per ClicktuneEmbeddings.)"), stacklevel=3)
        return self._cache.get(version)

    def for_version(self, version: str, *, show_progress: bool | None = None) -> ClicktuneEmbeddings:
        """An ``Embeddings`` pinned to one version, sharing this instance's loaded models."""
        progress = self.show_progress if show_progress is None else show_progress
        if version == self.pinned_version and progress == self.show_progress:
            return self
        return ClicktuneEmbeddings(
            self.settings,
            version=version,
            registry=self.registry,
            batch_size=self.batch_size,
            show_progress=progress,
            _cache=self._cache,
        )

    @property
    def dimension(self) -> int:
        return self.encoder().dimension

    # LangChain interface -----------------------------------------------------------------------
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        encoder = self._serving()
        return encoder.encode(texts, batch_size=self.batch_size, show_progress=self.show_progress).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self._serving().encode_query(text).tolist()

    # Async variants: LangChain's defaults already run the sync methods in an executor, which is
    # the right thing for CPU-bound encoding; they are inherited rather than rewritten.

    # Lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the hot-reload observer (idempotent)."""
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None

    def __enter__(self) -> ClicktuneEmbeddings:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    def __repr__(self) -> str:
        mode = f"pinned={self.pinned_version}" if self.pinned_version else f"current={self._current}"
        return f"ClicktuneEmbeddings({mode}, registry={self.registry.root})"
