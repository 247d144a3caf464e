"""Bounds on how much any one source of clicks can weigh in training (docs/ARCHITECTURE.md invariant 17).

The miner's weights estimate, per (query, document) pair, how many people chose the document once
position bias is undone. One person can pass for many by forging who clicked, by clicking without
an identity, by repeating a click, or by using many identities; each has its bound here:

1. **Who clicked** is the user the search was logged with (``similarity_search(user_id=...)``, set
   by the app); the click log stores that user whatever the click body claimed, and the miner reads
   the impression's user, never the click's (rows stored before the log did so may carry a forged
   one). A search without a user is attributed to its session; one with neither has no identity.
2. **Caps on click counts**, newest clicks kept: each identity (user, else session) keeps at most
   ``max_clicks_per_user`` clicks, and the clicks of searches without a user share one cap per
   normalised query (``max_anonymous_clicks_per_query``), as if that query's anonymous users were one
   user: a flood of anonymous searches, with or without fresh sessions, is bounded.
3. **One vote per identity and pair**: an identity's repeated clicks on one pair count once (the mean
   of their weights), since repeats of one person add no independent evidence. Clicks with no identity
   each count, bounded by (2).
4. **A cap on one pair's weight**: no training row weighs more than ``max_pair_weight_ratio`` times
   the median row. It holds against forged identities (a fresh user per search), which no per-user
   rule can see. The median, not the mean, is the reference because the attacker's own row inflates
   the mean and barely moves the median.

Why the honest estimate is unchanged: the per-click inverse-propensity weight is untouched. The vote
rule changes only pairs that one identity clicked more than once, and the caps only sources beyond
hundreds of clicks or pairs beyond ten median pairs; ``mine_events`` reports how many clicks and rows
each bound touched, so an operator sees when they bind on real traffic. They are robustness bounds
(how much any one source may move a model), not tuned values: 10 is "one pair counts at most as ten
ordinary ones", an order of magnitude that leaves honest popular pairs (clicked by many users) their
lead over the typical row while a flood of any size is worth a handful of rows; a share of the total
would not do, as the mean share itself changes with the number of rows. It also keeps an honest head
query from crowding an epoch, whose rows are drawn in proportion to weight (``training.py``).
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from clicktune.adapters.clicklog import FeedbackEvent

#: ("user", id) or ("session", id): the source a click is charged to.
Identity = tuple[str, str]


def identity_of(event: FeedbackEvent) -> Identity | None:
    """The identity of a search's clicks: its logged user, else its session, else None.

    Never a click's own ``user_id``: that field comes from the click body, which a browser writes.
    """
    impression = event.impression
    if impression.user_id:
        return ("user", impression.user_id)
    if impression.session_id:
        return ("session", impression.session_id)
    return None


@dataclass(frozen=True)
class CapOutcome:
    """The clicks left out by the caps, as (event number, document id), and how many per cap."""

    over: frozenset[tuple[int, str]]
    by_identity: int = 0
    by_anonymous_query: int = 0


def over_caps(
    events: Sequence[FeedbackEvent],
    normalize: Callable[[str], str],
    per_identity: int | None,
    anonymous_per_query: int | None,
) -> CapOutcome:
    """The clicks beyond each identity's ``per_identity`` newest, and beyond each query's
    ``anonymous_per_query`` newest clicks of searches without a user.

    Newest first, a click is kept only if every cap it counts against has room; a left-out click
    uses up no room, so a session over its cap does not also eat its query's anonymous share.
    """
    newest_first = sorted(
        ((click.created_at, number, click.doc_id) for number, event in enumerate(events) for click in event.clicks),
        reverse=True,
    )
    used: Counter[tuple[str, str]] = Counter()
    over: set[tuple[int, str]] = set()
    by_identity = by_query = 0
    for _, number, doc_id in newest_first:
        event = events[number]
        charged: list[tuple[tuple[str, str], int, str]] = []
        identity = identity_of(event)
        if identity is not None and per_identity is not None:
            charged.append((identity, per_identity, "identity"))
        if not event.impression.user_id and anonymous_per_query is not None:
            charged.append((("anonymous query", normalize(event.impression.query)), anonymous_per_query, "query"))
        full = next((kind for key, cap, kind in charged if used[key] >= cap), None)
        if full is None:
            used.update(key for key, _, _ in charged)
            continue
        over.add((number, doc_id))
        by_identity += full == "identity"
        by_query += full == "query"
    return CapOutcome(frozenset(over), by_identity, by_query)


@dataclass
class Votes:
    """A pair's clicks grouped into votes: one per identity (the mean of its clicks' weights), one per
    click without an identity. ``weight`` and ``train_weight`` are the sums over votes."""

    raw: dict[object, list[float]] = field(default_factory=dict)
    tempered: dict[object, list[float]] = field(default_factory=dict)

    def add(self, voter: object, raw: float, tempered: float) -> None:
        self.raw.setdefault(voter, []).append(raw)
        self.tempered.setdefault(voter, []).append(tempered)

    @property
    def count(self) -> int:
        return len(self.raw)

    @property
    def weight(self) -> float:
        return sum(statistics.fmean(ws) for ws in self.raw.values())

    @property
    def train_weight(self) -> float:
        return sum(statistics.fmean(ws) for ws in self.tempered.values())


def cap_pair_weights(weights: Sequence[float], ratio: float | None) -> tuple[list[float], int]:
    """Each weight clipped to ``ratio`` times the median weight, and how many were clipped.

    Applied before the mean normalisation, so a clipped row ends at most ``ratio`` median rows.
    """
    if ratio is None or not weights:
        return list(weights), 0
    ceiling = ratio * statistics.median(weights)
    return [min(w, ceiling) for w in weights], sum(w > ceiling for w in weights)
