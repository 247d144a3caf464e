"""This process's counters, in prometheus-client's default ``REGISTRY``: incremented where each event
happens (the store's search path, the click log's write door, the impression logger).

Defined once per process at import (prometheus-client refuses a second metric of the same name), and
kept apart from ``metrics`` so the click log can import them without importing what reads the click log.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client import Counter, Histogram

SEARCHES = Counter("clicktune_searches", "Searches answered by a ClicktuneVectorStore in this process.", ["alias"])
INTERLEAVED_SEARCHES = Counter(
    "clicktune_interleaved_searches",
    "Searches served as a team-draft interleaving of champion and challenger (a subset of clicktune_searches).",
    ["alias"])
SEARCH_LATENCY = Histogram(
    "clicktune_search_latency_seconds",
    "Time to answer one search (embedding, Qdrant, impression logging), by the alias's live model version.",
    ["alias", "model_version"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
CLICKS = Counter("clicktune_clicks", "Clicks reported to the click log in this process, by what became of them: "
                 "stored, duplicate (already stored), refused (bad input; nothing stored) or failed (the database).",
                 ["result"])
IMPRESSION_LOG_FAILURES = Counter(
    "clicktune_impression_log_failures",
    "Searches answered but not logged (the feedback database failed); their clicks cannot be stored.")

#: Buckets of the loop steps' durations (seconds): a step takes from a second (judge) to hours (train).
STEP_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


@dataclass
class ServedSearch:
    """Filled in by the search path while :func:`observe_search` times it."""

    alias: str
    model_version: str | None = None  # None: nothing was served (no live collection yet)
    interleaved: bool = False


@contextmanager
def observe_search(alias: str) -> Iterator[ServedSearch]:
    """Time one search and count it once it is answered (a search that raises is not counted)."""
    started = time.perf_counter()
    served = ServedSearch(alias)
    yield served
    if served.model_version is None:
        return
    SEARCH_LATENCY.labels(alias, served.model_version).observe(time.perf_counter() - started)
    SEARCHES.labels(alias).inc()
    interleaved = INTERLEAVED_SEARCHES.labels(alias)  # exported from the first search on, 0 until one is
    if served.interleaved:
        interleaved.inc()


def count_clicks(stored: Iterable[bool]) -> None:
    """Count a batch the click log accepted: each click stored or a duplicate."""
    for new in stored:
        CLICKS.labels("stored" if new else "duplicate").inc()


