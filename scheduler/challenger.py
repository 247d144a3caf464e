"""The challenger phase: a candidate that passed the offline check faces the champion online.

While it runs, a share of searches (``interleave_share``) is served as a team-draft interleaving of
both models (``clicktune.plugin.interleaving``); each click credits the model that contributed the
clicked document, and each search is a win, a loss or a tie for the challenger. The phase's state is
a row in the feedback database, so every serving process and the worker see the same challenger.

The decision: a one-sided sign test on wins and losses (ties carry no information about which model
is better and are left out), run as a group-sequential test. Looks happen at fixed numbers of decided
searches, ``first_look`` doubling up to ``last_look`` (100, 200, 400, 800, 1600, 3200 by default), each
using the first *n* decided searches in time order, so the verdict is a pure function of the log and
does not depend on how often the scheduler ticks. The boundaries are Haybittle-Peto's (Haybittle 1971;
Peto et al. 1976): at every look before the last, promote at ``z >= interim_z`` (3.0) and drop at
``z <= -interim_z``, which stops a phase early only on overwhelming evidence; at the last look, promote
at ``z >= c`` and drop otherwise, with ``c`` set so that a challenger that is no better than the
champion is promoted with probability ``alpha`` at most over all looks (computed for the look
schedule from the Brownian-motion limit of the sign test; about 1.68 for the default schedule). The
phase is also dropped when ``max_hours`` pass first. Repeatedly testing a plain ``z >= 1.645`` instead
would promote an equal model far more often than 5% of the time.

Why Haybittle-Peto and not one constant boundary for every look (Pocock 1977, used until 2026-12-05):
after the first round, a loop's candidates gain little over its champion, so most phases are decided
at the last look, where Pocock's constant (2.28 over six looks) spends most of ``alpha`` on early looks
that such gains never cross. On SciFact a candidate better by +0.008 test nDCG@10 reached z 2.19 at
the last look and was dropped. A large gain still ends the phase at an early look.
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
from clicktune.adapters.errors import ChallengerRunningError, ConfigurationError
from clicktune.adapters.qdrant import CollectionVersion, IndexHandle, ReindexVerificationError
from clicktune.adapters.settings import ClicktuneSettings

log = logging.getLogger(__name__)

Decision = Literal["promote", "drop", "continue"]


@lru_cache(maxsize=32)
def last_look_boundary(
    alpha: float, looks: tuple[int, ...], interim_z: float, paths: int = 400_000, seed: int = 12345
) -> float:
    """The last look's ``c``: P(promoted at any look) = alpha when the challenger is no better.

    Under the null the standardised sign statistic at look k is B(t_k) / sqrt(t_k) for a Brownian
    motion B and information fractions t_k = n_k / n_last. A simulated path is promoted early if its
    first interim crossing of +-``interim_z`` is upward; ``c`` is the quantile of the last look's z
    among the paths never stopped early that brings the total to ``alpha`` (seeded, so the boundary is
    a fixed number for a given schedule; 400,000 paths put its Monte Carlo error near 0.005).
    """
    fractions = np.asarray(looks, dtype=np.float64) / looks[-1]
    rng = np.random.default_rng(seed)
    increments = rng.standard_normal((paths, len(fractions))) * np.sqrt(np.diff(fractions, prepend=0.0))
    z = np.cumsum(increments, axis=1) / np.sqrt(fractions)
    interim = np.abs(z[:, :-1]) >= interim_z
    stopped = interim.any(axis=1)
    first = interim.argmax(axis=1) if interim.shape[1] else np.zeros(paths, dtype=np.int64)
    promoted_early = int((stopped & (z[np.arange(paths), first] > 0)).sum())
    left = int(round(alpha * paths)) - promoted_early
    if left <= 0:
        raise ConfigurationError(f"challenger_interim_z={interim_z} alone promotes an equal challenger more often than "
                         f"challenger_alpha={alpha} over {len(looks) - 1} interim looks: raise it")
    return float(np.sort(z[~stopped, -1])[::-1][left - 1])


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
    #: The last look's boundary; ``interim_boundary`` is every earlier look's (each look records its own).
    boundary: float
    alpha: float
    looks: list[dict[str, float]] = field(default_factory=list)
    interim_boundary: float = 0.0
    logged: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SequentialSignTest:
    alpha: float = 0.05
    first_look: int = 100
    last_look: int = 3200
    interim_z: float = 3.0

    def __post_init__(self) -> None:
        self.boundary  # noqa: B018 - computed (and cached) now, so an unusable schedule fails at start-up

    @classmethod
    def from_settings(cls, settings: ClicktuneSettings) -> SequentialSignTest:
        c = settings.challenger
        return cls(c.alpha, c.first_look, c.last_look, c.interim_z)

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
        """The last look's boundary (every earlier look's is ``interim_z``)."""
        return last_look_boundary(self.alpha, self.looks, self.interim_z)

    def boundary_at(self, n: int) -> float:
        return self.boundary if n == self.looks[-1] else self.interim_z

    def decide(self, outcomes: Sequence[int], *, expired: bool = False) -> Verdict:
        """``outcomes`` in time order: +1 a challenger win, -1 a loss, 0 a tie."""
        decided = [o for o in outcomes if o != 0]
        c = self.boundary

        def verdict(decision: Decision, reason: str, looks: list[dict[str, float]], at: int | None = None) -> Verdict:
            used = list(outcomes) if at is None else _up_to_decided(outcomes, at)
            w, lo = used.count(1), used.count(-1)
            z = (w - lo) / math.sqrt(w + lo) if w + lo else 0.0
            return Verdict(decision, reason, len(used), w, lo, len(used) - w - lo, round(z, 4),
                           round(c, 4), self.alpha, looks, logged=len(outcomes), interim_boundary=self.interim_z)

        looks: list[dict[str, float]] = []
        for n in self.looks:
            if n > len(decided):
                break
            z_n = sum(decided[:n]) / math.sqrt(n)
            bound = self.boundary_at(n)
            looks.append({"decided": n, "z": round(z_n, 4), "boundary": round(bound, 4)})
            if z_n >= bound:
                return verdict("promote", f"z {z_n:.2f} >= {bound:.2f} after {n} decided searches", looks, at=n)
            if z_n <= -bound and n != self.looks[-1]:
                return verdict("drop", f"z {z_n:.2f} <= -{bound:.2f} after {n} decided searches: worse", looks, at=n)
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


def judge_phase(feedback: ClickLog, settings: ClicktuneSettings, challenger: Challenger, *,
                now: datetime | None = None) -> Verdict:
    """The sequential test on the phase's settled searches: the feedback database alone, no Qdrant, so
    ``clicktune status`` shows the tally while an app holds embedded Qdrant."""
    now = now or datetime.now(timezone.utc)
    settled = now - timedelta(seconds=settings.challenger.settle_seconds)
    searches = feedback.challengers.searches(challenger, until=settled)
    expired = now - challenger.started_at > timedelta(hours=settings.challenger.max_hours)
    return SequentialSignTest.from_settings(settings).decide([s.outcome for s in searches], expired=expired)


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
        return judge_phase(self.feedback, self.settings, challenger, now=now)

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
        """End the phase while writers wait (they stop mirroring), then delete the collection.

        A writer reads the running row under the shared side of the write lock; ending the row under
        the exclusive side means every write that read it has finished writing the challenger's
        collection, and every later one never reads it, so no write fails on the collection going
        away after it reached the live one (docs/ARCHITECTURE.md invariant 4).
        """
        with self.handle.writers_paused():
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
            changes["status"] = "dropped"  # users saw it and it lost; "rejected" is the offline check's
        if changes:
            registry.update_info(challenger.challenger_version, **changes)
        log.info("challenger %s %s: %s", challenger.challenger_version, status, verdict.get("reason"))
