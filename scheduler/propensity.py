"""Position bias: how likely a user is to even look at rank r (the examination propensity).

Clicks at rank 1 are cheap evidence (everyone looks there), clicks at rank 8 are strong evidence.
Inverse-propensity weighting (Joachims et al., 2017) divides each click by the chance its rank was
examined, so training does not simply re-learn the old ranking.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


def power_law_examination(rank: int, eta: float) -> float:
    """The position-based model's examination curve, ``1 / rank**eta``: the miner's prior where the log
    is thin, and the simulator's ground truth, so the two can be compared like for like."""
    return 1.0 / rank**eta


@dataclass
class PropensityModel:
    """Per-rank propensities, normalised to rank 1 = 1.0, monotone non-increasing."""

    eta: float = 1.0
    min_impressions_per_rank: int = 200
    floor: float = 0.02

    def prior(self, rank: int) -> float:
        return power_law_examination(rank, self.eta)

    def fit(self, impressions_by_rank: Mapping[int, int], clicks_by_rank: Mapping[int, int]) -> dict[int, tuple[float, str]]:
        """Estimate from click-through rates where a rank has enough impressions, else use the prior.

        The CTR ratio to rank 1 over-states position bias a little (better documents sit higher), which
        errs towards up-weighting low-rank clicks; the monotone envelope and the floor keep it sane.
        """
        ranks = sorted(impressions_by_rank)
        ctr1_n = impressions_by_rank.get(1, 0)
        ctr1 = clicks_by_rank.get(1, 0) / ctr1_n if ctr1_n else 0.0
        out: dict[int, tuple[float, str]] = {}
        previous = 1.0
        for rank in ranks:
            n = impressions_by_rank[rank]
            if ctr1 > 0 and n >= self.min_impressions_per_rank and ctr1_n >= self.min_impressions_per_rank:
                value, source = (clicks_by_rank.get(rank, 0) / n) / ctr1, "estimated"
            else:
                value, source = self.prior(rank), "prior"
            value = max(self.floor, min(previous, value)) if rank > 1 else 1.0
            out[rank] = (value, source)
            previous = value
        return out
