"""Retrieval metrics over what Qdrant actually returns, for the promotion gate and `clicktune eval`.

The gate scores the champion on its live collection and the candidate on the collection the reindex
just built (not yet swapped in), each with its own model embedding the queries: exactly what users
would get from either, with no second encoding of the corpus. The metric definitions are those of
sentence-transformers' ``InformationRetrievalEvaluator`` (binary relevance; a test pins the match).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clicktune.adapters.qdrant import IndexHandle

K = 10



Relevance = Mapping[str, set[str]] | Mapping[str, Mapping[str, float]]


def _graded(relevant: Relevance) -> dict[str, dict[str, float]]:
    return {q: (dict(docs) if isinstance(docs, Mapping) else dict.fromkeys(docs, 1.0)) for q, docs in relevant.items()}


@dataclass
class EvalSet:
    """Queries and their relevant documents (caller ids), each with a gain (1.0 for plain qrels).

    Held-out click queries carry inverse-propensity gains: a document clicked at rank 8 says more
    than one clicked at rank 1, which the champion put there. Without that correction, labels
    harvested from the champion's own rankings would favour the champion in every comparison.
    """

    queries: dict[str, str]
    relevant_docs: dict[str, dict[str, float]]
    name: str = "heldout"
    #: Per query, the documents users were actually shown (judged). When set, rankings are condensed
    #: to judged documents before scoring, so a model is neither rewarded nor punished for documents
    #: nobody ever saw: otherwise "unseen = irrelevant" favours the model that produced the log.
    judged: dict[str, set[str]] | None = None

    def __init__(
        self,
        queries: Mapping[str, str],
        relevant_docs: Relevance,
        name: str = "heldout",
        judged: Mapping[str, set[str]] | None = None,
    ) -> None:
        self.relevant_docs = _graded(relevant_docs)
        self.queries = {q: t for q, t in queries.items() if self.relevant_docs.get(q)}
        self.name = name
        self.judged = {q: set(d) for q, d in judged.items()} if judged is not None else None

    def __len__(self) -> int:
        return len(self.queries)

    @classmethod
    def from_beir(cls, folder: str | Path, split: str = "test", name: str = "golden") -> EvalSet:
        from clicktune.scheduler.beir import BeirDataset

        data = BeirDataset.load(folder, splits=(split,))
        qrels = data.qrels.get(split, {})
        relevant = {q: {d: 1.0 for d, grade in docs.items() if grade > 0} for q, docs in qrels.items()}
        return cls(queries=data.split_queries(split), relevant_docs=relevant, name=name)


@dataclass
class Scores:
    ndcg_at_10: float
    mrr_at_10: float
    recall_at_10: float
    queries: int
    #: metric -> query id -> that query's value: what a paired comparison of two models needs.
    per_query: dict[str, dict[str, float]] = field(default_factory=dict, repr=False)

    def get(self, metric: str) -> float:
        return {"ndcg@10": self.ndcg_at_10, "mrr@10": self.mrr_at_10, "recall@10": self.recall_at_10}[metric]

    def as_dict(self) -> dict[str, float | int]:
        return {"ndcg@10": self.ndcg_at_10, "mrr@10": self.mrr_at_10, "recall@10": self.recall_at_10,
                "queries": self.queries}


def ir_metrics(
    rankings: Mapping[str, list[str]],
    relevant: Relevance,
    k: int = K,
    judged: Mapping[str, set[str]] | None = None,
) -> Scores:
    """nDCG@k (graded gains), MRR@k and Recall@k (binary), averaged over queries.

    With gains of 1.0 and no ``judged`` pools these are exactly InformationRetrievalEvaluator's
    definitions (a test pins it); with pools, each ranking is first condensed to judged documents.
    """
    ndcgs, mrrs, recalls = [], [], []
    per_query: dict[str, dict[str, float]] = {"ndcg@10": {}, "mrr@10": {}, "recall@10": {}}
    for qid, rels in _graded(relevant).items():
        if not rels:
            continue
        ranking = rankings.get(qid, [])
        if judged is not None:
            pool = judged.get(qid, set()) | set(rels)
            ranking = [doc for doc in ranking if doc in pool]
        top = ranking[:k]
        gains = [rels.get(doc, 0.0) for doc in top]
        dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
        ideal_gains = sorted(rels.values(), reverse=True)[:k]
        ideal = sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))
        ndcg = dcg / ideal if ideal else 0.0
        first = next((i for i, doc in enumerate(top) if doc in rels), None)
        ndcgs.append(ndcg)
        mrrs.append(0.0 if first is None else 1.0 / (first + 1))
        recalls.append(sum(1 for doc in top if doc in rels) / len(rels))
        for metric, values in (("ndcg@10", ndcgs), ("mrr@10", mrrs), ("recall@10", recalls)):
            per_query[metric][qid] = values[-1]
    n = len(ndcgs)
    mean = (lambda xs: sum(xs) / n) if n else (lambda xs: 0.0)
    return Scores(mean(ndcgs), mean(mrrs), mean(recalls), n, per_query)


def rank_version(
    handle: IndexHandle, version: str, queries: Mapping[str, str], *, k: int = K, batch_size: int | None = None
) -> dict[str, list[str]]:
    """Top-k caller ids per query: the query embedded by ``version``'s model, searched exactly in its collection."""
    qids = list(queries)
    vectors = handle.encoder(version).encode([queries[q] for q in qids],
                                             batch_size=batch_size or handle.settings.batch_size)
    return dict(zip(qids, handle.index.rank(version, vectors, k=k), strict=True))


def evaluate_version(
    handle: IndexHandle, version: str, eval_set: EvalSet, *, batch_size: int | None = None
) -> Scores:
    """What users would get from ``version`` (its collection, its query encoder), scored on ``eval_set``."""
    depth = 100 if eval_set.judged is not None else K  # condensing needs room below rank 10
    rankings = rank_version(handle, version, eval_set.queries, k=depth, batch_size=batch_size)
    return ir_metrics(rankings, eval_set.relevant_docs, judged=eval_set.judged)
