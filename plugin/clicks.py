"""The click API for apps that report clicks away from the store object (a view, a worker, a beacon).

``ClicktuneVectorStore.record_click`` is the same call on the store's own click log; these functions
use one process-wide :class:`ClickLog` built from ``ClicktuneSettings()`` unless one is set.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.settings import ClicktuneSettings

_default: ClickLog | None = None
_lock = threading.Lock()


def set_default_click_log(log: ClickLog | None) -> None:
    """Use ``log`` for the module-level functions (None: build from settings on next use)."""
    global _default
    with _lock:
        _default = log


def default_click_log() -> ClickLog:
    global _default
    with _lock:
        if _default is None:
            _default = ClickLog.from_settings(ClicktuneSettings())
        return _default


def record_click(
    search_id: str,
    doc_id: str,
    *,
    dwell: float | None = None,
    grade: int | None = None,
    user: str | None = None,
) -> bool:
    """Store that ``user`` opened ``doc_id`` from search ``search_id``.

    Returns True if stored, False if that click was already stored (clicks are idempotent per
    search and document). Raises a :class:`~clicktune.adapters.errors.FeedbackError` subclass, storing
    nothing, for an unknown search, a document that search did not show, a malformed id, a negative
    dwell, a grade out of range or a click past the click window.
    """
    return default_click_log().record_click(search_id, doc_id, dwell=dwell, grade=grade, user=user)


def record_clicks(clicks: Iterable[Mapping[str, Any]]) -> list[bool]:
    """Several clicks (keys: search_id, doc_id, dwell, grade, user); one bad click stores none."""
    return default_click_log().record_clicks(clicks)
