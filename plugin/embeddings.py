"""The LangChain ``Embeddings`` an app drops in: it always serves a registry version, never a loose model."""

from __future__ import annotations

import logging
import threading

from langchain_core.embeddings import Embeddings

from clicktune.adapters.models import EncoderCache, VersionEncoder, encoder_for_version
from clicktune.adapters.registry import ModelRegistry, RegistryWatcher, parse_version
from clicktune.adapters.settings import ClicktuneSettings, load_settings

log = logging.getLogger(__name__)


class ClicktuneEmbeddings(Embeddings):
    """Embeds with the registry's CURRENT model (or a pinned ``version``), hot-reloading promotions.

    Why a registry version and not a model name: a vector is only comparable with vectors made by the
    same weights, so everything downstream (collections, impressions, the gate) is keyed by version.

    Hot reload: a watchdog observer sees CURRENT replaced by another process, loads the new version in
    the background, then switches; a call already running keeps the encoder it started with.
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
        encoder = self.encoder()
        return encoder.encode(texts, batch_size=self.batch_size, show_progress=self.show_progress).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encoder().encode_query(text).tolist()

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
