"""The offline check: a safety guard a candidate must pass before it may face users as a challenger.

Why only a guard, and not the judge: its held-out labels are clicks on the champion's own shown top
10, so it can see a candidate re-order that list but never the relevant documents the champion did
not show, which is where a fine-tuned model gains most. Judging a gain is the challenger phase's job
(online interleaving, ``clicktune.scheduler.challenger``). What this check can do well is refuse a
clear regression at once, before any user sees it: broken training drops the held-out score far
beyond ``tolerance``, and a golden set of judged queries, when given, must not drop by more than
``golden_tolerance`` (docs/ARCHITECTURE.md invariant 8).

Why the held-out drop must also be significant: a tenth of the click queries is a few dozen to a few
hundred queries labelled by noisy clicks, and the standard error of a paired nDCG@10 difference over
them (about 0.015 on SciFact's ~80) is as large as the tolerance. Refusing every point estimate
beyond the tolerance refused candidates that were better on SciFact's test judgements, by 0.0045 to
0.008, in rounds 2 and 3 of ``benchmarks/beir_loop.py`` (SciFact). So the check refuses a candidate only
when the held-out queries show, with one-sided confidence ``1 - alpha`` (a paired t-test of the
per-query differences against the margin), that it is worse by more than ``tolerance``. A broken model
still fails at once; a difference the held-out set cannot resolve goes to the interleaving judge.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from scipy import stats

from clicktune.adapters.crashpoints import fail_point
from clicktune.adapters.qdrant import IndexHandle
from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.evaluation import EvalSet, Scores, evaluate_version


@dataclass
class OfflineCheckResult:
    """Both models' scores and the verdict; written into the candidate's registry metadata."""

    passed: bool
    reason: str
    metric: str
    tolerance: float
    champion_version: str
    candidate_version: str
    #: One-sided p-value that the held-out drop exceeds ``tolerance`` (None: no drop beyond it).
    drop_p_value: float | None = None
    alpha: float | None = None
    champion: dict[str, dict[str, float | int]] = field(default_factory=dict)
    candidate: dict[str, dict[str, float | int]] = field(default_factory=dict)
    decided_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class OfflineCheck:
    """No regression beyond ``tolerance`` on held-out clicks, nor beyond ``golden_tolerance`` on golden.

    ``report_sets`` are scored for both models and recorded with the result, never decided on: how a
    benchmark or the demo sees a candidate's score on judged queries the loop must not learn from.
    """

    metric: str = "ndcg@10"
    tolerance: float = 0.02
    min_queries: int = 10
    golden: EvalSet | None = None
    golden_tolerance: float = 0.005
    report_sets: dict[str, EvalSet] = field(default_factory=dict)
    #: The held-out drop must exceed ``tolerance`` at this one-sided significance level to refuse.
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha={self.alpha}: the held-out drop's significance level must lie in (0, 0.5)")
        reserved = {"heldout", "golden"} & set(self.report_sets)
        if reserved:
            raise ValueError(f"report set names {sorted(reserved)} are the check's own: name them otherwise")

    @classmethod
    def from_settings(cls, settings: ClicktuneSettings, report_sets: dict[str, EvalSet] | None = None) -> OfflineCheck:
        gate = settings.gate
        golden = EvalSet.from_beir(gate.golden_dir) if gate.golden_dir else None
        return cls(metric=gate.metric, tolerance=gate.tolerance, min_queries=gate.min_queries, golden=golden,
                   golden_tolerance=gate.golden_tolerance, report_sets=dict(report_sets or {}), alpha=gate.alpha)

    def drop_p_value(self, champion: Scores, candidate: Scores) -> float:
        """One-sided p-value of "the candidate is worse by more than ``tolerance``" over paired queries.

        A paired t-test of the per-query differences shifted by the margin; with identical
        differences on every query (no variance) the drop is exact and the answer is 0 or 1.
        """
        before, after = champion.per_query.get(self.metric), candidate.per_query.get(self.metric)
        if not before or not after:
            raise ValueError(f"scores carry no per-query {self.metric}: compute them with ir_metrics")
        shifted = [after[q] - before[q] + self.tolerance for q in sorted(before.keys() & after.keys())]
        if len(set(shifted)) <= 1:
            return 0.0 if shifted and shifted[0] < 0 else 1.0
        return float(stats.ttest_1samp(shifted, 0.0, alternative="less").pvalue)

    def decide(
        self,
        champion_version: str,
        candidate_version: str,
        champion: dict[str, Scores],
        candidate: dict[str, Scores],
    ) -> OfflineCheckResult:
        """Pure decision from scores, so it can be tested without any model."""
        p_value: float | None = None

        def result(passed: bool, reason: str) -> OfflineCheckResult:
            return OfflineCheckResult(
                passed, reason, self.metric, self.tolerance, champion_version, candidate_version,
                p_value, self.alpha,
                {k: v.as_dict() for k, v in champion.items()}, {k: v.as_dict() for k, v in candidate.items()},
            )

        champion_heldout, candidate_heldout = champion["heldout"], candidate["heldout"]
        if candidate_heldout.queries < self.min_queries:
            return result(False, f"only {candidate_heldout.queries} held-out queries; "
                                 f"gate_min_queries={self.min_queries}")
        before, after = champion_heldout.get(self.metric), candidate_heldout.get(self.metric)
        delta = after - before
        unresolved = ""
        if delta < -self.tolerance:
            p_value = self.drop_p_value(champion_heldout, candidate_heldout)
            evidence = f"one-sided p {p_value:.3f} over {candidate_heldout.queries} queries"
            if p_value < self.alpha:
                return result(False, f"held-out {self.metric} {after:.4f} vs champion {before:.4f}: drops by "
                                     f"{-delta:.4f} > tolerance {self.tolerance} ({evidence} < alpha {self.alpha})")
            unresolved = f"; the drop is not significantly beyond it ({evidence} >= alpha {self.alpha})"
        if "golden" in champion:
            drop = champion["golden"].get(self.metric) - candidate["golden"].get(self.metric)
            if drop > self.golden_tolerance:
                return result(False, f"golden {self.metric} drops by {drop:.4f} > tolerance {self.golden_tolerance}")
        return result(True, f"held-out {self.metric} {before:.4f} -> {after:.4f} (delta {delta:+.4f}, "
                            f"tolerance {self.tolerance}{unresolved})")

    def evaluate(self, handle: IndexHandle, champion: str, candidate: str, heldout: EvalSet) -> OfflineCheckResult:
        """Score both versions' live-corpus collections on the held-out clicks (and the golden set) and decide."""
        fail_point("gate")
        sets = {"heldout": heldout, **({"golden": self.golden} if self.golden else {}), **self.report_sets}

        def scores(version: str) -> dict[str, Scores]:
            return {name: evaluate_version(handle, version, s) for name, s in sets.items()}

        return self.decide(champion, candidate, scores(champion), scores(candidate))
