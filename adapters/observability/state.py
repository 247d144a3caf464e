"""What the metrics and the dashboard report, read from the feedback database and the model registry.

One reader for both, so ``/metrics``, ``/dashboard`` and ``clicktune report --html`` never disagree. The
challenger phase is judged by the scheduler's sequential test, found through the
``clicktune.phase_tests`` entry point (``default``): the adapters never import the scheduler
(docs/ARCHITECTURE.md, the arrows), the way the scheduler finds the plugin's store through
``clicktune.stores``. The tally is the live one, over every interleaved search logged so far; the worker
decides on those older than ``challenger_settle_seconds``, so a look may show here a little before the
worker acts on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib.metadata import entry_points
from typing import Any, Protocol

from sqlalchemy import case, func, select
from sqlalchemy.sql.elements import ColumnElement

from clicktune.adapters.clicklog import Challenger, ClickLog
from clicktune.adapters.clicklog import schema as tables
from clicktune.adapters.registry import ModelRegistry, VersionInfo
from clicktune.adapters.settings import ClicktuneSettings

CLICK_THROUGH_AT = (1, 3, 10)
PHASE_TEST_ENTRY_POINTS = "clicktune.phase_tests"
#: Runs that did no work record no steps (``clicktune_runs.outcome["steps"]`` is empty for them).
IDLE_STATUSES = ("skipped", "locked")


class _Verdict(Protocol):
    wins: int
    losses: int
    ties: int
    z: float
    reason: str
    looks: list[dict[str, float]]


class PhaseTest(Protocol):
    """What the dashboard needs of the scheduler's ``SequentialSignTest``."""

    @property
    def looks(self) -> tuple[int, ...]: ...

    def boundary_at(self, n: int) -> float: ...

    def decide(self, outcomes: Sequence[int], *, expired: bool = False) -> _Verdict: ...


def load_phase_test(settings: ClicktuneSettings) -> PhaseTest | None:
    """The sequential test registered under ``clicktune.phase_tests`` (None when clicktune is not installed
    as a distribution, e.g. run from a bare source tree: the phase is then shown without its looks)."""
    found = entry_points(group=PHASE_TEST_ENTRY_POINTS, name="default")
    return next(iter(found)).load().from_settings(settings) if found else None


@dataclass(frozen=True)
class LiveVersion:
    version: str
    promoted_at: datetime
    history: list[str]


@dataclass(frozen=True)
class ClickThrough:
    """One model version's searches (not interleaved) and how many had a click within the top 1, 3, 10."""

    model_version: str
    searches: int
    clicked_within: tuple[int, ...]


@dataclass(frozen=True)
class Look:
    decided: int
    z: float


@dataclass(frozen=True)
class PhaseState:
    """A challenger phase's tally and where it stands in the sequential test's schedule."""

    id: int
    champion: str
    challenger: str
    status: str
    started_at: datetime
    wins: int
    losses: int
    ties: int
    z: float
    reason: str
    reached: list[Look]
    #: Every look of the schedule: (decided searches, promotion boundary); before the last, ``-boundary``
    #: is the drop boundary too.
    schedule: list[tuple[int, float]]

    @property
    def next_look(self) -> int | None:
        return next((n for n, _ in self.schedule[len(self.reached):]), None)


@dataclass(frozen=True)
class RunStats:
    by_status: dict[str, int] = field(default_factory=dict)
    last_finished: dict[str, datetime] = field(default_factory=dict)
    step_durations: dict[str, list[float]] = field(default_factory=dict)


@dataclass(frozen=True)
class StateSnapshot:
    alias: str
    window_days: float
    live: LiveVersion | None
    click_through: list[ClickThrough]
    phase: PhaseState | None
    runs: RunStats


