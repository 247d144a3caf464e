"""One tick of the loop: idle -> train -> challenger -> decided -> idle, under a cross-process lease.

A tick with no challenger running mines the clicks, trains a candidate, builds its collection
blue-green, runs the offline check (a guard against clear regressions) and, if it passes, opens the
challenger phase. A tick with a challenger running judges it with the sequential test and promotes,
drops, or leaves it running. Every step is timed and logged; any failure leaves the alias and
CURRENT as they were, marks a candidate ``failed`` and releases the lock (DESIGN invariant 6).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from clicktune.adapters.clicklog import Challenger, ClickLog
from clicktune.adapters.crashpoints import fail_point
from clicktune.adapters.qdrant import IndexHandle, LiveCollection, ReindexVerificationError
from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.challenger import ChallengerPhase
from clicktune.scheduler.evaluation import EvalSet
from clicktune.scheduler.gate import OfflineCheck, OfflineCheckResult
from clicktune.scheduler.miner import MiningConfig, mine_feedback
from clicktune.scheduler.reindex import BlueGreenReindexer
from clicktune.scheduler.training import ClickTrainer, TrainingConfig

log = logging.getLogger(__name__)

LOCK_NAME = "clicktune-retrain"
Status = Literal["challenger", "running", "promoted", "dropped", "rejected", "skipped", "locked", "failed"]


def lock_name(alias: str) -> str:
    """One lease per alias: aliases sharing a feedback database retrain independently."""
    return f"{LOCK_NAME}:{alias}"


@dataclass
class RetrainOutcome:
    """What one tick did: ``challenger`` (a phase opened), ``running`` (still undecided), ``promoted``,
    ``dropped``, ``rejected`` (failed the offline check), ``skipped``, ``locked`` or ``failed``."""

    status: Status
    reason: str
    champion: str | None = None
    candidate: str | None = None
    decision: dict[str, Any] | None = None
    steps: dict[str, float] = field(default_factory=dict)
    mining: dict[str, Any] = field(default_factory=dict)
    started_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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
        self.mining = mining or MiningConfig(window_days=self.settings.feedback_window_days)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    @property
    def handle(self) -> IndexHandle:
        # Opened only once the lock is held: a losing worker never touches (embedded) Qdrant.
        if self._handle is None:
            self._handle = IndexHandle.from_settings(self.settings)
        return self._handle

    @contextmanager
    def lease(self) -> Iterator[bool]:
        """Hold the alias's cross-process lock, renewing its lease from a heartbeat thread while we work.

        Yields False (and holds nothing) when another process has it. Every command that changes the
        alias or CURRENT takes it: retrain, reindex, rollback and ending a challenger by hand.
        """
        lease = self.settings.lock_lease_seconds
        name = lock_name(self.alias)
        if not self.feedback.acquire_lock(name, self.owner, lease):
            yield False
            return
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(lease / 3):
                if not self.feedback.renew_lock(name, self.owner, lease):
                    log.error("lost the retrain lock lease; another worker may take over")
                    return

        beat = threading.Thread(target=heartbeat, name="clicktune-lease", daemon=True)
        beat.start()
        try:
            yield True
        finally:
            stop.set()
            beat.join(timeout=5)
            self.feedback.release_lock(name, self.owner)

    def tick(self, *, force: bool = False) -> RetrainOutcome:
        """One step of the loop: judge the running challenger, or train a candidate and open its phase.

        ``force`` trains even when fewer than ``min_new_clicks`` clicks arrived since the last run.
        """
        with self.lease() as held:
            if not held:
                return RetrainOutcome("locked", "another retrain holds the lock")
            return self._run(force=force)

    # The steps -----------------------------------------------------------------------------------
    def _run(self, *, force: bool) -> RetrainOutcome:
        steps: dict[str, float] = {}
        run_started = datetime.now(timezone.utc)
        outcome = RetrainOutcome("failed", "")
        try:
            if self.feedback.challengers.active(self.alias) is not None:
                phase = ChallengerPhase(self.handle, self.feedback, self.settings)
                running = phase.reconcile()
                if running is not None:
                    outcome = self._judge(phase, running, steps)
                    return outcome
            last = self.feedback.last_run()
            since = last["started_at"] if last else None
            new_clicks = self.feedback.count_clicks(since=since, alias=self.alias)
            if not force and new_clicks < self.settings.min_new_clicks:
                outcome = RetrainOutcome("skipped", f"{new_clicks} new clicks < min_new_clicks={self.settings.min_new_clicks}")
                return outcome
            self._train_and_challenge(run_started, steps, outcome)
        except Exception as exc:
            outcome.status, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.error("loop tick failed; alias and CURRENT unchanged: %s", outcome.reason, exc_info=True)
        finally:
            outcome.steps = steps
            if outcome.status not in ("skipped", "running"):
                self.feedback.record_run(run_started, outcome.as_dict())
        return outcome

    def _train_and_challenge(self, run_started: datetime, steps: dict[str, float], outcome: RetrainOutcome) -> None:
        live = self.handle.collections.require_live()
        outcome.champion = live.version
        with self._step("mine", steps):
            fail_point("mine")
            mined = mine_feedback(self.feedback, self._doc_texts(live.collection), self.mining, alias=self.alias)
        outcome.mining = mined.stats_dict()
        try:
            with self._step("train", steps):
                result = ClickTrainer(self.handle.registry, self.settings, self.training).train(
                    mined.train, info={"mining": outcome.mining, "window_end": run_started.isoformat()}
                )
            outcome.candidate = result.version

            heldout = EvalSet(mined.eval_queries, mined.eval_relevant, name="heldout", judged=mined.eval_judged)
            checks: list[OfflineCheckResult] = []
            phase = ChallengerPhase(self.handle, self.feedback, self.settings)

            def offline_check(champion_collection: str, candidate_collection: str) -> bool:
                with self._step("offline_check", steps):
                    checks.append(self.gate.evaluate(self.handle, champion_collection, candidate_collection, heldout))
                return checks[0].passed

            def open_phase(champion: LiveCollection, built: LiveCollection) -> None:
                phase.start(champion, built, checks[0].as_dict())

            with self._step("build", steps):
                report = BlueGreenReindexer(self.handle).run(result.version, approve=offline_check, hand_off=open_phase)
        except Exception as exc:
            if outcome.candidate is not None:
                self.handle.registry.update_info(outcome.candidate, status="failed",
                                                 training_error=f"{type(exc).__name__}: {exc}")
            raise
        check = checks[0]
        outcome.decision = {"offline": check.as_dict()}
        registry = self.handle.registry
        info = registry.get(result.version)
        registry.update_info(result.version, metrics=check.candidate,
                             decisions=[*info.decisions, {"kind": "offline", **check.as_dict()}],
                             **({} if report.handed_off else {"status": "rejected"}))
        if not report.handed_off:
            outcome.status, outcome.reason = "rejected", f"offline check: {check.reason}"
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
                BlueGreenReindexer(self.handle).apply_retention()
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

    def _doc_texts(self, collection: str):
        """Document texts for the miner, read from the live collection by caller id."""
        from clicktune.adapters.qdrant import document_from_payload, point_id

        client = self.handle.client

        def lookup(ids: list[str]) -> dict[str, str]:
            found: dict[str, str] = {}
            for start in range(0, len(ids), 256):
                chunk = ids[start : start + 256]
                for p in client.retrieve(collection, [point_id(i) for i in chunk], with_payload=True):
                    doc = document_from_payload(p.payload or {}, p.id)
                    found[str(doc.id)] = doc.page_content
            return found

        return lookup
