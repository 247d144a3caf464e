"""One tick of the loop: idle -> train -> challenger -> decided -> idle, under a cross-process lease.

A tick with no challenger running mines the clicks, trains a candidate, builds its collection
blue-green, runs the offline check (a guard against clear regressions) and, if it passes, opens the
challenger phase. A tick with a challenger running judges it with the sequential test and promotes,
drops, or leaves it running. Every step is timed and logged; any failure leaves the alias and
CURRENT as they were, marks a candidate ``failed`` and releases the lock (docs/ARCHITECTURE.md
invariant 12).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import partial
from typing import Any, Literal

from clicktune.adapters.clicklog import Challenger, ClickLog
from clicktune.adapters.clicklog.owners import lock_owner
from clicktune.adapters.crashpoints import fail_point
from clicktune.adapters.errors import LeaseLostError
from clicktune.adapters.qdrant import CollectionVersion, IndexHandle, ReindexVerificationError
from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.challenger import ChallengerPhase
from clicktune.scheduler.evaluation import EvalSet
from clicktune.scheduler.gate import OfflineCheck, OfflineCheckResult
from clicktune.scheduler.lock import lock_name
from clicktune.scheduler.miner import MiningConfig, mine_feedback
from clicktune.scheduler.reindex import BlueGreenReindexer, apply_retention
from clicktune.scheduler.text import counted
from clicktune.scheduler.training import ClickTrainer, TrainingConfig

log = logging.getLogger(__name__)

Status = Literal["challenger", "running", "promoted", "dropped", "rejected", "skipped", "locked", "failed"]


@dataclass
class RetrainOutcome:
    """What one tick did: ``challenger`` (a phase opened), ``running`` (still undecided), ``promoted``,
    ``dropped``, ``rejected`` (failed the offline check), ``skipped`` (too few new clicks, or too few training
    pairs from them: nothing to do yet, not a failure), ``locked`` or ``failed``."""

    status: Status
    reason: str
    champion: str | None = None
    candidate: str | None = None
    decision: dict[str, Any] | None = None
    steps: dict[str, float] = field(default_factory=dict)
    mining: dict[str, Any] = field(default_factory=dict)
    alias: str | None = None
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Lease:
    """The alias's lock as this process holds it, renewed from a heartbeat thread.

    A renewal that fails on a database error is retried with a short backoff until the lease would
    run out, so a blip costs nothing. ``held`` turns False for good once a renewal is refused (another
    worker has the lock) or the lease runs out before one lands; its end is counted from before the
    request that set it, so this process gives the lease up no later than the database does. Every
    commit point (alias swap, CURRENT, opening a challenger phase) calls :meth:`ensure_held` first.
    """

    def __init__(self, feedback: ClickLog, name: str, owner: str, seconds: float) -> None:
        self.feedback, self.name, self.owner, self.seconds = feedback, name, owner, seconds
        self._expires = 0.0  # time.monotonic() deadline
        self._lost: str | None = "not acquired"
        self._acquired = False
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def acquire(self) -> bool:
        started = time.monotonic()
        if not self.feedback.acquire_lock(self.name, self.owner, self.seconds):
            return False
        self._expires, self._lost, self._acquired = started + self.seconds, None, True
        self._beat = threading.Thread(target=self._heartbeat, name="clicktune-lease", daemon=True)
        self._beat.start()
        return True

    @property
    def held(self) -> bool:
        if self._lost is None and time.monotonic() >= self._expires:
            self._lose(f"its {self.seconds:g}s ran out before a renewal reached the feedback database")
        return self._lost is None

    def __bool__(self) -> bool:
        return self.held

    def ensure_held(self) -> None:
        """Raise :class:`LeaseLostError` unless the lease is still ours."""
        if not self.held:
            raise LeaseLostError(
                f"lost the lock {self.name!r} ({self._lost}); another worker may hold it, so nothing was swapped "
                "or promoted"
            )

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        if not self._acquired:
            return
        try:
            self.feedback.release_lock(self.name, self.owner)
        except Exception as exc:  # noqa: BLE001 - the lease runs out by itself
            log.warning("could not release the lock %r (%s: %s); it frees itself when its lease runs out",
                        self.name, type(exc).__name__, exc)

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
            log.error("lost the lock %r: %s; this run will not swap or promote", self.name, reason)

    def _heartbeat(self) -> None:
        interval = self.seconds / 3
        first_retry, max_retry = min(1.0, self.seconds / 30), self.seconds / 10
        wait, retry = interval, first_retry
        while not self._stop.wait(wait):
            if not self.held:
                return
            started = time.monotonic()
            try:
                renewed = self.feedback.renew_lock(self.name, self.owner, self.seconds)
            except Exception as exc:  # noqa: BLE001 - a database error: retry until the lease runs out
                left = self._expires - time.monotonic()
                log.warning("renewing the lock %r failed (%s: %s); retrying, %.1fs before its lease runs out",
                            self.name, type(exc).__name__, exc, max(left, 0.0))
                wait, retry = max(min(retry, left), 0.0), min(retry * 2, max_retry)
                continue
            if not renewed:
                self._lose("a renewal was refused: another worker took the lock after its lease ran out")
                return
            if self._lost is None:
                self._expires = started + self.seconds
            wait, retry = interval, first_retry


class RetrainLoop:
    """Owns one retrain; safe to call from a scheduler, the CLI or a test."""

    def __init__(
        self,
        settings: ClicktuneSettings | None = None,
        *,
        handle: IndexHandle | None = None,
        feedback: ClickLog | None = None,
        gate: OfflineCheck | None = None,
        training: TrainingConfig | None = None,
        mining: MiningConfig | None = None,
    ) -> None:
        self.settings = settings or ClicktuneSettings()
        self.feedback = feedback or ClickLog.from_settings(self.settings)
        self._handle = handle
        self.gate = gate or OfflineCheck.from_settings(self.settings)
        self.alias = self.settings.collection_alias
        self.training = training or TrainingConfig.from_settings(self.settings)
        self.mining = mining or MiningConfig.from_settings(self.settings)
        self.owner = lock_owner()

    @property
    def handle(self) -> IndexHandle:
        # Opened only once the lock is held: a losing worker never touches (embedded) Qdrant.
        if self._handle is None:
            self._handle = IndexHandle.from_settings(self.settings)
        return self._handle

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        """Hold the alias's cross-process lock, renewing its lease from a heartbeat thread while we work.

        Yields the :class:`Lease`, falsy (holding nothing) when another process has the lock. Every
        command that changes the alias or CURRENT takes it: retrain, reindex, rollback and ending a
        challenger by hand; each passes ``lease.ensure_held`` to the step that commits the change.
        """
        lease = Lease(self.feedback, lock_name(self.alias), self.owner, self.settings.schedule.lock_lease_seconds)
        if not lease.acquire():
            yield lease
            return
        try:
            yield lease
        finally:
            lease.release()

    def tick(self, *, force: bool = False) -> RetrainOutcome:
        """One step of the loop: judge the running challenger, or train a candidate and open its phase.

        ``force`` trains even when fewer than ``min_new_clicks`` clicks arrived since the last run.
        """
        with self.lease() as lease:
            if not lease:
                return RetrainOutcome("locked", "another retrain holds the lock")
            return self._run(force=force, guard=lease.ensure_held)

    # The steps -----------------------------------------------------------------------------------
    def _run(self, *, force: bool, guard: Callable[[], None] | None = None) -> RetrainOutcome:
        steps: dict[str, float] = {}
        run_started = datetime.now(timezone.utc)
        outcome = RetrainOutcome("failed", "")
        try:
            if self.feedback.challengers.active(self.alias) is not None:
                phase = ChallengerPhase(self.handle, self.feedback, self.settings, guard=guard)
                running = phase.reconcile()
                if running is not None:
                    outcome = self._judge(phase, running, steps)
                    return outcome
            last = self.feedback.last_run()
            since = last["started_at"] if last else None
            new_clicks = self.feedback.count_clicks(since=since, alias=self.alias)
            if not force and new_clicks < self.settings.schedule.min_new_clicks:
                outcome = RetrainOutcome("skipped", f"{counted(new_clicks, 'new click')} < "
                                                    f"min_new_clicks={self.settings.schedule.min_new_clicks}")
                return outcome
            self._train_and_challenge(run_started, steps, outcome, guard)
        except Exception as exc:
            outcome.status, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.error("loop tick failed; alias and CURRENT unchanged: %s", outcome.reason, exc_info=True)
        finally:
            outcome.steps, outcome.alias = steps, self.alias
            if outcome.status not in ("skipped", "running"):
                self.feedback.record_run(run_started, outcome.as_dict())
        return outcome

    def _train_and_challenge(self, run_started: datetime, steps: dict[str, float], outcome: RetrainOutcome,
                             guard: Callable[[], None] | None) -> None:
        live = self.handle.collections.require_live()
        outcome.champion = live.version
        with self._step("mine", steps):
            fail_point("mine")
            texts = partial(self.handle.index.texts, live.version)
            mined = mine_feedback(self.feedback, texts, self.mining, alias=self.alias)
        outcome.mining = mined.stats_dict()
        if len(mined.train) < self.training.min_pairs:  # not a failure: the clicks do not make enough pairs yet
            outcome.status, outcome.reason = "skipped", (
                f"{counted(len(mined.train), 'training pair')} in the feedback window, fewer than "
                f"train_min_pairs={self.training.min_pairs}: nothing trained; collect more clicks")
            return
        try:
            with self._step("train", steps):
                result = ClickTrainer(self.handle.registry, self.settings, self.training).train(
                    mined.train, info={"mining": outcome.mining, "window_end": run_started.isoformat()}
                )
            outcome.candidate = result.version

            heldout = EvalSet(mined.eval_queries, mined.eval_relevant, name="heldout", judged=mined.eval_judged)
            phase = ChallengerPhase(self.handle, self.feedback, self.settings, guard=guard)

            def offline_check(champion: str, candidate: str) -> OfflineCheckResult:
                with self._step("offline_check", steps):
                    return self.gate.evaluate(self.handle, champion, candidate, heldout)

            def open_phase(champion: CollectionVersion, built: CollectionVersion, check: OfflineCheckResult) -> None:
                phase.start(champion, built, check.as_dict())

            with self._step("build", steps):
                report = BlueGreenReindexer(self.handle, guard=guard).run(
                    result.version, approve=offline_check, hand_off=open_phase)
        except Exception as exc:
            if outcome.candidate is not None:
                self.handle.registry.update_info(outcome.candidate, status="failed",
                                                 training_error=f"{type(exc).__name__}: {exc}")
            raise
        check: OfflineCheckResult = report.approval
        outcome.decision = {"offline": check.as_dict()}
        registry = self.handle.registry
        info = registry.get(result.version)
        registry.update_info(result.version, metrics=check.candidate,
                             decisions=[*info.decisions, {"kind": "offline", **check.as_dict()}],
                             **({} if report.handed_off else {"status": "rejected"}))
        if not report.handed_off:
            outcome.status, outcome.reason = "rejected", f"offline check: {check.reason}"
            apply_retention(self.handle, guard=guard)  # after its decision is recorded: it may go
        else:
            outcome.status = "challenger"
            outcome.reason = f"{result.version} passed the offline check ({check.reason}); challenger phase started"

    def _judge(self, phase: ChallengerPhase, challenger: Challenger, steps: dict[str, float]) -> RetrainOutcome:
        outcome = RetrainOutcome("running", "", champion=challenger.champion_version,
                                 candidate=challenger.challenger_version)
        with self._step("judge", steps):
            verdict = phase.judge(challenger)
        outcome.decision = {"challenger_id": challenger.id, **verdict.as_dict()}
        outcome.reason = verdict.reason
        if verdict.decision == "continue":
            return outcome
        with self._step("decide", steps):
            if verdict.decision == "promote":
                try:
                    phase.promote(challenger, verdict.as_dict())
                except ReindexVerificationError as exc:
                    # A challenger that missed writes must not go live; it cannot be repaired in place.
                    phase.drop(challenger, {**verdict.as_dict(), "decision": "drop", "reason": str(exc)})
                    outcome.status, outcome.reason = "dropped", str(exc)
                    return outcome
                outcome.status = "promoted"
            else:
                phase.drop(challenger, verdict.as_dict())
                outcome.status = "dropped"
        return outcome

    @contextmanager
    def _step(self, name: str, steps: dict[str, float]) -> Iterator[None]:
        started = time.perf_counter()
        log.info("retrain step %s ...", name)
        try:
            yield
        finally:
            steps[name] = round(time.perf_counter() - started, 3)
            log.info("retrain step %s took %.1fs", name, steps[name])
