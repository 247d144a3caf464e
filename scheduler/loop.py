"""One turn of the loop: lock -> mine -> train -> build + gate -> swap -> CURRENT -> release.

Every step is timed and logged. Any failure leaves the alias and CURRENT as they were (the reindexer
only swaps after the gate approved), marks the candidate ``failed`` and releases the lock; a
rejected candidate is marked ``rejected`` with both models' scores (DESIGN invariant 6).
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

from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.crashpoints import fail_point
from clicktune.adapters.qdrant import IndexHandle
from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.evaluation import EvalSet
from clicktune.scheduler.gate import GateDecision, PromotionGate
from clicktune.scheduler.miner import MiningConfig, mine_feedback
from clicktune.scheduler.reindex import BlueGreenReindexer
from clicktune.scheduler.training import ClickTrainer, TrainingConfig

log = logging.getLogger(__name__)

LOCK_NAME = "clicktune-retrain"
Status = Literal["promoted", "rejected", "skipped", "locked", "failed"]


@dataclass
class RetrainOutcome:
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
        gate: PromotionGate | None = None,
        training: TrainingConfig | None = None,
        mining: MiningConfig | None = None,
    ) -> None:
        self.settings = settings or ClicktuneSettings()
        self.feedback = feedback or ClickLog.from_settings(self.settings)
        self._handle = handle
        self.gate = gate or PromotionGate.from_settings(self.settings)
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
    def _lease(self) -> Iterator[bool]:
        """Hold the cross-process lock, renewing its lease from a heartbeat thread while we work."""
        lease = self.settings.lock_lease_seconds
        if not self.feedback.acquire_lock(LOCK_NAME, self.owner, lease):
            yield False
            return
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(lease / 3):
                if not self.feedback.renew_lock(LOCK_NAME, self.owner, lease):
                    log.error("lost the retrain lock lease; another worker may take over")
                    return

        beat = threading.Thread(target=heartbeat, name="clicktune-lease", daemon=True)
        beat.start()
        try:
            yield True
        finally:
            stop.set()
            beat.join(timeout=5)
            self.feedback.release_lock(LOCK_NAME, self.owner)

    def retrain_once(self, *, force: bool = False) -> RetrainOutcome:
        with self._lease() as held:
            if not held:
                return RetrainOutcome("locked", "another retrain holds the lock")
            return self._run(force=force)

    # The steps -----------------------------------------------------------------------------------
    def _run(self, *, force: bool) -> RetrainOutcome:
        steps: dict[str, float] = {}
        outcome = RetrainOutcome("failed", "")
        last = self.feedback.last_run()
        since = last["started_at"] if last else None
        new_clicks = self.feedback.count_clicks(since=since)
        if not force and new_clicks < self.settings.min_new_clicks:
            outcome = RetrainOutcome("skipped", f"{new_clicks} new clicks < min_new_clicks={self.settings.min_new_clicks}")
            return outcome
        run_started = datetime.now(timezone.utc)
        candidate: str | None = None
        try:
            live = self.handle.collections.require_live()
            outcome.champion = live.version

            with self._step("mine", steps):
                fail_point("mine")
                mined = mine_feedback(self.feedback, self._doc_texts(live.collection), self.mining)
            outcome.mining = mined.stats_dict()

            with self._step("train", steps):
                result = ClickTrainer(self.handle.registry, self.settings, self.training).train(
                    mined.train, info={"mining": outcome.mining, "window_end": run_started.isoformat()}
                )
            candidate = outcome.candidate = result.version

            heldout = EvalSet(mined.eval_queries, mined.eval_relevant, name="heldout", judged=mined.eval_judged)
            decision: list[GateDecision] = []

            def approve(champion_collection: str, candidate_collection: str) -> bool:
                with self._step("gate", steps):
                    decision.append(self.gate.evaluate(self.handle, champion_collection, candidate_collection, heldout))
                return decision[0].promoted

            with self._step("reindex", steps):
                report = BlueGreenReindexer(self.handle).run(candidate, approve=approve)
            verdict = decision[0]
            outcome.decision = verdict.as_dict()
            self._record_decision(candidate, verdict, promoted=report.swapped)
            outcome.status = "promoted" if report.swapped else "rejected"
            outcome.reason = verdict.reason
        except Exception as exc:
            outcome.status, outcome.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("retrain failed; alias and CURRENT unchanged")
            if candidate is not None:
                self.handle.registry.update_info(candidate, status="failed", training_error=outcome.reason)
        finally:
            outcome.steps = steps
            self.feedback.record_run(run_started, outcome.as_dict())
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

    def _record_decision(self, candidate: str, decision: GateDecision, *, promoted: bool) -> None:
        registry = self.handle.registry
        info = registry.get(candidate)
        changes: dict[str, Any] = {
            "decisions": [*info.decisions, decision.as_dict()],
            "metrics": decision.candidate,
        }
        if not promoted:
            changes["status"] = "rejected"
        registry.update_info(candidate, **changes)

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
