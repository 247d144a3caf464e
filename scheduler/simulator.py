"""An offline click simulator: BEIR queries through the real store, clicks from a click model.

Two families of click model from the literature, so the loop is judged on behaviour it was not
built around:

- :class:`PositionBasedModel` (PBM): a user examines rank r with probability ``1 / r**eta``,
  independently of everything else; an examined relevant document is clicked with ``p_relevant``,
  an examined irrelevant one with ``p_noise``. Examination and relevance are independent, which is
  exactly the bias the miner's inverse-propensity weights are built to undo.
- :class:`DependentClickModel` (DCM; Guo, Liu and Wang, WSDM 2009): a cascade. The user reads
  top-down; each document read is clicked with its attractiveness, and after a click the user goes
  on reading with probability ``continue_after_click`` (else is satisfied and stops). Whether rank r
  is examined depends on the clicks above it, so the PBM's assumption behind the miner's
  propensities does not hold: a loop that only works under PBM fails here.

Searches go through ``ClicktuneVectorStore`` (so impressions are real) and clicks through the click
API (so they are validated and stored like a browser's).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from tqdm.auto import tqdm

from clicktune.scheduler.beir import BeirDataset
from clicktune.scheduler.propensity import power_law_examination

log = logging.getLogger(__name__)


class ClickModel(Protocol):
    """Which of the shown results a simulated user clicks, given whether each is relevant."""

    def clicked_ranks(self, relevant: Sequence[bool], rng: random.Random) -> list[int]:
        """1-based ranks clicked, for results ``relevant[0]`` (rank 1) onwards."""
        ...


@dataclass
class PositionBasedModel:
    """PBM parameters; defaults follow the project's measured recipe (1/r examination, 0.9 / 0.05)."""

    eta: float = 1.0
    p_relevant: float = 0.9
    p_noise: float = 0.05

    def examine(self, rank: int) -> float:
        return power_law_examination(rank, self.eta)

    def clicked_ranks(self, relevant: Sequence[bool], rng: random.Random) -> list[int]:
        clicked = []
        for rank, is_relevant in enumerate(relevant, start=1):
            if rng.random() >= self.examine(rank):
                continue
            if rng.random() < (self.p_relevant if is_relevant else self.p_noise):
                clicked.append(rank)
        return clicked


@dataclass
class DependentClickModel:
    """DCM parameters: noisier than the PBM defaults (0.7 / 0.1), half the users stop after a click."""

    p_relevant: float = 0.7
    p_noise: float = 0.1
    continue_after_click: float = 0.5

    def clicked_ranks(self, relevant: Sequence[bool], rng: random.Random) -> list[int]:
        clicked = []
        for rank, is_relevant in enumerate(relevant, start=1):
            if rng.random() < (self.p_relevant if is_relevant else self.p_noise):
                clicked.append(rank)
                if rng.random() >= self.continue_after_click:
                    break
        return clicked


#: Click models by the name a benchmark or the demo is given.
CLICK_MODELS: dict[str, Callable[[], ClickModel]] = {"pbm": PositionBasedModel, "dcm": DependentClickModel}


def click_model_named(name: str) -> ClickModel:
    try:
        return CLICK_MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown click model {name!r}: choose one of {', '.join(CLICK_MODELS)}") from None


@dataclass
class SimulationConfig:
    split: str = "train"
    rounds: int = 3
    users: int = 50
    k: int = 10
    seed: int = 0
    max_queries: int | None = None
    click_model: ClickModel = field(default_factory=PositionBasedModel)


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
                    shown = [doc.id in relevant for doc in results]
                    for rank in range(1, len(results) + 1):
                        impressions[rank] += 1
                    for rank in cfg.click_model.clicked_ranks(shown, rng):
                        doc = results[rank - 1]
                        self.record_click(doc.metadata["clicktune"]["search_id"], doc.id, user=user)
                        clicks[rank] += 1
                        stats.clicks += 1
                        stats.relevant_clicks += int(shown[rank - 1])
                    bar.update(1)
        finally:
            bar.close()
        stats.impressions_by_rank = dict(sorted(impressions.items()))
        stats.clicks_by_rank = dict(sorted(clicks.items()))
        log.info("simulated %d searches, %d clicks (%d on relevant documents)", stats.searches, stats.clicks,
                 stats.relevant_clicks)
        return stats
