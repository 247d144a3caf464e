"""From impressions and clicks to training pairs, held-out queries and statistics.

For every click: the clicked document is a positive for the query; documents shown *above* it and
not clicked in that search are hard negatives ("skip-above": the user saw them and preferred the
click), and so is the document right *below* it when not clicked ("no-click next"; both are among the
strategies Joachims et al. 2005 found to agree best with expert judgements). Each click weighs ``1 / propensity(rank)`` (clipped), a user contributes at most
``max_clicks_per_user`` clicks, a (query, document) pair needs ``min_clicks`` votes, and pairs are
de-duplicated by normalised query text. What any one source of clicks can weigh is bounded in
``click_bounds``: a click's user is its search's, anonymous clicks are capped per session and per
query, one identity is one vote per pair, and no row weighs more than ``max_pair_weight_ratio``
median rows. Queries are split into train and held-out by a hash of their
normalised text, so the same query never lands on both sides and the split is stable across runs.

Interleaved searches (the challenger phase) are mined like any other: the rank recorded is the rank
the user actually saw, and examination depends on that position, not on which model put the
document there, so the same per-rank propensities apply.

A row's training weight is the sum over its pair's clicks (votes: one per identity, see
``click_bounds``) of each click's tempered inverse-propensity weight, ``min(max_weight, 1 / p) ** weight_power``. Tempering each click, not the sum, keeps the
weight linear in evidence: a document clicked in nine searches weighs nine clicks, where tempering
the sum gave it three, barely more than a single noise click at rank 5 (2.2). With repeated traffic
every pass adds noise clicks on new documents; summed-then-tempered, those single-click pairs had
almost the weight of the consistently clicked ones.

The per-user cap (and the anonymous per-query cap) keeps a user's *newest* clicks: they were made on the rankings the next model will
replace, and a cap that kept the oldest would starve a long-running loop of its recent feedback.

One hard negative per row, the one with the most evidence: each skip counts with the examination
propensity of the rank it was shown at (a document passed over at rank 1 was certainly seen, one at
rank 5 perhaps not). MultipleNegativesRankingLoss needs the same number of columns in every row, and
the in-batch negatives already supply many more. Without "no-click next" a click at rank 1, the most
common click, would have no hard negative at all.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from clicktune.adapters.clicklog import ClickLog, FeedbackEvent
from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.click_bounds import Votes, cap_pair_weights, identity_of, over_caps
from clicktune.scheduler.propensity import PropensityModel

DocTexts = Callable[[list[str]], dict[str, str]]


def normalize_query(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def query_key(text: str) -> str:
    return hashlib.blake2b(normalize_query(text).encode("utf-8"), digest_size=8).hexdigest()


def is_heldout(text: str, fraction: float) -> bool:
    """Deterministic by query text: the first 8 bytes of blake2b as a uniform number in [0, 1)."""
    return int(query_key(text), 16) / 2**64 < fraction


@dataclass
class MiningConfig:
    window_days: float | None = 90.0
    #: Queries (by hash of their text) kept out of training for the offline check. 0.1, not 0.2: the
    #: check is only a guard against regressions, and the extra training queries measured
    #: x1.041 -> x1.052 mean test nDCG@10 on SciFact (docs/RESULTS.md, training recipe).
    heldout_fraction: float = 0.1
    min_clicks: int = 1
    #: Held-out labels need this many clicks (their gains are inverse-propensity weighted anyway).
    heldout_min_clicks: int = 1
    #: Clicks kept per identity (the search's user, else its session), its newest.
    max_clicks_per_user: int | None = 200
    #: Clicks kept per normalised query from searches logged without a user, the newest.
    max_anonymous_clicks_per_query: int | None = 200
    #: An identity's repeated clicks on one (query, document) pair count as one vote.
    one_vote_per_identity: bool = True
    #: No training row weighs more than this many median rows (None: no cap).
    max_pair_weight_ratio: float | None = 10.0
    max_weight: float = 10.0
    #: Each click weighs (inverse propensity) ** weight_power. 1.0 is plain IPS; 0.5 ("tempered")
    #: keeps most of the de-biasing at far lower variance, and measured best on SciFact (docs/RESULTS.md).
    weight_power: float = 0.5
    eta: float = 1.0
    #: Clicks a pair of neighbouring ranks needs before its measured propensity ratio replaces the prior's.
    min_intervention_clicks: int = 50
    #: Also take the unclicked document right below a click as a hard negative candidate.
    no_click_next: bool = True

    @classmethod
    def from_settings(cls, settings: ClicktuneSettings) -> MiningConfig:
        feedback = settings.feedback
        return cls(window_days=feedback.window_days, heldout_fraction=settings.gate.heldout_fraction,
                   max_clicks_per_user=feedback.max_clicks_per_user,
                   max_anonymous_clicks_per_query=feedback.max_anonymous_clicks_per_query,
                   max_pair_weight_ratio=feedback.max_pair_weight_ratio)


@dataclass
class _Pair:
    query: str
    doc_id: str
    #: raw inverse-propensity weights (their sum over votes: the held-out gain) and tempered ones
    #: (their sum: the training row's weight), grouped into votes (click_bounds.Votes)
    votes: Votes = field(default_factory=Votes)
    negatives: dict[str, float] = field(default_factory=lambda: defaultdict(float))  # doc -> evidence


@dataclass
class MinedFeedback:
    train: Any  # datasets.Dataset: anchor, positive, negative (str or None), weight
    eval_queries: dict[str, str]
    eval_relevant: dict[str, dict[str, float]]  # qid -> doc -> inverse-propensity gain
    stats: dict[str, Any]
    eval_judged: dict[str, set[str]] = field(default_factory=dict)  # qid -> every doc users were shown

    def stats_dict(self) -> dict[str, Any]:
        return dict(self.stats)


def mine_events(
    events: Iterable[FeedbackEvent], doc_texts: DocTexts, config: MiningConfig | None = None
) -> MinedFeedback:
    from datasets import Dataset

    cfg = config or MiningConfig()
    events = list(events)
    impressions_by_rank: Counter[int] = Counter()
    clicks_by_rank: Counter[int] = Counter()
    observations = []
    shown_by_query: dict[str, set[str]] = defaultdict(set)
    for event in events:
        clicked = {c.doc_id for c in event.clicks}
        key = normalize_query(event.impression.query)
        rankers = _rankers(event)
        for shown in event.impression.results:
            impressions_by_rank[shown.rank] += 1
            clicks_by_rank[shown.rank] += shown.doc_id in clicked
            observations.append(((key, rankers), shown.doc_id, shown.rank, shown.doc_id in clicked))
            shown_by_query[key].add(shown.doc_id)
    propensities = PropensityModel(cfg.eta, cfg.min_intervention_clicks).fit(observations)

    capped = over_caps(events, normalize_query, cfg.max_clicks_per_user, cfg.max_anonymous_clicks_per_query)
    pairs: dict[tuple[str, str], _Pair] = {}
    for number, event in enumerate(events):
        ranks = {r.doc_id: r.rank for r in event.impression.results}
        clicked = {c.doc_id for c in event.clicks}
        key = normalize_query(event.impression.query)
        identity = identity_of(event) if cfg.one_vote_per_identity else None
        for click in event.clicks:
            if (number, click.doc_id) in capped.over:
                continue
            rank = ranks[click.doc_id]
            pair = pairs.setdefault((key, click.doc_id), _Pair(event.impression.query, click.doc_id))
            inverse = min(cfg.max_weight, 1.0 / propensities.get(rank, (1.0, ""))[0])
            pair.votes.add(identity or (number, click.doc_id), inverse, inverse**cfg.weight_power)
            for doc_id, shown_rank in ranks.items():
                below = cfg.no_click_next and shown_rank == rank + 1
                if (shown_rank < rank or below) and doc_id not in clicked:
                    pair.negatives[doc_id] += propensities.get(shown_rank, (1.0, ""))[0]

    positives_by_query: dict[str, set[str]] = defaultdict(set)
    supported = [p for p in pairs.values() if p.votes.count >= cfg.min_clicks]
    for p in supported:
        positives_by_query[normalize_query(p.query)].add(p.doc_id)

    needed = sorted({p.doc_id for p in supported} | {d for p in supported for d in p.negatives})
    texts = doc_texts(needed) if needed else {}

    train_rows: dict[str, list] = {"anchor": [], "positive": [], "negative": [], "weight": []}
    eval_queries: dict[str, str] = {}
    eval_relevant: dict[str, dict[str, float]] = defaultdict(dict)
    missing = negatives_used = 0
    for p in sorted(supported, key=lambda p: (normalize_query(p.query), p.doc_id)):
        if p.doc_id not in texts:
            missing += 1
            continue
        key = normalize_query(p.query)
        if is_heldout(p.query, cfg.heldout_fraction):
            if p.votes.count >= cfg.heldout_min_clicks:
                qid = query_key(p.query)
                eval_queries[qid] = p.query
                eval_relevant[qid][p.doc_id] = p.votes.weight
            continue
        negative = next(
            (d for d, _ in sorted(p.negatives.items(), key=lambda kv: (-kv[1], kv[0]))
             if d not in positives_by_query[key] and d in texts),
            None,
        )
        negatives_used += negative is not None
        train_rows["anchor"].append(p.query)
        train_rows["positive"].append(texts[p.doc_id])
        train_rows["negative"].append(texts[negative] if negative else None)
        train_rows["weight"].append(p.votes.train_weight)
    train_rows["weight"], rows_capped = cap_pair_weights(train_rows["weight"], cfg.max_pair_weight_ratio)
    if train_rows["weight"]:
        mean = sum(train_rows["weight"]) / len(train_rows["weight"])
        train_rows["weight"] = [w / mean for w in train_rows["weight"]]

    stats = {
        "impressions": len(events),
        "clicks": sum(len(e.clicks) for e in events),
        "clicks_capped_per_user": capped.by_identity,
        "clicks_capped_anonymous_per_query": capped.by_anonymous_query,
        "train_pairs_weight_capped": rows_capped,
        "pairs": len(supported),
        "pairs_below_support": len(pairs) - len(supported),
        "pairs_missing_text": missing,
        "train_pairs": len(train_rows["anchor"]),
        "train_queries": len({normalize_query(a) for a in train_rows["anchor"]}),
        "train_with_negative": negatives_used,
        "heldout_queries": len(eval_queries),
        "ctr_by_rank": {r: clicks_by_rank[r] / n for r, n in sorted(impressions_by_rank.items()) if n},
        "propensities": {r: {"value": v, "source": s} for r, (v, s) in propensities.items()},
    }
    judged = {qid: shown_by_query[normalize_query(text)] for qid, text in eval_queries.items()}
    return MinedFeedback(Dataset.from_dict(train_rows), eval_queries, dict(eval_relevant), stats, judged)


def _rankers(event: FeedbackEvent) -> tuple[str, object]:
    """What decided the search's order: its challenger phase (a team-draft of two fixed models, whose
    coin flips move a document between neighbouring ranks at random) or the one model that answered.

    Propensities are harvested only from rank changes *within* one of these. Across them the change
    is not random: a document clicked at rank 3 is trained on and moved up by the next model, so
    pooling its rank 3 and rank 2 impressions over-states how often rank 3 is looked at (on SciFact it
    put rank 3 at 0.51 where users examined it with 1/3)."""
    if event.impression.challenge_id is not None:
        return ("challenge", event.impression.challenge_id)
    return ("model", event.impression.model_version)


def mine_feedback(
    log: ClickLog,
    doc_texts: DocTexts,
    config: MiningConfig | None = None,
    *,
    now: datetime | None = None,
    alias: str | None = None,
) -> MinedFeedback:
    """Mine the click log's window (``window_days`` back from ``now``), of one alias when given."""
    cfg = config or MiningConfig()
    now = now or datetime.now(timezone.utc)
    since = now - timedelta(days=cfg.window_days) if cfg.window_days else None
    return mine_events(log.iter_feedback(since=since, until=now, alias=alias), doc_texts, cfg)
