"""One source of clicks cannot outweigh honest traffic: a user's 1,000 clicks on one wrong document,
with the user logged, with no user, with a fresh user per search and with a forged user per click
(docs/ARCHITECTURE.md invariant 17)."""

from __future__ import annotations

import statistics
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from clicktune.adapters.clicklog import Click, ClickLog, FeedbackEvent, Impression, ShownResult
from clicktune.scheduler.miner import MiningConfig, mine_events, mine_feedback

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
#: Everything in train, propensities from the 1/rank prior; the bounds at their defaults.
CONFIG = MiningConfig(heldout_fraction=0.0, min_intervention_clicks=10**6)
TARGET, WRONG = "honest query 0", "q0-wrong"
ATTACKS = 1000


def _shown(q: int) -> list[str]:
    """Query q's results: its relevant document at rank 1 + q % 3, the attacker's pick at rank 4."""
    top = [f"q{q}-a", f"q{q}-b"]
    top.insert(q % 3, f"q{q}-rel")
    return [*top, f"q{q}-wrong", f"q{q}-d"]


def _event(n: int, query: str, shown: list[str], clicked: str, *, user: str | None, session: str | None = None,
           click_user: str | None = None) -> FeedbackEvent:
    sid = str(uuid.UUID(int=n))
    at = T0 + timedelta(seconds=n)
    return FeedbackEvent(
        impression=Impression(search_id=sid, query=query, model_version="v0001", collection="docs__v0001",
                              user_id=user, session_id=session, created_at=at,
                              results=[ShownResult(doc_id=d, rank=r) for r, d in enumerate(shown, start=1)]),
        clicks=[Click(search_id=sid, doc_id=clicked, user_id=click_user or user, created_at=at)],
    )


def _honest() -> list[FeedbackEvent]:
    """50 queries, each searched by three different users who click its relevant document."""
    return [_event(q * 3 + j, f"honest query {q}", _shown(q), f"q{q}-rel", user=f"user-{(q + j * 17) % 40}")
            for q in range(50) for j in range(3)]


def _attack(form: str) -> list[FeedbackEvent]:
    start = 10_000
    shown = _shown(0)
    if form == "one user":
        return [_event(start + i, TARGET, shown, WRONG, user="mallory") for i in range(ATTACKS)]
    if form == "no user":
        return [_event(start + i, TARGET, shown, WRONG, user=None) for i in range(ATTACKS)]
    if form == "fresh user per search":
        return [_event(start + i, TARGET, shown, WRONG, user=f"sock-{i}") for i in range(ATTACKS)]
    raise AssertionError(form)


def _texts(ids: list[str]) -> dict[str, str]:
    return {i: f"text of {i}" for i in ids}


def _weights(config: MiningConfig, events: list[FeedbackEvent]) -> tuple[float, list[float]]:
    """The attacker row's weight and the honest rows' weights."""
    rows = mine_events(events, _texts, config).train.to_list()
    attacker = [r["weight"] for r in rows if r["positive"] == f"text of {WRONG}"]
    assert len(attacker) == 1
    return attacker[0], [r["weight"] for r in rows if r["positive"] != f"text of {WRONG}"]


@pytest.mark.parametrize("form", ["one user", "no user", "fresh user per search"])
def test_a_thousand_clicks_on_one_wrong_document_weigh_at_most_ten_median_rows(form: str) -> None:
    attacker, honest = _weights(CONFIG, _honest() + _attack(form))
    assert len(honest) == 50
    assert attacker <= CONFIG.max_pair_weight_ratio * statistics.median(honest) + 1e-9
    # ten median rows' worth among fifty rows: under a fifth of the epoch
    assert attacker / (attacker + sum(honest)) < 0.2


def test_one_user_is_one_vote_for_a_pair_however_often_it_clicks() -> None:
    attacker, honest = _weights(CONFIG, _honest() + _attack("one user"))
    # one click at rank 4 (tempered weight 2) against three honest users' clicks at ranks 1 to 3
    assert attacker <= min(honest)
    once, _ = _weights(CONFIG, _honest() + _attack("one user")[-1:])
    assert attacker == pytest.approx(once)


