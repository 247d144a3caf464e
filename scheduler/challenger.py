"""The challenger phase: a candidate that passed the offline check faces the champion online.

While it runs, a share of searches (``interleave_share``) is served as a team-draft interleaving of
both models (``clicktune.plugin.interleaving``); each click credits the model that contributed the
clicked document, and each search is a win, a loss or a tie for the challenger. The phase's state is
a row in the feedback database, so every serving process and the worker see the same challenger.

The decision: a one-sided sign test on wins and losses (ties carry no information about which model
is better and are left out), run as a group-sequential test. Looks happen at fixed numbers of decided
searches, ``first_look`` doubling up to ``last_look`` (100, 200, 400, 800, 1600, 3200 by default), each
using the first *n* decided searches in time order, so the verdict is a pure function of the log and
does not depend on how often the scheduler ticks. One constant boundary ``c`` for every look (Pocock,
1977) is set so that a challenger that is no better than the champion crosses ``+c`` at any look with
probability ``alpha`` at most; it is computed for the look schedule from the Brownian-motion limit of
the sign test. The challenger is promoted at the first look where ``z >= c``; dropped where
``z <= -c`` (clearly worse: no need to keep showing it), at the last look without a crossing, or
when ``max_hours`` pass first. Repeatedly testing a plain ``z >= 1.645`` instead would promote an
equal model far more often than 5% of the time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from clicktune.adapters.clicklog import Challenger, ClickLog
from clicktune.adapters.crashpoints import crash_point
from clicktune.adapters.errors import ChallengerRunningError
from clicktune.adapters.qdrant import CollectionVersion, IndexHandle, ReindexVerificationError
from clicktune.adapters.settings import ClicktuneSettings

log = logging.getLogger(__name__)

Decision = Literal["promote", "drop", "continue"]


@lru_cache(maxsize=32)
def pocock_boundary(alpha: float, looks: tuple[int, ...], paths: int = 400_000, seed: int = 12345) -> float:
    """The constant ``c`` with P(max over looks of Z_k >= c) = alpha when the challenger is no better.

    Under the null the standardised sign statistic at look k is B(t_k) / sqrt(t_k) for a Brownian
    motion B and information fractions t_k = n_k / n_last; the maximum's quantile is estimated by
    simulation (seeded, so the boundary is a fixed number for a given schedule; 400,000 paths put its
    Monte Carlo error near 0.005).
    """
    fractions = np.asarray(looks, dtype=np.float64) / looks[-1]
    rng = np.random.default_rng(seed)
    increments = rng.standard_normal((paths, len(fractions))) * np.sqrt(np.diff(fractions, prepend=0.0))
    z = np.cumsum(increments, axis=1) / np.sqrt(fractions)
    return float(np.quantile(z.max(axis=1), 1.0 - alpha))


@dataclass
class Verdict:
    """What the sequential test says now, with the counts it decided on (recorded as is).

    A decision is taken at a look, on the first ``n`` decided searches; searches logged after that look
    (before the worker's tick saw it) cannot change it. So for ``promote``/``drop`` at a look,
    ``searches``, ``wins``, ``losses``, ``ties`` and ``z`` are those up to the deciding look, the ones
    that crossed the boundary, and ``logged`` counts every search seen. Otherwise they cover all of them.
    """

    decision: Decision
    reason: str
    searches: int
    wins: int
    losses: int
    ties: int
    z: float
    boundary: float
    alpha: float
    looks: list[dict[str, float]] = field(default_factory=list)
    logged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SequentialSignTest:
    alpha: float = 0.05
    first_look: int = 100
    last_look: int = 3200

    @classmethod
    def from_settings(cls, settings: ClicktuneSettings) -> SequentialSignTest:
        return cls(settings.challenger.alpha, settings.challenger.first_look, settings.challenger.last_look)

    @property
    def looks(self) -> tuple[int, ...]:
        looks = [self.first_look]
        while looks[-1] * 2 < self.last_look:
            looks.append(looks[-1] * 2)
        if looks[-1] != self.last_look:
            looks.append(self.last_look)
        return tuple(looks)

    @property
    def boundary(self) -> float:
        return pocock_boundary(self.alpha, self.looks)

    def decide(self, outcomes: Sequence[int], *, expired: bool = False) -> Verdict:
        """``outcomes`` in time order: +1 a challenger win, -1 a loss, 0 a tie."""
        decided = [o for o in outcomes if o != 0]
        c = self.boundary

        def verdict(decision: Decision, reason: str, looks: list[dict[str, float]], at: int | None = None) -> Verdict:
            used = list(outcomes) if at is None else _up_to_decided(outcomes, at)
            w, lo = used.count(1), used.count(-1)
            z = (w - lo) / math.sqrt(w + lo) if w + lo else 0.0
            return Verdict(decision, reason, len(used), w, lo, len(used) - w - lo, round(z, 4),
                           round(c, 4), self.alpha, looks, logged=len(outcomes))

        looks: list[dict[str, float]] = []
        for n in self.looks:
            if n > len(decided):
                break
            z_n = sum(decided[:n]) / math.sqrt(n)
            looks.append({"decided": n, "z": round(z_n, 4)})
            if z_n >= c:
                return verdict("promote", f"z {z_n:.2f} >= {c:.2f} after {n} decided searches", looks, at=n)
            if z_n <= -c:
                return verdict("drop", f"z {z_n:.2f} <= -{c:.2f} after {n} decided searches: worse", looks, at=n)
        if len(looks) == len(self.looks):
            return verdict("drop", f"not better after {self.last_look} decided searches "
                                   f"(z {looks[-1]['z']:.2f} < {c:.2f})", looks, at=self.last_look)
        if expired:
            return verdict("drop", f"time bound reached with {len(decided)} decided searches, "
                                   f"fewer than the {self.looks[len(looks)]} of the next look", looks)
        next_look = self.looks[len(looks)]
        return verdict("continue", f"{len(decided)} of {next_look} decided searches for the next look", looks)


def _up_to_decided(outcomes: Sequence[int], n: int) -> list[int]:
    """The outcomes up to and including the ``n``-th decided (non-tie) one."""
    seen = 0
    for i, outcome in enumerate(outcomes):
        seen += outcome != 0
        if seen == n:
            return list(outcomes[: i + 1])
    return list(outcomes)


def _apply_retention(handle: IndexHandle, guard: Callable[[], None] | None) -> None:
    # Imported here: the reindexer (and LangChain under it) loads only when a phase ends, not for
    # `clicktune status`, which judges a running phase.
    from clicktune.scheduler.reindex import apply_retention

    apply_retention(handle, guard=guard)


class ChallengerPhase:
    """Start, judge and end the challenger phase of one alias."""

    def __init__(self, handle: IndexHandle, feedback: ClickLog, settings: ClicktuneSettings | None = None, *,
                 guard: Callable[[], None] | None = None) -> None:
        self.handle = handle
        #: The lease's ``ensure_held``: called right before the promotion's swap, while writers wait.
        self.guard = guard
        self.feedback = feedback
        self.settings = settings or handle.settings
        self.test = SequentialSignTest.from_settings(self.settings)
        self.alias = handle.collections.alias

    def active(self) -> Challenger | None:
        return self.feedback.challengers.active(self.alias)

    def ensure_none_running(self, action: str) -> None:
        running = self.active()
        if running is not None:
            raise ChallengerRunningError(
                f"cannot {action} while challenger {running.challenger_version} faces {running.champion_version} "
                f"on alias {self.alias!r}; end it first: `clicktune challenger promote` or `clicktune challenger drop`"
            )

    def start(self, live: CollectionVersion, built: CollectionVersion, offline: dict[str, Any]) -> Challenger:
        """Open the phase (called while writers wait, right after the candidate's last catch-up)."""
        challenger = self.feedback.challengers.start(
            alias=self.alias, champion_version=live.version, challenger_version=built.version,
            champion_collection=live.collection, challenger_collection=built.collection,
            interleave_share=self.settings.challenger.interleave_share, offline=offline,
        )
        self.handle.registry.update_info(built.version, status="challenger")
        log.info("challenger %s faces %s on %s (%.0f%% of searches interleaved)", built.version, live.version,
                 self.alias, 100 * challenger.interleave_share)
        return challenger

    def judge(self, challenger: Challenger, *, now: datetime | None = None) -> Verdict:
        now = now or datetime.now(timezone.utc)
        settled = now - timedelta(seconds=self.settings.challenger.settle_seconds)
        searches = self.feedback.challengers.searches(challenger, until=settled)
        expired = now - challenger.started_at > timedelta(hours=self.settings.challenger.max_hours)
        return self.test.decide([s.outcome for s in searches], expired=expired)

    def promote(self, challenger: Challenger, verdict: dict[str, Any]) -> None:
        """Swap the alias to the challenger's collection and promote it, while writers wait."""
        collections, registry = self.handle.collections, self.handle.registry
        with self.handle.writers_paused():
            live = collections.require_live()
            if live.collection != challenger.champion_collection:
                raise ChallengerRunningError(
                    f"the alias serves {live.collection}, not the champion {challenger.champion_collection} this "
                    "challenger was compared with; drop it"
                )
            champion_count = collections.count(challenger.champion_collection)
            challenger_count = collections.count(challenger.challenger_collection)
            if champion_count != challenger_count:
                raise ReindexVerificationError(
                    f"{challenger.challenger_collection} holds {challenger_count} points but the champion "
                    f"{champion_count}: writes missed it (were writers in another process?); drop the challenger"
                )
            crash_point("challenger.before_swap")
            if self.guard is not None:
                self.guard()
            collections.point_alias_at(challenger.challenger_collection)
            crash_point("challenger.after_swap")
            registry.promote(challenger.challenger_version)
        crash_point("challenger.after_promote")
        self._record(challenger, "promoted", verdict)
        _apply_retention(self.handle, self.guard)

    def drop(self, challenger: Challenger, verdict: dict[str, Any]) -> None:
        """End the phase first (writers stop mirroring), then delete the collection."""
        self._record(challenger, "dropped", verdict)
        crash_point("challenger.after_end")
        if self.handle.collections.exists(challenger.challenger_collection):
            live = self.handle.collections.live()
            if live is None or live.collection != challenger.challenger_collection:
                self.handle.collections.drop(challenger.challenger_collection)
        _apply_retention(self.handle, self.guard)

    def reconcile(self) -> Challenger | None:
        """Close a phase that a crash or an operator left inconsistent; return the one still running."""
        challenger = self.active()
        if challenger is None:
            return None
        live = self.handle.collections.live()
        if live is not None and live.collection == challenger.challenger_collection:
            log.warning("challenger %s already serves the alias: finishing its promotion", challenger.challenger_version)
            if self.handle.registry.pointer() and self.handle.registry.current() != challenger.challenger_version:
                self.handle.registry.promote(challenger.challenger_version)
            self._record(challenger, "promoted", {"reason": "promotion finished after an interruption"})
            _apply_retention(self.handle, self.guard)
            return None
        if live is None or live.collection != challenger.champion_collection:
            self.drop(challenger, {"decision": "drop", "reason": f"the champion changed to "
                                   f"{live.collection if live else 'nothing'} during the phase"})
            return None
        if not self.handle.collections.exists(challenger.challenger_collection):
            self.drop(challenger, {"decision": "drop", "reason": "the challenger's collection is gone"})
            return None
        return challenger

    def _record(self, challenger: Challenger, status: Literal["promoted", "dropped"], verdict: dict[str, Any]) -> None:
        ended = self.feedback.challengers.end(challenger.id, status, verdict)
        registry = self.handle.registry
        info = registry.get(challenger.challenger_version)
        changes: dict[str, Any] = {}
        if ended:
            changes["decisions"] = [*info.decisions, {"kind": "challenger", "champion_version": challenger.champion_version,
                                                      "outcome": status, **verdict,
                                                      "decided_at": datetime.now(timezone.utc).isoformat()}]
        if status == "dropped" and info.status != "live":
            changes["status"] = "rejected"
        if changes:
            registry.update_info(challenger.challenger_version, **changes)
        log.info("challenger %s %s: %s", challenger.challenger_version, status, verdict.get("reason"))
