"""`clicktune demo`: the whole loop on real data, in one command, with a before/after report.

Index SciFact into embedded Qdrant, measure nDCG@10 / Recall@10 on its test queries, let simulated
users click through the train queries, run the real loop (mine, train, gate, blue-green reindex,
swap), measure again, and write ``report.json`` and ``report.png``. Test queries and qrels are never
seen by the loop: only clicks on train queries are.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from clicktune.adapters.qdrant import close_shared_clients
from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.evaluation import EvalSet, Scores, evaluate_collection
from clicktune.scheduler.loop import RetrainLoop
from clicktune.scheduler.simulator import ClickModel, ClickSimulator, SimulationConfig

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """The demo's budget: chosen to finish well inside 15 minutes on a 2-core CPU (see README)."""

    data_dir: Path = BUNDLED_SCIFACT
    home: Path = Path(".clicktune-demo")
    report_dir: Path = Path("demo-report")
    max_seq_length: int = 128
    train_max_seq_length: int = 128
    train_epochs: float = 1.0
    rounds: int = 3
    users: int = 50
    seed: int = 0


def _settings(cfg: DemoConfig) -> ClicktuneSettings:
    return ClicktuneSettings(
        home=cfg.home, max_seq_length=cfg.max_seq_length, train_max_seq_length=cfg.train_max_seq_length,
        train_epochs=cfg.train_epochs, min_new_clicks=1, progress=True, seed=cfg.seed, gate_min_delta=0.0,
    )


def run_demo(cfg: DemoConfig, console: Console | None = None) -> dict[str, Any]:
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore

    console = console or Console()
    timings: dict[str, float] = {}
    if cfg.home.exists():
        shutil.rmtree(cfg.home)
    settings = _settings(cfg)
    data = BeirDataset.load(cfg.data_dir)
    test = EvalSet(data.split_queries("test"), {q: {d for d, g in r.items() if g > 0}
                                                for q, r in data.qrels["test"].items()}, name="test")
    console.rule(f"[bold]clicktune demo[/]: {len(data.corpus):,} documents, {len(test)} test queries")

    with ClicktuneEmbeddings(settings, watch=False) as embeddings:
        store = ClicktuneVectorStore(settings, embeddings=embeddings)
        t = time.perf_counter()
        docs = list(data.corpus.values())
        store.add_texts([d.content for d in docs], ids=[d.doc_id for d in docs], batch_size=512)
        timings["index"] = time.perf_counter() - t
        before, before_version = _measure(store, test)
        console.print(f"before: {before_version} nDCG@10 {before.ndcg_at_10:.4f}  Recall@10 {before.recall_at_10:.4f}")

        t = time.perf_counter()
        simulator = ClickSimulator(
            data, store.similarity_search, store.record_click,
            SimulationConfig(split="train", rounds=cfg.rounds, users=cfg.users, k=10, seed=cfg.seed,
                             click_model=ClickModel(eta=1.0, p_relevant=0.9, p_noise=0.05)),
            show_progress=True,
        )
        traffic = simulator.run()
        timings["traffic"] = time.perf_counter() - t
        console.print(f"traffic: {traffic.searches:,} searches, {traffic.clicks:,} clicks "
                      f"({traffic.relevant_clicks:,} on relevant documents)")

        t = time.perf_counter()
        loop = RetrainLoop(settings, handle=store.handle, feedback=store.feedback)
        candidate_test: dict[str, Any] = {}
        gate_evaluate = loop.gate.evaluate

        def evaluate_and_peek(handle, champion_collection, candidate_collection, heldout):  # noqa: ANN001
            # The demo also scores the candidate on the test queries, for the report only: the
            # decision below is the gate's, made on held-out clicks, as in production.
            version = handle.collections.version_of(candidate_collection)
            candidate_test.update(version=version, **evaluate_collection(
                handle.client, candidate_collection, handle.encoder(version), test).as_dict())
            return gate_evaluate(handle, champion_collection, candidate_collection, heldout)

        loop.gate.evaluate = evaluate_and_peek  # type: ignore[method-assign]
        outcome = loop.retrain_once(force=True)
        timings["loop"] = time.perf_counter() - t
        console.print(f"loop: [bold]{outcome.status}[/] - {outcome.reason}")
        after, after_version = _measure(store, test)

    report = {
        "dataset": str(cfg.data_dir),
        "settings": {"max_seq_length": cfg.max_seq_length, "train_max_seq_length": cfg.train_max_seq_length,
                     "train_epochs": cfg.train_epochs, "rounds": cfg.rounds, "users": cfg.users},
        "before": {"version": before_version, **before.as_dict()},
        "after": {"version": after_version, **after.as_dict()},
        "candidate": candidate_test,
        "traffic": traffic.as_dict(),
        "loop": outcome.as_dict(),
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    (cfg.report_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    _plot(report, cfg.report_dir / "report.png")
    _table(console, report)
    close_shared_clients()
    return report


def _measure(store, test: EvalSet) -> tuple[Scores, str]:  # noqa: ANN001
    live = store.collections.require_live()
    return evaluate_collection(store.client, live.collection, store.handle.encoder(live.version), test), live.version


def _table(console: Console, report: dict[str, Any]) -> None:
    table = Table(title="SciFact test queries (never used for training)")
    table.add_column("")
    for col in ("model", "nDCG@10", "Recall@10", "MRR@10"):
        table.add_column(col, justify="right")
    for label in ("before", "after"):
        row = report[label]
        table.add_row(label, row["version"], f"{row['ndcg@10']:.4f}", f"{row['recall@10']:.4f}", f"{row['mrr@10']:.4f}")
    cand = report.get("candidate") or {}
    if cand and cand.get("version") != report["after"]["version"]:
        table.add_row("candidate (not promoted)", cand["version"], f"{cand['ndcg@10']:.4f}",
                      f"{cand['recall@10']:.4f}", f"{cand['mrr@10']:.4f}")
    b, a = report["before"]["ndcg@10"], report["after"]["ndcg@10"]
    table.add_row("change", "", f"{a - b:+.4f} (x{a / b:.3f})" if b else "-", "", "")
    console.print(table)
    console.print(f"timings (s): {report['seconds']}; report in demo-report/report.json and report.png")


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    metrics = ["ndcg@10", "recall@10", "mrr@10"]
    xs = range(len(metrics))
    left.bar([x - 0.2 for x in xs], [report["before"][m] for m in metrics], 0.4,
             label=f"before ({report['before']['version']})")
    left.bar([x + 0.2 for x in xs], [report["after"][m] for m in metrics], 0.4,
             label=f"after ({report['after']['version']})")
    left.set_xticks(list(xs), metrics)
    left.set_ylim(0, 1)
    left.set_title("SciFact test, before and after the loop")
    left.legend()
    ctr = report["traffic"]["ctr_by_rank"]
    ranks = sorted(int(r) for r in ctr)
    right.bar(ranks, [ctr[r] if r in ctr else ctr[str(r)] for r in ranks], color="tab:gray")
    right.set_xlabel("rank")
    right.set_ylabel("click-through rate")
    right.set_title("Simulated clicks by rank (position bias)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
