"""Keeping acknowledged writes through a blue-green reindex, within one process.

Writers hold the shared side of a lock while they write to the live collection and note the ids they
touched in every reindex session that is open. The reindexer copies without any lock, then re-syncs
the noted ids from the live collection (reading its current state, so order and repeats don't
matter), and finally takes the exclusive side for the last re-sync and the alias swap. Writers wait
only for that last step.

This coordinates writers in the process that runs the reindex. That is all of them in embedded mode
(embedded Qdrant admits one process). With a Qdrant server and writers in other processes, run the
reindex where the writes happen, or pause writes for its duration: see README "Server mode".
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from qdrant_client import QdrantClient


class SharedExclusiveLock:
    """Many writers or one reindexer; a waiting reindexer stops new writers so it cannot starve.

    The standard library has no reader-writer lock, and this one is short enough to own.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._exclusive_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._exclusive_waiting:
                self._cond.wait()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._exclusive_waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._exclusive_waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class ReindexSession:
    """The ids written while one reindex runs; drained by the reindexer, in batches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._touched: set[str] = set()

    def note(self, ids: Iterable[str]) -> None:
        with self._lock:
            self._touched.update(str(i) for i in ids)

    def drain(self) -> list[str]:
        with self._lock:
            ids, self._touched = sorted(self._touched), set()
        return ids


class WriteCoordinator:
    """Per (client, alias): the lock and the open sessions that writers and the reindexer share."""

    def __init__(self) -> None:
        self.lock = SharedExclusiveLock()
        self._sessions: list[ReindexSession] = []
        self._sessions_lock = threading.Lock()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self.lock.shared():
            yield

    def note_written(self, ids: Iterable[str]) -> None:
        ids = list(ids)
        with self._sessions_lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.note(ids)

    @contextmanager
    def session(self) -> Iterator[ReindexSession]:
        session = ReindexSession()
        with self._sessions_lock:
            self._sessions.append(session)
        try:
            yield session
        finally:
            with self._sessions_lock:
                self._sessions.remove(session)


_coordinators: weakref.WeakKeyDictionary[QdrantClient, dict[str, WriteCoordinator]] = weakref.WeakKeyDictionary()
_coordinators_lock = threading.Lock()


def coordinator_for(client: QdrantClient, alias: str) -> WriteCoordinator:
    with _coordinators_lock:
        per_client = _coordinators.setdefault(client, {})
        return per_client.setdefault(alias, WriteCoordinator())
