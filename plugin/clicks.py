"""The click API for apps that report clicks away from the store object (a view, a worker, a beacon).

``ClicktuneVectorStore.record_click`` is the same call on the store's own click log. These functions
use, in order: the log given to :func:`set_default_click_log`; else the click log of the
``ClicktuneVectorStore`` objects alive in this process (so a store built with ``home=...`` or
``feedback_url=...`` is followed), which raises :class:`ConfigurationError` if they use different
ones; else one built from ``ClicktuneSettings()`` (the environment).

A click is a :class:`~clicktune.adapters.clicklog.ClickInput` whichever way it comes in (keywords
here, a mapping or a ``ClickInput`` in a batch, JSON over ``POST /clicks``); the click log validates
it there, once, so these functions only choose the log and forward. ``user_id`` and ``dwell_seconds``
are the field names (as in the searches' ``user_id=``); ``user`` and ``dwell``, their older names, are
still accepted.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from langchain_core.runnables.config import run_in_executor

from clicktune.adapters.clicklog import ClickInput, ClickLog
from clicktune.adapters.errors import ConfigurationError, MixedSearchesError, UnknownSearchError
from clicktune.adapters.qdrant import ANNOTATIONS_KEY
from clicktune.adapters.settings import ClicktuneSettings


class _HasClickLog(Protocol):
    @property
    def feedback(self) -> ClickLog: ...


_explicit: ClickLog | None = None
_from_environment: ClickLog | None = None
_stores: dict[int, tuple[weakref.ref[_HasClickLog], str]] = {}  # id -> (the store, its feedback url)
_lock = threading.RLock()  # re-entrant: a store collected while it is held runs _forget


def set_default_click_log(log: ClickLog | None) -> None:
    """Use ``log`` for the module-level functions; None forgets it and every store followed so far."""
    global _explicit, _from_environment
    with _lock:
        _explicit, _from_environment = log, None
        _stores.clear()


def follow_store(store: _HasClickLog, feedback_url: str) -> None:
    """Called by each new ``ClicktuneVectorStore``: its click log may become the default (see above)."""
    key = id(store)
    with _lock:
        _stores[key] = (weakref.ref(store, lambda _ref: _forget(key)), feedback_url)


def _forget(key: int) -> None:
    with _lock:
        _stores.pop(key, None)


def default_click_log() -> ClickLog:
    """The click log the module-level functions use (the rules are in this module's docstring)."""
    global _from_environment
    with _lock:
        if _explicit is not None:
            return _explicit
        alive = [(s, url) for s, url in ((ref(), url) for ref, url in _stores.values()) if s is not None]
        urls = sorted({url for _, url in alive})
        if len(urls) > 1:
            raise ConfigurationError(
                f"ClicktuneVectorStore objects in this process use different click logs ({', '.join(urls)}), so "
                "the module-level record_click cannot tell which one a click belongs to: call "
                "set_default_click_log(store.feedback) once, or store.record_click(...)")
        if alive:
            return alive[-1][0].feedback
        if _from_environment is None:
            _from_environment = ClickLog.from_settings(ClicktuneSettings())
        return _from_environment


def _is_environment_default(log: ClickLog) -> bool:
    with _lock:
        return log is _from_environment


def _hinted(error: UnknownSearchError, log: ClickLog) -> UnknownSearchError:
    if not _is_environment_default(log):
        return error
    return UnknownSearchError(
        f"{error} (the module-level record_click looked in {log.url}, from ClicktuneSettings() and no store: "
        "build the ClicktuneVectorStore first, call set_default_click_log(store.feedback), or use "
        "store.record_click)")


def record_click(
    search_id: str,
    doc_id: str,
    *,
    dwell_seconds: float | None = None,
    grade: int | None = None,
    user_id: str | None = None,
    dwell: float | None = None,
    user: str | None = None,
) -> bool:
    """Store that ``user_id`` opened ``doc_id`` from search ``search_id``.

    Returns True if stored, False if that click was already stored (clicks are idempotent per
    search and document). Raises a :class:`~clicktune.adapters.errors.FeedbackError` subclass, storing
    nothing, for an unknown search, a document that search did not show, a malformed id, a negative
    dwell, a grade out of range, a field given under both its names or a click past the click window.
    """
    log = default_click_log()
    try:
        return log.record_click(search_id, doc_id, dwell_seconds=dwell_seconds, grade=grade, user_id=user_id,
                                dwell=dwell, user=user)
    except UnknownSearchError as exc:
        raise _hinted(exc, log) from exc


def record_clicks(clicks: Iterable[ClickInput | Mapping[str, Any]]) -> list[bool]:
    """Several clicks (``ClickInput`` objects or mappings of its fields); one bad click stores none."""
    log = default_click_log()
    try:
        return log.record_clicks(clicks)
    except UnknownSearchError as exc:
        raise _hinted(exc, log) from exc


async def arecord_click(
    search_id: str, doc_id: str, *, dwell_seconds: float | None = None, grade: int | None = None,
    user_id: str | None = None, dwell: float | None = None, user: str | None = None,
) -> bool:
    """:func:`record_click` for async apps: runs it in the default executor, so the event loop never waits."""
    return await run_in_executor(None, record_click, search_id, doc_id, dwell_seconds=dwell_seconds, grade=grade,
                                 user_id=user_id, dwell=dwell, user=user)


async def arecord_clicks(clicks: Iterable[ClickInput | Mapping[str, Any]]) -> list[bool]:
    """:func:`record_clicks` for async apps (in the default executor)."""
    return await run_in_executor(None, record_clicks, list(clicks))


class StoreClicks:
    """The click methods of ``ClicktuneVectorStore``: the same calls on the store's own click log."""

    feedback: ClickLog

    def record_click(
        self, search_id: str, doc_id: str, *, dwell_seconds: float | None = None, grade: int | None = None,
        user_id: str | None = None, dwell: float | None = None, user: str | None = None,
    ) -> bool:
        """Report that a user opened ``doc_id`` from search ``search_id``; True if newly stored.

        ``dwell`` and ``user`` are the older names of ``dwell_seconds`` and ``user_id``.
        """
        return self.feedback.record_click(search_id, doc_id, dwell_seconds=dwell_seconds, grade=grade,
                                          user_id=user_id, dwell=dwell, user=user)

    def record_clicks(self, clicks: Iterable[ClickInput | Mapping[str, Any]]) -> list[bool]:
        """Several clicks at once, all or nothing (``ClickInput`` objects or mappings of its fields)."""
        return self.feedback.record_clicks(clicks)

    async def arecord_click(
        self, search_id: str, doc_id: str, *, dwell_seconds: float | None = None, grade: int | None = None,
        user_id: str | None = None, dwell: float | None = None, user: str | None = None,
    ) -> bool:
        """:meth:`record_click` for async apps (in the default executor)."""
        return await run_in_executor(None, self.record_click, search_id, doc_id, dwell_seconds=dwell_seconds,
                                     grade=grade, user_id=user_id, dwell=dwell, user=user)

    async def arecord_clicks(self, clicks: Iterable[ClickInput | Mapping[str, Any]]) -> list[bool]:
        """:meth:`record_clicks` for async apps (in the default executor)."""
        return await run_in_executor(None, self.record_clicks, list(clicks))


def search_id_of(documents: Sequence[Any]) -> str | None:
    """The search id of documents one search returned, so an LCEL chain can hand it back with its answer.

    ``RunnablePassthrough.assign(search_id=lambda x: search_id_of(x["docs"]))`` after the retriever
    (README). None when the search was not logged (logging off, a search by vector) or returned nothing;
    :class:`MixedSearchesError` when the documents came from different searches.
    """
    ids = {(doc.metadata.get(ANNOTATIONS_KEY) or {}).get("search_id") for doc in documents}
    if len(ids) > 1:
        raise MixedSearchesError(
            f"these documents came from {len(ids)} searches ({sorted(map(str, ids))}): pass the results of one search"
        )
    return next(iter(ids), None)
