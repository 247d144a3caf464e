"""Position bias: how likely a user is to even look at rank r (the examination propensity).

Clicks at rank 1 are cheap evidence (everyone looks there), clicks at rank 8 are strong evidence.
Inverse-propensity weighting (Joachims et al., 2017) divides each click by the chance its rank was
examined, so training does not simply re-learn the old ranking.

How propensities are estimated: by **intervention harvesting** (Agarwal et al., WSDM 2019). The
click-through rate of rank r over rank 1 is *not* an estimate: better documents sit higher, so it
mixes relevance into position bias (on SciFact's first pass it put rank 3 at 0.055 where users
examined it with 1/3, and its inverse weights amplified noise clicks). When the same document for
the same query has been shown at two neighbouring ranks (a challenger phase's interleavings), its
relevance is the same at both, so the ratio of its click rates is the ratio of the two examination
propensities, provided the move was random: the miner groups observations by the ranking that
produced them (one challenger phase, one model), since a move from one champion to the next was
caused by clicks. Those ratios are pooled per pair of neighbouring ranks and chained from rank 1;
where a pair of ranks has too few clicks to say, the power-law prior's ratio stands in, and each
rank's value says which it came from.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable
from dataclasses import dataclass


def power_law_examination(rank: int, eta: float) -> float:
    """The position-based model's examination curve, ``1 / rank**eta``: the miner's prior where the log
    holds no interventions, and the simulator's ground truth, so the two can be compared like for like."""
    return 1.0 / rank**eta


#: One shown result: (query key, document id, rank shown at, clicked or not).
Observation = tuple[Hashable, str, int, bool]


@dataclass
class PropensityModel:
    """Per-rank propensities, normalised to rank 1 = 1.0, monotone non-increasing."""

    eta: float = 1.0
    #: Clicks (at both ranks, on documents shown at both) a neighbouring pair of ranks needs before its
    #: measured ratio replaces the prior's.
    min_intervention_clicks: int = 50
    floor: float = 0.02

    def prior(self, rank: int) -> float:
        return power_law_examination(rank, self.eta)

    def fit(self, observations: Iterable[Observation]) -> dict[int, tuple[float, str]]:
        """``{rank: (propensity, "interventions" | "prior")}`` for every rank in ``observations``."""
        shown: dict[tuple[Hashable, str], dict[int, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
        for query, doc_id, rank, clicked in observations:
            counts = shown[(query, doc_id)][rank]
            counts[0] += 1
            counts[1] += bool(clicked)
        ranks = sorted({rank for by_rank in shown.values() for rank in by_rank})
        out: dict[int, tuple[float, str]] = {}
        previous = 1.0
        for rank in ranks:
            if rank - 1 not in out:  # rank 1 (normalised to 1.0 below), or a gap in the ranks shown
                value, source = self.prior(rank), "prior"
            else:
                ratio, source = self._neighbour_ratio(shown, rank - 1)
                value = previous * ratio
            value = max(self.floor, min(previous, value)) if rank > 1 else 1.0
            out[rank] = (value, source)
            previous = value
        return out

    def _neighbour_ratio(self, shown: dict, upper: int) -> tuple[float, str]:
        """p(upper + 1) / p(upper) from the documents shown at both ranks, else the prior's ratio.

        Each (query, document) shown at both contributes its click rate at each rank; the sums' ratio
        is p(lower)/p(upper) times the same total relevance, which cancels."""
        lower = upper + 1
        rate_upper = rate_lower = 0.0
        clicks = 0
        for by_rank in shown.values():
            if upper in by_rank and lower in by_rank:
                (n_u, c_u), (n_l, c_l) = by_rank[upper], by_rank[lower]
                rate_upper += c_u / n_u
                rate_lower += c_l / n_l
                clicks += c_u + c_l
        if clicks >= self.min_intervention_clicks and rate_upper > 0:
            return rate_lower / rate_upper, "interventions"
        return self.prior(lower) / self.prior(upper), "prior"
