"""The simulator's click models: each family behaves as its paper defines it."""

from __future__ import annotations

import random

import pytest

from clicktune.scheduler.simulator import DependentClickModel, PositionBasedModel, click_model_named


def test_the_position_based_model_clicks_relevant_results_at_their_examination_rate() -> None:
    model = PositionBasedModel(eta=1.0, p_relevant=0.9, p_noise=0.0)
    rng = random.Random(7)
    shown = [True, False, True, False, True]
    counts = [0] * 5
    n = 20_000
    for _ in range(n):
        for rank in model.clicked_ranks(shown, rng):
            counts[rank - 1] += 1
    for rank, is_relevant in enumerate(shown, start=1):
        expected = 0.9 / rank if is_relevant else 0.0
        assert counts[rank - 1] / n == pytest.approx(expected, abs=0.01)


def test_the_dependent_click_model_is_a_cascade_that_stops_after_a_satisfying_click() -> None:
    shown = [False, True, False, True]
    satisfied = DependentClickModel(p_relevant=1.0, p_noise=0.0, continue_after_click=0.0)
    goes_on = DependentClickModel(p_relevant=1.0, p_noise=0.0, continue_after_click=1.0)
    rng = random.Random(3)
    assert {tuple(satisfied.clicked_ranks(shown, rng)) for _ in range(50)} == {(2,)}
    assert {tuple(goes_on.clicked_ranks(shown, rng)) for _ in range(50)} == {(2, 4)}


def test_under_the_cascade_a_result_below_a_click_is_examined_less_than_one_above_none() -> None:
    # PBM examination does not depend on other results; DCM's does: the same relevant result at rank 3
    # is clicked less often when rank 1 holds a relevant result than when it does not.
    model = DependentClickModel()
    rng = random.Random(11)
    n = 20_000
    below_click = sum(3 in model.clicked_ranks([True, False, True], rng) for _ in range(n)) / n
    below_none = sum(3 in model.clicked_ranks([False, False, True], rng) for _ in range(n)) / n
    assert below_click < below_none - 0.1


def test_click_models_are_chosen_by_name() -> None:
    assert isinstance(click_model_named("pbm"), PositionBasedModel)
    assert isinstance(click_model_named("dcm"), DependentClickModel)
    with pytest.raises(ValueError, match="pbm, dcm"):
        click_model_named("ubm")
