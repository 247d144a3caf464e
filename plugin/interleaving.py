"""Team-draft interleaving (Radlinski, Kurup and Joachims, 2008): one list that fairly mixes two rankings.

Like picking teams in a playground: in each round a coin decides which model picks first, and each
model adds its highest-ranked document not already shown. Every shown document belongs to exactly
one model (its "team"), and each model fills half the list (within one document), so a user's click
is a vote for the model that contributed the clicked document, at the same positions for both. This
is far more sensitive than comparing offline scores, and it sees what a model would show that the
other never did (Chapelle, Joachims, Radlinski and Yue, 2012).

Where both rankings begin with the same documents in the same order (their common prefix), team-draft
shows exactly that prefix first whatever the coins say, and only the coin decides which team each
prefix document is credited to. A click there is therefore a coin toss, not a preference: it adds
variance and no signal (its expected credit is zero for either model), so those picks are marked
``shared`` and credit nobody. Dropping a term whose expectation is zero for both models leaves the
comparison unbiased and only takes noise out. Once both models have learned a query's clicked document
they both rank it first, and without this such searches were won or lost by the coin.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


@dataclass(frozen=True)
class Pick(Generic[T]):
    """A shown item, the team that contributed it (0 = first ranking, 1 = second) and its rank there.

    ``shared``: the item is in both rankings' common prefix, at this very rank in each, so a click on
    it says nothing about which ranking is better and credits neither.
    """

    item: T
    team: int
    source_rank: int
    shared: bool = False


def team_draft(first: Sequence[T], second: Sequence[T], k: int, rng: random.Random) -> list[Pick[T]]:
    """Interleave two rankings into at most ``k`` distinct items, each credited to one team.

    A team whose ranking is exhausted stops picking and the other fills the list, so the result is
    only short when both rankings together hold fewer than ``k`` distinct items. The picks of the
    rankings' common prefix come first, in its order, and are marked ``shared``.
    """
    rankings = (list(first), list(second))
    prefix = 0
    while prefix < min(len(first), len(second)) and first[prefix] == second[prefix]:
        prefix += 1
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
        shown.append(Pick(item, team, index + 1, shared=len(shown) < prefix))
        seen.add(item)
        sizes[team] += 1
    return shown