def test_clicks_of_searches_without_a_user_are_capped_by_session_and_by_query() -> None:
    by_session = [_event(20_000 + i, TARGET, _shown(0), WRONG, user=None, session=f"s{i % 2}") for i in range(30)]
    mined = mine_events(_honest() + by_session, _texts, MiningConfig(
        **{**CONFIG.__dict__, "max_clicks_per_user": 5, "max_pair_weight_ratio": None}))
    # two sessions, five newest clicks each; each session one vote on the pair
    assert mined.stats["clicks_capped_per_user"] == 20
    anonymous = _attack("no user")
    mined = mine_events(_honest() + anonymous, _texts, MiningConfig(
        **{**CONFIG.__dict__, "max_anonymous_clicks_per_query": 7, "max_pair_weight_ratio": None}))
    assert mined.stats["clicks_capped_anonymous_per_query"] == ATTACKS - 7
    rows = {r["positive"]: r["weight"] for r in mined.train.to_list()}
    honest_row = rows["text of q0-rel"]  # three users at rank 1: three votes of weight 1
    assert rows[f"text of {WRONG}"] / honest_row == pytest.approx(7 * 2 / 3)


def test_honest_rows_keep_their_weights_under_the_bounds() -> None:
    """The bounds change nothing for traffic where each user clicks a pair once and no pair is an outlier."""
    off = MiningConfig(**{**CONFIG.__dict__, "max_clicks_per_user": None, "max_anonymous_clicks_per_query": None,
                          "one_vote_per_identity": False, "max_pair_weight_ratio": None})
    on = mine_events(_honest(), _texts, CONFIG)
    assert on.train.to_list() == mine_events(_honest(), _texts, off).train.to_list()
    assert on.stats["train_pairs_weight_capped"] == 0


def test_a_forged_user_per_click_is_stored_and_mined_as_the_searchs_user(db_url: str) -> None:
    """A click body may name any user: the log stores the user the search was logged with, so a
    thousand clicks claiming a thousand users from one logged user are that user's one vote."""
    log = ClickLog(db_url)
    try:
        def search(query: str, shown: list[str], user: str | None) -> str:
            sid = str(uuid.uuid4())
            log.log_impression(Impression(search_id=sid, query=query, model_version="v0001",
                                          collection="docs__v0001", user_id=user,
                                          results=[ShownResult(doc_id=d, rank=r) for r, d in enumerate(shown, 1)]))
            return sid

        for q in range(20):
            for j in range(2):
                log.record_click(search(f"honest query {q}", _shown(q), f"user-{q}-{j}"), f"q{q}-rel")
        forged = [{"search_id": search(TARGET, _shown(0), "mallory"), "doc_id": WRONG, "user_id": f"sock-{i}"}
                  for i in range(ATTACKS)]
        for i in range(0, ATTACKS, 100):
            assert log.record_clicks(forged[i:i + 100]) == [True] * 100
        stored = {c.user_id for event in log.iter_feedback() for c in event.clicks if c.doc_id == WRONG}
        assert stored == {"mallory"}
        rows = mine_feedback(log, _texts, CONFIG, now=datetime.now(timezone.utc) + timedelta(minutes=1)).train.to_list()
        weights = {r["positive"]: r["weight"] for r in rows}
        honest = [w for p, w in weights.items() if p != f"text of {WRONG}"]
        assert weights[f"text of {WRONG}"] <= min(honest)
    finally:
        log.close()


def test_the_bounds_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from clicktune.adapters import ClicktuneSettings

    monkeypatch.setenv("CLICKTUNE_MAX_PAIR_WEIGHT_RATIO", "4")
    settings = ClicktuneSettings(max_clicks_per_user=50, feedback={"max_anonymous_clicks_per_query": 30})
    config = MiningConfig.from_settings(settings)
    assert (config.max_clicks_per_user, config.max_anonymous_clicks_per_query, config.max_pair_weight_ratio) == (
        50, 30, 4.0)
    attacker, honest = _weights(config, _honest() + _attack("fresh user per search"))
    assert attacker == pytest.approx(4 * statistics.median(honest))
