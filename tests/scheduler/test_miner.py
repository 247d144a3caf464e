"""The miner on a hand-written log: every positive, negative, weight and split decision by hand."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from clicktune.adapters.clicklog import Click, FeedbackEvent, Impression, ShownResult
from clicktune.scheduler.miner import MiningConfig, is_heldout, mine_events, normalize_query
from clicktune.scheduler.propensity import PropensityModel

T0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
TEXTS = {f"d{i}": f"text of d{i}" for i in range(1, 7)}


def _event(n: int, query: str, user: str, shown: list[str], clicked: list[str], *, version: str = "v0001",
           challenge_id: int | None = None) -> FeedbackEvent:
    sid = f"00000000-0000-4000-8000-{n:012d}"
    at = T0 + timedelta(minutes=n)
    return FeedbackEvent(
        impression=Impression(search_id=sid, query=query, model_version=version, collection=f"docs__{version}",
                              user_id=user, created_at=at, challenge_id=challenge_id,
                              results=[ShownResult(doc_id=d, rank=r) for r, d in enumerate(shown, start=1)]),
        clicks=[Click(search_id=sid, doc_id=d, user_id=user, created_at=at + timedelta(seconds=i))
                for i, d in enumerate(clicked)],
    )


LOG = [
    _event(1, "Vitamin D  and bones", "u1", ["d1", "d2", "d3"], ["d3"]),
    _event(2, "vitamin d and bones", "u2", ["d2", "d3", "d4"], ["d3", "d4"]),
    _event(3, "contract law", "u1", ["d5", "d6"], ["d5"]),
    _event(4, "no clicks here", "u3", ["d1"], []),
]
# Everything in train, propensities from the 1/rank prior (too few impressions to estimate).
ALL_TRAIN = MiningConfig(heldout_fraction=0.0, min_intervention_clicks=10**6, eta=1.0, max_weight=10.0,
                         weight_power=1.0)


def lookup(ids: list[str]) -> dict[str, str]:
    return {i: TEXTS[i] for i in ids if i in TEXTS}


def test_positives_negatives_and_weights_by_hand() -> None:
    mined = mine_events(LOG, lookup, ALL_TRAIN)
    rows = mined.train.to_list()
    # (q, d3): clicked at rank 3 (w 3) and rank 2 (w 2) = 5; skipped above it: d1 at rank 1 (evidence 1),
    # d2 at rank 2 and at rank 1 (1/2 + 1) -> d2; below it, d4 was clicked, so not a negative.
    # (q, d4): clicked at rank 3 (w 3); skipped above: d2 (d3 was clicked in that search, so not a negative).
    # (contract law, d5): rank 1 (w 1), nothing above; d6 right below it, not clicked ("no-click next").
    # Mean weight 3: normalised 5/3, 1, 1/3.
    assert rows == [
        {"anchor": "contract law", "positive": "text of d5", "negative": "text of d6", "weight": pytest.approx(1 / 3)},
        {"anchor": "Vitamin D  and bones", "positive": "text of d3", "negative": "text of d2",
         "weight": pytest.approx(5 / 3)},
        {"anchor": "vitamin d and bones", "positive": "text of d4", "negative": "text of d2",
         "weight": pytest.approx(1.0)},
    ]
    s = mined.stats
    assert s["impressions"] == 4 and s["clicks"] == 4 and s["pairs"] == 3 and s["train_with_negative"] == 3
    assert s["ctr_by_rank"] == {1: 1 / 4, 2: 1 / 3, 3: 2 / 2}
    assert {r: p["source"] for r, p in s["propensities"].items()} == {1: "prior", 2: "prior", 3: "prior"}
    assert mined.eval_queries == {}


def test_a_positive_elsewhere_is_never_a_negative() -> None:
    log = [_event(1, "q", "u1", ["d1", "d2"], ["d2"]), _event(2, "q", "u2", ["d1", "d2"], ["d1"])]
    rows = mine_events(log, lookup, ALL_TRAIN).train.to_list()
    assert [(r["positive"], r["negative"]) for r in rows] == [("text of d1", None), ("text of d2", None)]


def test_per_user_cap_support_and_missing_texts() -> None:
    capped = mine_events(LOG, lookup, MiningConfig(**{**ALL_TRAIN.__dict__, "max_clicks_per_user": 1}))
    # Each user keeps the newest click: u1 event 3's d5 (weight 1), not event 1's d3; u2 its second
    # click, d4 at rank 3 (weight 3), not d3. Mean 2: normalised 1/2 and 3/2.
    assert [(r["positive"], r["weight"]) for r in capped.train.to_list()] == [
        ("text of d5", pytest.approx(0.5)), ("text of d4", pytest.approx(1.5))]
    assert capped.stats["clicks_capped_per_user"] == 2

    supported = mine_events(LOG, lookup, MiningConfig(**{**ALL_TRAIN.__dict__, "min_clicks": 2}))
    assert [r["positive"] for r in supported.train.to_list()] == ["text of d3"]
    assert supported.stats["pairs_below_support"] == 2

    partial = mine_events(LOG, lambda ids: {i: TEXTS[i] for i in ids if i != "d5"}, ALL_TRAIN)
    assert partial.stats["pairs_missing_text"] == 1 and len(partial.train) == 2


def test_split_is_by_query_and_deterministic() -> None:
    def by_hand(text: str, fraction: float) -> bool:
        key = " ".join(text.lower().split())
        return int(hashlib.blake2b(key.encode(), digest_size=8).hexdigest(), 16) / 2**64 < fraction

    cfg = MiningConfig(**{**ALL_TRAIN.__dict__, "heldout_fraction": 0.5})
    mined = mine_events(LOG, lookup, cfg)
    heldout_texts = {normalize_query(q) for q in mined.eval_queries.values()}
    train_texts = {normalize_query(a) for a in mined.train["anchor"]}
    assert heldout_texts.isdisjoint(train_texts)
    for query in ("vitamin d and bones", "contract law"):
        assert (query in heldout_texts) == by_hand(query, 0.5) == is_heldout(query.upper(), 0.5)
        assert (query in train_texts) == (not by_hand(query, 0.5))
    for qid, gains in mined.eval_relevant.items():
        # held-out gains are the raw inverse-propensity weights (rank 3 + rank 2 = 5; rank 3 = 3; rank 1 = 1)
        expected = {"d3": 5.0, "d4": 3.0} if normalize_query(mined.eval_queries[qid]) == "vitamin d and bones" else {"d5": 1.0}
        assert gains == pytest.approx(expected)


def test_propensities_from_interventions_where_there_is_data() -> None:
    # q1/a at ranks 1 and 2: click rates 0.6 and 0.3; q2/b at ranks 2 and 3: 0.4 and 0.2. So p2/p1 = 0.5
    # and p3/p2 = 0.5. q3/c only ever at rank 4: no intervention, so rank 4 takes the prior's ratio 3/4.
    def shown(query: str, doc: str, rank: int, n: int, clicks: int) -> list:
        return [(query, doc, rank, i < clicks) for i in range(n)]

    observations = (shown("q1", "a", 1, 100, 60) + shown("q1", "a", 2, 100, 30) + shown("q2", "b", 2, 100, 40)
                    + shown("q2", "b", 3, 100, 20) + shown("q3", "c", 4, 100, 90))
    fitted = PropensityModel(eta=1.0, min_intervention_clicks=50).fit(observations)
    assert fitted == {1: (1.0, "prior"), 2: (pytest.approx(0.5), "interventions"),
                      3: (pytest.approx(0.25), "interventions"), 4: (pytest.approx(0.1875), "prior")}
    # Too few clicks on the rank-2/3 intervention: the prior's ratio 2/3 stands in from rank 2's value.
    fitted = PropensityModel(eta=1.0, min_intervention_clicks=80).fit(observations)
    assert fitted[3] == (pytest.approx(0.5 * 2 / 3), "prior")


def test_propensities_are_not_fooled_by_relevance_sitting_high() -> None:
    """Users examine rank r with 1/r; the better document is usually on top. The click-through rate by
    rank (about 0.07 at rank 3 over rank 1 here) would mistake relevance for position bias; documents
    shown at neighbouring ranks in different searches (as interleaving does) give 1/r back."""
    rng = np.random.default_rng(0)
    observations = []
    for query in range(400):
        relevance = np.sort(rng.beta(0.3, 2.0, size=10))[::-1]  # ranked by a decent ranker
        for _ in range(8):
            order = np.arange(10)
            for i in range(0, 9):  # neighbouring swaps, as team-draft interleaving makes
                if rng.random() < 0.25:
                    order[i], order[i + 1] = order[i + 1], order[i]
            for rank, doc in enumerate(order, start=1):
                observations.append((query, str(doc), rank, rng.random() < relevance[doc] / rank))
    fitted = PropensityModel(eta=2.0, min_intervention_clicks=50).fit(observations)  # a wrong prior on purpose
    for rank in (2, 3, 5):
        value, source = fitted[rank]
        assert source == "interventions" and value == pytest.approx(1 / rank, rel=0.25), (rank, value)
    clicks = Counter(r for _, _, r, c in observations if c)
    shown = Counter(r for _, _, r, _ in observations)
    assert (clicks[3] / shown[3]) / (clicks[1] / shown[1]) < 0.5 / 3  # what the naive ratio would say


def test_tempered_weights_temper_each_click() -> None:
    mined = mine_events(LOG, lookup, MiningConfig(**{**ALL_TRAIN.__dict__, "weight_power": 0.5}))
    # contract law/d5: one click at rank 1; q/d3: clicks at ranks 3 and 2; q/d4: one at rank 3.
    tempered = [1.0, 3**0.5 + 2**0.5, 3**0.5]
    mean = sum(tempered) / 3
    assert mined.train["weight"] == pytest.approx([w / mean for w in tempered])


def test_a_pair_clicked_in_many_searches_outweighs_a_single_noise_click() -> None:
    """Nine searches click d1 at rank 1; one of them also clicks d5 at rank 5. Tempering the sum of
    inverse propensities would weigh them 3 and 2.2; each click tempered, 9 and 2.2: the weight grows
    with the evidence, as the untempered sum does."""
    log = [_event(i, "q", f"u{i}", ["d1", "d2", "d3", "d4", "d5"], ["d1", "d5"] if i == 0 else ["d1"])
           for i in range(9)]
    mined = mine_events(log, lookup, MiningConfig(**{**ALL_TRAIN.__dict__, "weight_power": 0.5}))
    weights = dict(zip(mined.train["positive"], mined.train["weight"], strict=True))
    assert weights["text of d1"] / weights["text of d5"] == pytest.approx(9 / 5**0.5)


def test_the_per_user_cap_keeps_the_newest_clicks() -> None:
    log = [_event(i, f"query {i}", "heavy", ["d1", "d2"], ["d1"]) for i in range(5)]
    mined = mine_events(log, lookup, MiningConfig(**{**ALL_TRAIN.__dict__, "max_clicks_per_user": 2}))
    assert sorted(mined.train["anchor"]) == ["query 3", "query 4"]
    assert mined.stats["clicks_capped_per_user"] == 3


def test_propensities_come_only_from_rank_changes_within_one_ranking() -> None:
    """A document clicked at rank 3 is trained on and shown at rank 2 by the next champion: that move
    was caused by the click, so it is no intervention. Coin flips inside one challenger phase are."""
    def searches(start: int, n: int, rank_of_d1: int, version: str, challenge_id: int | None) -> list:
        shown = ["d2", "d3", "d4"]
        shown.insert(rank_of_d1 - 1, "d1")
        return [_event(i, "q", f"u{i}", shown, ["d1"], version=version, challenge_id=challenge_id)
                for i in range(start, start + n)]

    cfg = MiningConfig(**{**ALL_TRAIN.__dict__, "min_intervention_clicks": 10})
    across_champions = searches(0, 40, 3, "v0001", None) + searches(100, 40, 2, "v0002", None)
    assert mine_events(across_champions, lookup, cfg).stats["propensities"][3]["source"] == "prior"
    within_a_phase = searches(200, 20, 3, "v0002", 7) + searches(300, 40, 2, "v0002", 7)
    mined = mine_events(within_a_phase, lookup, cfg)
    # d1 clicked every time at rank 2 and at rank 3 of the same phase: p3 / p2 measured as 1 (p2 is the prior's).
    fitted = mined.stats["propensities"]
    assert fitted[3] == {"value": pytest.approx(fitted[2]["value"]), "source": "interventions"}


def test_aliases_sharing_a_feedback_database_never_train_on_each_other(db_url: str) -> None:
    """Doc id "1" exists under both aliases; clicks on `other` must not become pairs, counts or a
    lock of `docs` (one feedback database serves several indexes)."""
    import uuid

    from clicktune.adapters.clicklog import ClickLog
    from clicktune.scheduler.loop import lock_name
    from clicktune.scheduler.miner import mine_feedback

    log = ClickLog(db_url)
    texts = {"1": "shared id, two documents", "2": "another"}
    for alias, query in (("docs", "vitamin d and bones"), ("other", "contract law")):
        sid = str(uuid.uuid4())
        log.log_impression(Impression(
            search_id=sid, query=query, model_version="v0001", collection=f"{alias}__v0001",
            results=[ShownResult(doc_id="2", rank=1), ShownResult(doc_id="1", rank=2)]))
        log.record_click(sid, "1", user=f"{alias}-user")
    mined = mine_feedback(log, lambda ids: {i: texts[i] for i in ids if i in texts}, ALL_TRAIN, alias="docs")
    assert set(mined.train["anchor"]) == {"vitamin d and bones"}
    assert log.count_clicks(alias="docs") == 1 and log.count_clicks(alias="other") == 1
    assert [e.impression.query for e in log.iter_feedback(alias="other")] == ["contract law"]
    assert lock_name("docs") != lock_name("other")
