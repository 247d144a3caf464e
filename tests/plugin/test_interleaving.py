"""Team-draft interleaving's properties, over many random pairs of rankings."""

from __future__ import annotations

import random

import pytest

from clicktune.plugin.interleaving import team_draft


def _rankings(rng: random.Random, pool: int, length: int) -> tuple[list[int], list[int]]:
    docs = list(range(pool))
    return rng.sample(docs, length), rng.sample(docs, length)


@pytest.mark.parametrize("overlap_pool", [10, 15, 40])
def test_each_model_fills_half_the_list_within_one_and_nothing_repeats(overlap_pool: int) -> None:
    rng = random.Random(overlap_pool)
    for _ in range(500):
        first, second = _rankings(rng, overlap_pool, 10)
        picks = team_draft(first, second, 10, rng)
        items = [p.item for p in picks]
        assert len(items) == len(set(items)) == 10
        sizes = [sum(p.team == team for p in picks) for team in (0, 1)]
        assert abs(sizes[0] - sizes[1]) <= 1
        for p in picks:  # each item is credited to a team that ranked it, at the rank it had there
            assert (first, second)[p.team][p.source_rank - 1] == p.item


def test_each_team_adds_its_best_document_not_yet_shown() -> None:
    rng = random.Random(3)
    for _ in range(300):
        first, second = _rankings(rng, 20, 10)
        picks = team_draft(first, second, 10, rng)
        shown: set[int] = set()
        for p in picks:
            ranking = (first, second)[p.team]
            assert p.item == next(d for d in ranking if d not in shown)
            shown.add(p.item)


def test_identical_rankings_interleave_to_the_same_ranking() -> None:
    ranking = list(range(10))
    assert [p.item for p in team_draft(ranking, ranking, 10, random.Random(0))] == ranking


def test_a_short_ranking_lets_the_other_fill_the_list() -> None:
    picks = team_draft([1, 2], list(range(10, 20)), 6, random.Random(0))
    assert len(picks) == 6 and {p.item for p in picks if p.team == 0} == {1, 2}
    assert team_draft([], [], 10, random.Random(0)) == []
    assert [p.item for p in team_draft([1, 2, 3], [3, 2, 1], 10, random.Random(0))] in ([1, 3, 2], [3, 1, 2])


def test_same_seed_same_interleaving_and_the_coin_is_fair() -> None:
    first, second = list(range(10)), list(range(10, 20))
    a = team_draft(first, second, 10, random.Random(42))
    assert a == team_draft(first, second, 10, random.Random(42))
    rng = random.Random(7)
    first_at_top = sum(team_draft(first, second, 10, rng)[0].team == 0 for _ in range(4000))
    assert 1800 < first_at_top < 2200  # each model leads half the time: no position advantage


def test_only_the_common_prefix_is_shared_and_it_comes_first_in_its_order() -> None:
    """A click on the rankings' common prefix is a coin toss (the prefix is shown first whatever the
    coins say; only the team label is random), so exactly those picks are marked shared."""
    rng = random.Random(11)
    for _ in range(500):
        first, second = _rankings(rng, 15, 10)
        prefix = rng.randrange(0, 6)
        second = first[:prefix] + [d for d in second if d not in first[:prefix]][: 10 - prefix]
        common = next((i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b), 10)
        picks = team_draft(first, second, 10, rng)
        assert [p.item for p in picks[:common]] == first[:common]
        assert [p.shared for p in picks] == [i < common for i in range(len(picks))]
    ranking = list(range(10))
    assert all(p.shared for p in team_draft(ranking, ranking, 10, random.Random(0)))
    assert not any(p.shared for p in team_draft([1, 2, 3], [2, 1, 3], 3, random.Random(0)))
