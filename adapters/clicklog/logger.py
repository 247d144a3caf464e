"""Impression logging that can never fail a search, but never fails silently either."""

from __future__ import annotations

import logging
import threading

from clicktune.adapters.clicklog.records import Impression
from clicktune.adapters.clicklog.store import ClickLog
from clicktune.adapters.observability.counters import IMPRESSION_LOG_FAILURES

log = logging.getLogger(__name__)


class ImpressionLogger:
    """Wraps a :class:`ClickLog`; a failure is a warning and a counter (``failures``, and the process's
    ``clicktune_impression_log_failures`` metric), not an exception."""

    def __init__(self, store: ClickLog) -> None:
        self.store = store
        self._lock = threading.Lock()
        self.logged = 0
        self.failures = 0

    def log(self, impression: Impression) -> bool:
        try:
            self.store.log_impression(impression)
        except Exception as exc:  # noqa: BLE001 - by design: the search must still be answered
            with self._lock:
                self.failures += 1
            IMPRESSION_LOG_FAILURES.inc()
            log.warning("impression %s not logged (%s: %s); the search was answered anyway",
                        impression.search_id, type(exc).__name__, exc)
            return False
        with self._lock:
            self.logged += 1
        return True
