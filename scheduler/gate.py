"""The promotion gate: a candidate goes live only if it is measurably better (DESIGN invariant 6)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from clicktune.adapters.crashpoints import fail_point
from clicktune.adapters.qdrant import IndexHandle
from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.evaluation import EvalSet, Scores, evaluate_collection


@dataclass
class GateDecision:
    """Both models' scores and the verdict; written into the candidate's registry metadata."""

    promoted: bool
    reason: str
    metric: str
    min_delta: float
    champion_version: str
    candidate_version: str
    champion: dict[str, dict[str, float | int]] = field(default_factory=dict)
    candidate: dict[str, dict[str, float | int]] = field(default_factory=dict)
    decided_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PromotionGate:
    metric: str = "ndcg@10"
    min_delta: float = 0.005
    min_queries: int = 10
    golden: EvalSet | None = None
    golden_tolerance: float = 0.005

    @classmethod
    def from_settings(cls, settings: ClicktuneSettings) -> PromotionGate:
        golden = EvalSet.from_beir(settings.golden_dir) if settings.golden_dir else None
        return cls(settings.gate_metric, settings.gate_min_delta, settings.gate_min_queries, golden,
                   settings.golden_tolerance)

    def decide(
        self,
        champion_version: str,
        candidate_version: str,
        champion: dict[str, Scores],
        candidate: dict[str, Scores],
    ) -> GateDecision:
        """Pure decision from scores, so it can be tested without any model."""
        def record(promoted: bool, reason: str) -> GateDecision:
            return GateDecision(
                promoted, reason, self.metric, self.min_delta, champion_version, candidate_version,
                {k: v.as_dict() for k, v in champion.items()}, {k: v.as_dict() for k, v in candidate.items()},
            )

        held_c, held_n = champion["heldout"], candidate["heldout"]
        if held_n.queries < self.min_queries:
            return record(False, f"only {held_n.queries} held-out queries; gate_min_queries={self.min_queries}")
        delta = held_n.get(self.metric) - held_c.get(self.metric)
        if delta < self.min_delta:
            return record(False, f"held-out {self.metric} {held_n.get(self.metric):.4f} vs champion "
                                 f"{held_c.get(self.metric):.4f}: delta {delta:+.4f} < min_delta {self.min_delta}")
        if "golden" in champion:
            drop = champion["golden"].get(self.metric) - candidate["golden"].get(self.metric)
            if drop > self.golden_tolerance:
                return record(False, f"golden {self.metric} drops by {drop:.4f} > tolerance {self.golden_tolerance}")
        return record(True, f"held-out {self.metric} {held_c.get(self.metric):.4f} -> {held_n.get(self.metric):.4f} "
                            f"(delta {delta:+.4f} >= {self.min_delta})")

    def evaluate(
        self, handle: IndexHandle, champion_collection: str, candidate_collection: str, heldout: EvalSet
    ) -> GateDecision:
        """Score both live-corpus collections on the held-out clicks (and the golden set) and decide."""
        fail_point("gate")
        champion_version = handle.collections.version_of(champion_collection)
        candidate_version = handle.collections.version_of(candidate_collection)
        assert champion_version and candidate_version
        sets = {"heldout": heldout, **({"golden": self.golden} if self.golden else {})}
        batch = handle.settings.batch_size
        champion = {
            name: evaluate_collection(handle.client, champion_collection, handle.encoder(champion_version), s,
                                      batch_size=batch)
            for name, s in sets.items()
        }
        candidate = {
            name: evaluate_collection(handle.client, candidate_collection, handle.encoder(candidate_version), s,
                                      batch_size=batch)
            for name, s in sets.items()
        }
        return self.decide(champion_version, candidate_version, champion, candidate)
