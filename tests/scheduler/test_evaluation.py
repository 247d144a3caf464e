"""Our Qdrant-based metrics equal sentence-transformers' InformationRetrievalEvaluator's."""

from __future__ import annotations

import pytest

from clicktune.adapters import ClicktuneSettings
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.evaluation import EvalSet, Scores, evaluate_version, ir_metrics
from clicktune.scheduler.gate import OfflineCheck

pytestmark = pytest.mark.both_engines  # each embedded engine


def test_ir_metrics_by_hand() -> None:
    rankings = {"q1": ["a", "b", "c"], "q2": ["x", "y", "z"], "q3": ["m"]}
    relevant = {"q1": {"b"}, "q2": {"x", "z"}, "q3": {"n"}}
    s = ir_metrics(rankings, relevant)
    import math

    ndcg_q1 = (1 / math.log2(3)) / 1.0
    ndcg_q2 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    assert s.ndcg_at_10 == pytest.approx((ndcg_q1 + ndcg_q2 + 0) / 3)
    assert s.mrr_at_10 == pytest.approx((0.5 + 1 + 0) / 3)
    assert s.recall_at_10 == pytest.approx((1 + 1 + 0) / 3)
    assert s.queries == 3
    graded = ir_metrics({"q": ["a", "b"]}, {"q": {"a": 1.0, "b": 3.0}})
    assert graded.ndcg_at_10 == pytest.approx((1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3)))


def test_matches_information_retrieval_evaluator(settings: ClicktuneSettings) -> None:
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

    data = BeirDataset.load(BUNDLED_SCIFACT)
    qrels = data.qrels["test"]
    qids = list(qrels)[:25]
    doc_ids = sorted({d for q in qids for d in qrels[q]} | set(list(data.corpus)[:60]))
    corpus = {d: data.corpus[d].content for d in doc_ids}
    queries = {q: data.queries[q] for q in qids}
    relevant = {q: set(qrels[q]) for q in qids}

    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        store.add_texts(list(corpus.values()), ids=list(corpus))
        live = store.collections.require_live()
        ours = evaluate_version(store.handle, live.version, EvalSet(queries, relevant))
        evaluator = InformationRetrievalEvaluator(queries, corpus, relevant, name="t", write_csv=False,
                                                  batch_size=32)
        theirs = evaluator(emb.encoder(live.version).model)
    assert ours.ndcg_at_10 == pytest.approx(theirs["t_cosine_ndcg@10"], abs=1e-4)
    assert ours.mrr_at_10 == pytest.approx(theirs["t_cosine_mrr@10"], abs=1e-4)
    assert ours.recall_at_10 == pytest.approx(theirs["t_cosine_recall@10"], abs=1e-4)
    assert 0.3 < ours.ndcg_at_10 < 1.0


def _scores(ndcg: float, queries: int = 50) -> Scores:
    """Every query at the same value: a difference between two of these is exact, not noisy."""
    same = {f"q{i}": ndcg for i in range(queries)}
    return Scores(ndcg, ndcg, ndcg, queries, {m: dict(same) for m in ("ndcg@10", "mrr@10", "recall@10")})


def _per_query_scores(values: list[float]) -> Scores:
    per_query = {f"q{i}": v for i, v in enumerate(values)}
    mean = sum(values) / len(values)
    return Scores(mean, mean, mean, len(values), {"ndcg@10": per_query})


def test_offline_check_refuses_clear_regressions_only() -> None:
    check = OfflineCheck(metric="ndcg@10", tolerance=0.02, min_queries=10, golden_tolerance=0.005)
    better = check.decide("v0001", "v0002", {"heldout": _scores(0.50)}, {"heldout": _scores(0.52)})
    assert better.passed and "delta +0.0200" in better.reason
    assert better.champion["heldout"]["ndcg@10"] == 0.50 and better.candidate["heldout"]["ndcg@10"] == 0.52
    # A small drop is within held-out noise: the challenger phase, not this guard, judges it.
    within = check.decide("v0001", "v0002", {"heldout": _scores(0.50)}, {"heldout": _scores(0.485)})
    assert within.passed
    worse = check.decide("v0001", "v0002", {"heldout": _scores(0.50)}, {"heldout": _scores(0.47)})
    assert not worse.passed and "tolerance 0.02" in worse.reason
    few = check.decide("v0001", "v0002", {"heldout": _scores(0.5, 3)}, {"heldout": _scores(0.9, 3)})
    assert not few.passed and "held-out queries" in few.reason
    golden_drop = check.decide(
        "v0001", "v0002",
        {"heldout": _scores(0.50), "golden": _scores(0.70)},
        {"heldout": _scores(0.60), "golden": _scores(0.69)},
    )
    assert not golden_drop.passed and "golden" in golden_drop.reason
    golden_ok = check.decide(
        "v0001", "v0002",
        {"heldout": _scores(0.50), "golden": _scores(0.70)},
        {"heldout": _scores(0.60), "golden": _scores(0.697)},
    )
    assert golden_ok.passed


def test_a_held_out_drop_refuses_only_when_significantly_beyond_the_tolerance() -> None:
    """Eighty noisy click-labelled queries cannot tell a 0.03 drop from none: such a candidate goes on
    to the interleaving judge. The same mean drop on every query, or a large one, is refused."""
    check = OfflineCheck(metric="ndcg@10", tolerance=0.02, min_queries=10)
    champion = _per_query_scores([0.8] * 80)
    # Half the queries gain 0.27, half lose 0.33: mean drop 0.03, standard error ~0.034.
    noisy = _per_query_scores([1.07 if i % 2 else 0.47 for i in range(80)])
    unresolved = check.decide("v0001", "v0002", {"heldout": champion}, {"heldout": noisy})
    assert unresolved.passed and "not significantly beyond" in unresolved.reason, unresolved.reason
    assert unresolved.drop_p_value is not None and unresolved.drop_p_value > 0.3
    # Same spread around a 0.15 drop: well beyond the tolerance, with confidence.
    broken = _per_query_scores([0.95 if i % 2 else 0.35 for i in range(80)])
    refused = check.decide("v0001", "v0002", {"heldout": champion}, {"heldout": broken})
    assert not refused.passed and "< alpha 0.05" in refused.reason, refused.reason
    assert refused.drop_p_value is not None and refused.drop_p_value < 0.001
    # A drop within the tolerance never needs the test.
    within = check.decide("v0001", "v0002", {"heldout": champion}, {"heldout": _per_query_scores([0.79] * 80)})
    assert within.passed and within.drop_p_value is None
    with pytest.raises(ValueError, match="alpha"):
        OfflineCheck(alpha=0.5)


def test_report_only_sets_are_scored_and_recorded_but_never_decide(settings: ClicktuneSettings) -> None:
    """The demo and benchmarks see a candidate's score on judged test queries through the check's
    result; a collapse there must not change the verdict, which is the held-out clicks' alone."""
    check = OfflineCheck(metric="ndcg@10", tolerance=0.02, min_queries=10)
    verdict = check.decide("v0001", "v0002", {"heldout": _scores(0.50), "test": _scores(0.60)},
                           {"heldout": _scores(0.51), "test": _scores(0.10)})
    assert verdict.passed and verdict.candidate["test"]["ndcg@10"] == 0.10
    with pytest.raises(ValueError, match="golden"):
        OfflineCheck(report_sets={"golden": EvalSet({}, {})})
    from_settings = OfflineCheck.from_settings(settings, report_sets={"test": EvalSet({"q": "text"}, {"q": {"d": 1.0}})})
    assert set(from_settings.report_sets) == {"test"}