def day_of(column: Any, dialect: str) -> ColumnElement[str]:
    """The UTC calendar day of a timestamp column as ``YYYY-MM-DD``, on either backend."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)  # SQLite keeps UTC without a zone (schema.UTCDateTime)


class StateReader:
    """Reads one alias's state; every method is a few aggregate queries, no full scan into Python."""

    def __init__(self, feedback: ClickLog, registry: ModelRegistry | None, settings: ClicktuneSettings, *,
                 alias: str | None = None, window_days: float = 7.0, phase_test: PhaseTest | None = None) -> None:
        self.feedback, self.registry, self.settings = feedback, registry, settings
        self.alias = alias or settings.collection_alias
        self.window_days = window_days
        self._phase_test = phase_test
        self._phase_test_loaded = phase_test is not None

    @classmethod
    def from_settings(cls, settings: ClicktuneSettings, **kwargs: Any) -> StateReader:
        return cls(ClickLog.from_settings(settings), ModelRegistry.from_settings(settings), settings, **kwargs)

    @property
    def phase_test(self) -> PhaseTest | None:
        if not self._phase_test_loaded:
            self._phase_test, self._phase_test_loaded = load_phase_test(self.settings), True
        return self._phase_test

    def read(self) -> StateSnapshot:
        since = datetime.now(timezone.utc) - timedelta(days=self.window_days)
        running = self.feedback.challengers.active(self.alias)
        return StateSnapshot(self.alias, self.window_days, self.live(), self.click_through(since),
                             self.phase(running) if running else None, self.runs())

    def live(self) -> LiveVersion | None:
        pointer = self.registry.pointer() if self.registry is not None else None
        return LiveVersion(pointer.version, pointer.promoted_at, list(pointer.history)) if pointer else None

    def versions(self) -> list[VersionInfo]:
        """Every registered version, oldest first (the lineage and the candidates' verdicts)."""
        return [self.registry.get(v) for v in self.registry.versions()] if self.registry is not None else []

    def _best_click(self, since: datetime | None) -> Any:
        """Per search of the alias (not interleaved): its model version, time and best clicked rank."""
        i, r, c = tables.impressions, tables.impression_results, tables.clicks
        query = (select(i.c.search_id, i.c.model_version, i.c.created_at, func.min(r.c.rank).label("best"))
                 .select_from(i)
                 .outerjoin(c, c.c.search_id == i.c.search_id)
                 .outerjoin(r, (r.c.search_id == c.c.search_id) & (r.c.doc_id == c.c.doc_id))
                 .where((i.c.alias == self.alias) & i.c.challenge_id.is_(None))
                 .group_by(i.c.search_id, i.c.model_version, i.c.created_at))
        if since is not None:
            query = query.where(i.c.created_at >= since)
        return query.subquery()

    def _within(self, best: Any) -> list[Any]:
        return [func.sum(case((best.c.best <= k, 1), else_=0)) for k in CLICK_THROUGH_AT]

    def click_through(self, since: datetime | None) -> list[ClickThrough]:
        best = self._best_click(since)
        query = (select(best.c.model_version, func.count(), *self._within(best))
                 .group_by(best.c.model_version).order_by(best.c.model_version))
        with self.feedback.engine.connect() as conn:
            return [ClickThrough(row[0], int(row[1]), tuple(int(x or 0) for x in row[2:])) for row in conn.execute(query)]

    def click_through_by_day(self, since: datetime) -> list[tuple[str, ClickThrough]]:
        best = self._best_click(since)
        day = day_of(best.c.created_at, self.feedback.dialect).label("day")
        query = (select(day, best.c.model_version, func.count(), *self._within(best))
                 .group_by(day, best.c.model_version).order_by(day, best.c.model_version))
        with self.feedback.engine.connect() as conn:
            return [(row[0], ClickThrough(row[1], int(row[2]), tuple(int(x or 0) for x in row[3:])))
                    for row in conn.execute(query)]

    def per_day(self, since: datetime) -> list[tuple[str, int, int]]:
        """(day, searches, clicks) of the alias; clicks counted on the day they were made."""
        i, c = tables.impressions, tables.clicks
        searches_day = day_of(i.c.created_at, self.feedback.dialect).label("day")
        clicks_day = day_of(c.c.created_at, self.feedback.dialect).label("day")
        searches = (select(searches_day, func.count()).where((i.c.alias == self.alias) & (i.c.created_at >= since))
                    .group_by(searches_day))
        clicks = (select(clicks_day, func.count()).select_from(c).join(i, i.c.search_id == c.c.search_id)
                  .where((i.c.alias == self.alias) & (c.c.created_at >= since)).group_by(clicks_day))
        with self.feedback.engine.connect() as conn:
            by_day = {d: [int(n), 0] for d, n in conn.execute(searches)}
            for d, n in conn.execute(clicks):
                by_day.setdefault(d, [0, 0])[1] = int(n)
        return [(d, s, k) for d, (s, k) in sorted(by_day.items())]

    def phase(self, challenger: Challenger) -> PhaseState:
        """The phase's tally over every search logged so far, judged by the scheduler's test."""
        outcomes = [s.outcome for s in self.feedback.challengers.searches(challenger)]
        wins, losses = outcomes.count(1), outcomes.count(-1)
        z = (wins - losses) / (wins + losses) ** 0.5 if wins + losses else 0.0
        test = self.phase_test
        reached: list[Look] = []
        schedule: list[tuple[int, float]] = []
        reason = ""
        if test is not None:
            verdict = test.decide(outcomes)
            reached = [Look(int(look["decided"]), float(look["z"])) for look in verdict.looks]
            schedule = [(n, round(test.boundary_at(n), 4)) for n in test.looks]
            reason = verdict.reason
        return PhaseState(challenger.id, challenger.champion_version, challenger.challenger_version,
                          challenger.status, challenger.started_at, wins, losses, len(outcomes) - wins - losses,
                          round(z, 4), reason, reached, schedule)

    def latest_phase(self) -> PhaseState | None:
        """The running phase, else the most recent one (for the dashboard)."""
        latest = self.feedback.challengers.history(self.alias, limit=1)
        return self.phase(latest[0]) if latest else None

    def runs(self) -> RunStats:
        runs = tables.runs
        with self.feedback.engine.connect() as conn:
            by_status = {s: int(n) for s, n in conn.execute(
                select(runs.c.status, func.count()).group_by(runs.c.status))}
            last = {s: at for s, at in conn.execute(
                select(runs.c.status, func.max(runs.c.finished_at)).group_by(runs.c.status))}
            outcomes = conn.execute(select(runs.c.outcome).where(runs.c.status.notin_(IDLE_STATUSES))).scalars()
            steps: dict[str, list[float]] = {}
            for outcome in outcomes:
                for step, seconds in (outcome or {}).get("steps", {}).items():
                    steps.setdefault(str(step), []).append(float(seconds))
        # func.max loses the column type on SQLite: bring the naive UTC value back to an aware one
        last = {s: (at if isinstance(at, datetime) else datetime.fromisoformat(str(at))) for s, at in last.items()}
        last = {s: at if at.tzinfo else at.replace(tzinfo=timezone.utc) for s, at in last.items()}
        return RunStats(by_status, last, steps)
