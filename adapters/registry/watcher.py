"""Noticing promotions made by other processes, without polling the file on every request."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.polling import PollingObserver

from clicktune.adapters.errors import ClicktuneError
from clicktune.adapters.registry.store import CURRENT_FILE, ModelRegistry

log = logging.getLogger(__name__)


class _CurrentFileHandler(FileSystemEventHandler):
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        names = {Path(str(event.src_path)).name, Path(str(getattr(event, "dest_path", "") or "")).name}
        if CURRENT_FILE in names:
            self._on_change()


class RegistryWatcher:
    """Calls ``callback(version)`` whenever CURRENT names a different version than last seen.

    CURRENT is replaced by ``os.replace``, which inotify reports as a move onto it; we re-read the
    pointer rather than trust the event, so duplicate or coalesced events are harmless. The callback
    runs on the observer thread; it may take time (loading a model) without blocking requests.
    """

    def __init__(
        self,
        registry: ModelRegistry,
        callback: Callable[[str], None],
        *,
        polling: bool = False,
        poll_interval: float = 0.5,
    ) -> None:
        self.registry = registry
        self._callback = callback
        self._lock = threading.Lock()
        pointer = registry.pointer()
        self._last_seen = pointer.version if pointer else None
        self._observer = PollingObserver(timeout=poll_interval) if polling else Observer()
        self._observer.daemon = True
        self._observer.schedule(_CurrentFileHandler(self._check), str(registry.root), recursive=False)

    def start(self) -> RegistryWatcher:
        self._observer.start()
        return self

    def stop(self) -> None:
        self._observer.stop()
        if self._observer.is_alive():
            self._observer.join(timeout=5)

    def _check(self) -> None:
        with self._lock:
            try:
                pointer = self.registry.pointer()
            except ClicktuneError as exc:
                log.warning("ignoring unreadable CURRENT during hot reload: %s", exc)
                return
            if pointer is None or pointer.version == self._last_seen:
                return
            self._last_seen = pointer.version
            try:
                self._callback(pointer.version)
            except Exception:  # noqa: BLE001 - a failed reload must not kill the observer thread
                log.exception("hot reload to %s failed; still serving the previous version", pointer.version)
