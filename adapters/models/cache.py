"""Loaded model versions, each loaded once per process, the least recently used dropped first."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from clicktune.adapters.models.encoder import VersionEncoder


class EncoderCache:
    """A small LRU of :class:`VersionEncoder` keyed by version.

    Two threads asking for the same missing version wait for one load instead of loading twice; a
    thread asking for another version is not held up by it. An evicted encoder stays usable by the
    threads that already hold it (plain reference counting).
    """

    def __init__(self, loader: Callable[[str], VersionEncoder], max_size: int = 3) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self._loader = loader
        self._max_size = max_size
        self._items: OrderedDict[str, VersionEncoder] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self.loads = 0

    def get(self, version: str) -> VersionEncoder:
        with self._lock:
            if version in self._items:
                self._items.move_to_end(version)
                return self._items[version]
            load_lock = self._loading.setdefault(version, threading.Lock())
        with load_lock:
            with self._lock:
                if version in self._items:
                    self._items.move_to_end(version)
                    return self._items[version]
            encoder = self._loader(version)
            with self._lock:
                self.loads += 1
                self._items[version] = encoder
                self._items.move_to_end(version)
                while len(self._items) > self._max_size:
                    self._items.popitem(last=False)
                self._loading.pop(version, None)
            return encoder

    def __contains__(self, version: str) -> bool:
        with self._lock:
            return version in self._items

    def versions(self) -> list[str]:
        with self._lock:
            return list(self._items)
