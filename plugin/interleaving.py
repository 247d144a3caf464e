"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): one list that fairly mixes two rankings.

Like picking teams in a playground: in each round a coin decides which model picks first, and each
model adds its highest-ranked document not already shown. Every shown document belongs to exactly
one model (its "team"), and each model fills half the list (within one document), so a user's click
is a vote for the model that contributed the clicked document, at the same positions for both. This
is far more sensitive than comparing offline scores, and it sees what a model would show that the
other never did (Chapelle, Joachims, Radlinski and Yue, 2012).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class Pick(Generic[T]):
    """A shown item, the team that contributed it (0 = first ranking, 1 = second) and its rank there."""

    item: T
    team: int
    source_rank: int


def team_draft(first: Sequence[T], second: Sequence[T], k: int, rng: random.Random) -> list[Pick[T]]:
    """Interleave two rankings into at most ``k`` distinct items, each credited to one team.

    A team whose ranking is exhausted stops picking and the other fills the list, so the result is
    only short when both rankings together hold fewer than ``k`` distinct items.
    """
    rankings = (list(first), list(second))
    shown: list[Pick[T]] = []
    seen: set[T] = set()
    cursors = [0, 0]
    sizes = [0, 0]

    def next_of(team: int) -> int | None:
        ranking = rankings[team]
        while cursors[team] < len(ranking) and ranking[cursors[team]] in seen:
            cursors[team] += 1
        return cursors[team] if cursors[team] < len(ranking) else None

    while len(shown) < k:
        available = [team for team in (0, 1) if next_of(team) is not None]
        if not available:
            break
        if len(available) == 1:
            team = available[0]
        elif sizes[0] != sizes[1]:
            team = 0 if sizes[0] < sizes[1] else 1
        else:
            team = rng.randrange(2)
        index = next_of(team)
        assert index is not None
        item = rankings[team][index]
        shown.append(Pick(item, team, index + 1))
        seen.add(item)
        sizes[team] += 1
    return shown
