"""clicktune's Prometheus metrics, through ``prometheus-client``: what this process counts, and what the
feedback database and the model registry say at scrape time.

Two kinds, on purpose:

- **Process counters** (searches, interleaved searches, clicks, impression-log failures, search latency)
  are incremented where the event happens (the store's search path, the click log's one write door,
  the impression logger) and live in prometheus-client's default ``REGISTRY``, so an app that already
  exposes its own metrics gets these with them. Each serving process counts its own; Prometheus sums.
- **State gauges** (click-through at 1/3/10 by model version, the running challenger phase, the loop's
  runs and step durations, the live version) are read from the feedback database and the registry by
  :class:`ClicktuneCollector` when scraped (cached for ``cache_seconds``), so the app's ``/metrics`` and
  ``clicktune worker --metrics-port`` report the same truth whichever process did the work. Step
  durations come from the run history (``clicktune_runs``) rather than timers in the worker: a run's
  steps are recorded there by whichever process ran it, and survive that process's restart.

:func:`metrics_registry` puts both behind one ``CollectorRegistry`` for ``make_asgi_app`` or
``start_http_server``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from clicktune.adapters.observability.counters import STEP_BUCKETS
from clicktune.adapters.observability.state import CLICK_THROUGH_AT, StateReader, StateSnapshot


class ClicktuneCollector(Collector):
    """The state gauges, read through a :class:`StateReader` at scrape time and cached briefly.

    The cache bounds the database work to one read per ``cache_seconds`` however often (and by however
    many scrapers) ``/metrics`` is fetched; a failed read is re-raised to the scraper (an HTTP 500), so a
    broken database shows as a failed scrape rather than as zeros.
    """

    def __init__(self, reader: StateReader, *, cache_seconds: float = 10.0) -> None:
        self.reader = reader
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, StateSnapshot] | None = None

    def snapshot(self) -> StateSnapshot:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                self._cached = (now, self.reader.read())
            return self._cached[1]

    def describe(self) -> Iterable[Metric]:
        return []  # no read at registration time: the families are the same on every scrape anyway

    def collect(self) -> Iterable[Metric]:
        yield from families(self.snapshot())


def families(s: StateSnapshot) -> Iterator[Metric]:
    """The metric families of one snapshot (names and meanings: docs/ARCHITECTURE.md, Observability)."""
    live = GaugeMetricFamily("clicktune_live_version_info", "The model version the alias serves (value 1).",
                             labels=["alias", "version"])
    promoted = GaugeMetricFamily("clicktune_live_promoted_timestamp_seconds",
                                 "When the live version went live (Unix time).", labels=["alias"])
    if s.live is not None:
        live.add_metric([s.alias, s.live.version], 1)
        promoted.add_metric([s.alias], s.live.promoted_at.timestamp())
    yield live
    yield promoted

    ctr = GaugeMetricFamily("clicktune_click_through_ratio",
                            f"Share of a version's searches of the last {s.window_days:g} days (not interleaved) "
                            "with a click within the top `at` results.", labels=["alias", "model_version", "at"])
    ctr_n = GaugeMetricFamily("clicktune_click_through_searches",
                              "The searches clicktune_click_through_ratio is computed over.",
                              labels=["alias", "model_version"])
    for row in s.click_through:
        ctr_n.add_metric([s.alias, row.model_version], row.searches)
        for at, clicked in zip(CLICK_THROUGH_AT, row.clicked_within, strict=True):
            ctr.add_metric([s.alias, row.model_version, str(at)], clicked / row.searches if row.searches else 0.0)
    yield ctr
    yield ctr_n

    yield from _phase_families(s)

    runs = CounterMetricFamily("clicktune_runs", "Loop runs recorded in the run history, by outcome.",
                               labels=["status"])
    last = GaugeMetricFamily("clicktune_last_run_timestamp_seconds",
                             "When the latest recorded run of each outcome finished (Unix time).", labels=["status"])
    for status, count in sorted(s.runs.by_status.items()):
        runs.add_metric([status], count)
    for status, at in sorted(s.runs.last_finished.items()):
        last.add_metric([status], at.timestamp())
    yield runs
    yield last
    steps = HistogramMetricFamily("clicktune_step_duration_seconds",
                                  "Duration of each step of the recorded runs: mine, train, offline_check, build "
                                  "(blue-green), judge, decide (the promotion's swap, or the drop).", labels=["step"])
    for step, durations in sorted(s.runs.step_durations.items()):
        buckets = [(str(float(b)), sum(d <= b for d in durations)) for b in STEP_BUCKETS]
        steps.add_metric([step], [*buckets, ("+Inf", len(durations))], sum_value=sum(durations))
    yield steps


def _phase_families(s: StateSnapshot) -> Iterator[Metric]:
    names = ["alias", "champion", "challenger"]
    running = GaugeMetricFamily("clicktune_phase_running", "1 while a challenger phase runs on the alias.",
                                labels=["alias"])
    running.add_metric([s.alias], 1 if s.phase is not None else 0)
    yield running
    gauges = {
        "wins": "Interleaved searches of the running phase the challenger won (more clicks on its documents).",
        "losses": "Interleaved searches of the running phase the champion won.",
        "ties": "Interleaved searches of the running phase with no clicks, or as many for each model.",
        "z": "The running phase's sign-test statistic over all its decided searches, (wins - losses) / "
             "sqrt(wins + losses).",
        "looks": "Looks of the sequential test the running phase has reached.",
        "next_look_decided": "Decided searches (wins + losses) the phase's next look needs.",
    }
    look_z = GaugeMetricFamily("clicktune_phase_look_z", "z at each look the running phase has reached.",
                               labels=[*names, "look"])
    look_bound = GaugeMetricFamily("clicktune_phase_look_boundary",
                                   "The promotion boundary at each look of the test's schedule.",
                                   labels=[*names, "look"])
    families_ = {k: GaugeMetricFamily(f"clicktune_phase_{k}", help_, labels=names) for k, help_ in gauges.items()}
    p = s.phase
    if p is not None:
        key = [s.alias, p.champion, p.challenger]
        values = {"wins": p.wins, "losses": p.losses, "ties": p.ties, "z": p.z, "looks": len(p.reached),
                  "next_look_decided": p.next_look}
        for k, family in families_.items():
            if values[k] is not None:
                family.add_metric(key, values[k])
        for look in p.reached:
            look_z.add_metric([*key, str(look.decided)], look.z)
        for n, bound in p.schedule:
            look_bound.add_metric([*key, str(n)], bound)
    yield from families_.values()
    yield look_z
    yield look_bound


class _Process(Collector):
    """prometheus-client's default registry (this process's counters, and anything else the app put
    there), collected as part of another registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()

    def describe(self) -> Iterable[Metric]:
        return []


def metrics_registry(reader: StateReader, *, cache_seconds: float = 10.0) -> CollectorRegistry:
    """One registry with this process's counters (the default ``REGISTRY``) and the state gauges."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Process())
    registry.register(ClicktuneCollector(reader, cache_seconds=cache_seconds))
    return registry
