"""An offline click simulator: BEIR queries through the real store, clicks from a position-based model.

Position-based click model (PBM): a user examines rank r with probability ``1 / r**eta``; an examined
relevant document is clicked with ``p_relevant``, an examined irrelevant one with ``p_noise``.
Examination and relevance are independent, which is the bias the miner's inverse-propensity weights
are there to undo. Searches go through ``ClicktuneVectorStore`` (so impressions are real) and clicks
through the click API (so they are validated and stored like a browser's).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tqdm.auto import tqdm

from clicktune.scheduler.beir import BeirDataset
from clicktune.scheduler.propensity import power_law_examination

log = logging.getLogger(__name__)


@dataclass
class ClickModel:
    """PBM parameters; defaults follow the project's measured recipe (1/r examination, 0.9 / 0.05)."""

    eta: float = 1.0
    p_relevant: float = 0.9
    p_noise: float = 0.05

    def examine(self, rank: int) -> float:
        return power_law_examination(rank, self.eta)


@dataclass
class SimulationConfig:
    split: str = "train"
    rounds: int = 3
    users: int = 50
    k: int = 10
    seed: int = 0
    max_queries: int | None = None
    click_model: ClickModel = field(default_factory=ClickModel)


@dataclass
class SimulationStats:
    searches: int = 0
    clicks: int = 0
    relevant_clicks: int = 0
    impressions_by_rank: dict[int, int] = field(default_factory=dict)
    clicks_by_rank: dict[int, int] = field(default_factory=dict)

    @property
    def ctr_by_rank(self) -> dict[int, float]:
        return {r: self.clicks_by_rank.get(r, 0) / n for r, n in sorted(self.impressions_by_rank.items()) if n}

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ctr_by_rank"] = self.ctr_by_rank
        return data


class ClickSimulator:
    """Sends a BEIR split's queries through ``search`` and reports clicks to ``record_click``.

    ``search(query, k, user_id)`` returns LangChain documents annotated in ``metadata["clicktune"]``
    with ``search_id`` and ``rank`` (what ``ClicktuneVectorStore.similarity_search`` does);
    ``record_click`` is the click API's signature. Passing callables keeps the simulator usable
    against a remote app.
    """

    def __init__(
        self,
        dataset: BeirDataset,
        search: Callable[..., list],
        record_click: Callable[..., Any],
        config: SimulationConfig | None = None,
        *,
        show_progress: bool = False,
    ) -> None:
        self.dataset = dataset
        self.search = search
        self.record_click = record_click
        self.config = config or SimulationConfig()
        self.show_progress = show_progress

    def run(self) -> SimulationStats:
        cfg = self.config
        rng = random.Random(cfg.seed)
        qrels = self.dataset.qrels.get(cfg.split)
        if not qrels:
            raise ValueError(f"the dataset has no qrels for split {cfg.split!r}")
        qids = sorted(q for q in qrels if q in self.dataset.queries)
        if cfg.max_queries:
            qids = rng.sample(qids, min(cfg.max_queries, len(qids)))
        users = [f"user-{i:03d}" for i in range(cfg.users)]
        stats = SimulationStats()
        impressions: Counter[int] = Counter()
        clicks: Counter[int] = Counter()
        bar = tqdm(total=len(qids) * cfg.rounds, desc="simulating users", unit="search", disable=not self.show_progress)
        try:
            for _ in range(cfg.rounds):
                order = qids[:]
                rng.shuffle(order)
                for qid in order:
                    user = rng.choice(users)
                    results = self.search(self.dataset.queries[qid], k=cfg.k, user_id=user)
                    stats.searches += 1
                    relevant = {d for d, grade in qrels[qid].items() if grade > 0}
                    for doc in results:
                        rank = int(doc.metadata["clicktune"]["rank"])
                        impressions[rank] += 1
                        if rng.random() >= cfg.click_model.examine(rank):
                            continue
                        is_relevant = doc.id in relevant
                        p = cfg.click_model.p_relevant if is_relevant else cfg.click_model.p_noise
                        if rng.random() < p:
                            self.record_click(doc.metadata["clicktune"]["search_id"], doc.id, user=user)
                            clicks[rank] += 1
                            stats.clicks += 1
                            stats.relevant_clicks += int(is_relevant)
                    bar.update(1)
        finally:
            bar.close()
        stats.impressions_by_rank = dict(sorted(impressions.items()))
        stats.clicks_by_rank = dict(sorted(clicks.items()))
        log.info("simulated %d searches, %d clicks (%d on relevant documents)", stats.searches, stats.clicks,
                 stats.relevant_clicks)
        return stats
