"""The demo (`make demo`, ``examples/demo.py``): the whole loop on real data, with a before/after report.

Index SciFact into embedded Qdrant, measure nDCG@10 / Recall@10 on its test queries, let simulated
users click through the train queries, run the real loop (mine, train, build the candidate's
collection, offline check, challenger phase: simulated users click on team-draft interleaved results
until the sequential test decides), measure again, and write ``report.json`` and ``report.png``.
Test queries and qrels are never seen by the loop: only clicks on train queries are.

The app's vector store is given from outside: ``examples/demo.py`` builds it, and ``clicktune demo``
finds the store class registered under the ``clicktune.stores`` entry point (``default``, the plugin's
``ClicktuneVectorStore``; see pyproject.toml). The scheduler never imports the plugin (arrows go
plugin -> adapters <- scheduler), and the demo drives the store only through what any app would call.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console
from rich.table import Table

from clicktune.adapters.clicklog import Challenger, ClickLog
from clicktune.adapters.errors import ConfigurationError
from clicktune.adapters.qdrant import IndexHandle, close_shared_clients
from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
from clicktune.scheduler.evaluation import EvalSet, Scores, evaluate_version
from clicktune.scheduler.gate import OfflineCheck
from clicktune.scheduler.loop import RetrainLoop
from clicktune.scheduler.simulator import ClickSimulator, PositionBasedModel, SimulationConfig

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    """The demo's budget. Clean clone, install included (docs/RESULTS.md): 10.1 min on a 2-core CPU with native bf16
    (AVX512-BF16), within the 15 aimed for; 23 min on an AVX2-only one (fp32)."""

    data_dir: Path = BUNDLED_SCIFACT
    home: Path = Path(".clicktune-demo")
    report_dir: Path = Path("demo-report")
    max_seq_length: int = 128
    train_max_seq_length: int = 128
    train_epochs: float = 3.0
    #: Rounds of traffic (each train query once per round) before the first training.
    rounds: int = 2
    #: At most this many rounds of interleaved traffic in the challenger phase.
    phase_rounds: int = 4
    users: int = 50
    seed: int = 0


class DemoStore(Protocol):
    """What the demo needs of the app's vector store (``ClicktuneVectorStore`` has all of it)."""

    handle: IndexHandle
    feedback: ClickLog

    def add_texts(self, texts: list[str], metadatas: list[dict] | None = None, **kwargs: Any) -> list[str]: ...
    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list: ...
    def record_click(self, search_id: str, doc_id: str, **kwargs: Any) -> bool: ...
    def active_challenger(self) -> Challenger | None: ...


StoreFactory = Callable[[ClicktuneSettings], DemoStore]

#: The entry-point group an app's store class is registered under (pyproject.toml).
STORE_ENTRY_POINTS = "clicktune.stores"


def registered_store(settings: ClicktuneSettings, name: str = "default") -> DemoStore:
    """The store class registered as ``name`` in ``clicktune.stores``, opened on ``settings``."""
    found = entry_points(group=STORE_ENTRY_POINTS, name=name)
    if not found:
        raise ConfigurationError(
            f"no {STORE_ENTRY_POINTS!r} entry point named {name!r}: clicktune's package metadata is missing; "
            "install it (pip install clicktune, or pip install -e . in a checkout) rather than running from a bare folder")
    (entry,) = tuple(found)
    return entry.load()(settings)


def parse_config(argv: Sequence[str] | None = None, prog: str | None = None) -> DemoConfig:
    """``DemoConfig`` from command-line arguments (``examples/demo.py`` and ``clicktune demo`` share them)."""
    defaults = DemoConfig()
    parser = argparse.ArgumentParser(prog=prog, description="The whole clicktune loop on SciFact, embedded, "
                                     "with a before/after report.")
    parser.add_argument("--data", type=Path, default=defaults.data_dir, help="BEIR folder (default: bundled SciFact)")
    parser.add_argument("--demo-home", type=Path, default=defaults.home, help="scratch home, wiped at start")
    parser.add_argument("--report", type=Path, default=defaults.report_dir, help="where report.json/.png go")
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="traffic rounds before training")
    parser.add_argument("--phase-rounds", type=int, default=defaults.phase_rounds,
                        help="at most this many rounds of interleaved traffic")
    parser.add_argument("--epochs", type=float, default=defaults.train_epochs)
    parser.add_argument("--max-seq-length", type=int, default=defaults.max_seq_length)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    args = parser.parse_args(argv)
    return DemoConfig(data_dir=args.data, home=args.demo_home, report_dir=args.report, rounds=args.rounds,
                      phase_rounds=args.phase_rounds, train_epochs=args.epochs, max_seq_length=args.max_seq_length,
                      train_max_seq_length=args.max_seq_length, seed=args.seed)


def main(argv: Sequence[str] | None = None, store_factory: StoreFactory | None = None,
         prog: str | None = None) -> dict[str, Any]:
    """Parse arguments, open the app's store on a fresh demo home, run the demo."""
    cfg = parse_config(argv, prog=prog)
    settings = demo_settings(cfg)
    return run_demo(cfg, settings, (store_factory or registered_store)(settings))


def demo_settings(cfg: DemoConfig) -> ClicktuneSettings:
    """Settings for a fresh demo home (wiped here, before any store opens it)."""
    if cfg.home.exists():
        shutil.rmtree(cfg.home)
    # Every simulated search may be interleaved, and its clicks count at once (simulated users click
    # immediately); the sequential test and the offline check keep their production defaults.
    return ClicktuneSettings(
        home=cfg.home, max_seq_length=cfg.max_seq_length, train_max_seq_length=cfg.train_max_seq_length,
        train_epochs=cfg.train_epochs, min_new_clicks=1, progress=True, seed=cfg.seed, interleave_share=1.0,
        challenger_settle_seconds=0.0, challenger_refresh_seconds=0.0, watch_registry=False,
    )


def run_demo(
    cfg: DemoConfig, settings: ClicktuneSettings, store: DemoStore, console: Console | None = None
) -> dict[str, Any]:
    """Run the demo on ``store`` (opened on ``demo_settings(cfg)``) and write the report."""
    console = console or Console()
    timings: dict[str, float] = {}
    data = BeirDataset.load(cfg.data_dir)
    test = EvalSet(data.split_queries("test"), {q: {d for d, g in r.items() if g > 0}
                                                for q, r in data.qrels["test"].items()}, name="test")
    console.rule(f"[bold]clicktune demo[/]: {len(data.corpus):,} documents, {len(test)} test queries, seed {cfg.seed}")
    click_model = PositionBasedModel(eta=1.0, p_relevant=0.9, p_noise=0.05)

    def simulate(rounds: int, seed: int) -> dict[str, Any]:
        return ClickSimulator(
            data, store.similarity_search, store.record_click,
            SimulationConfig(split="train", rounds=rounds, users=cfg.users, k=10, seed=seed, click_model=click_model),
            show_progress=True,
        ).run().as_dict()

    t = time.perf_counter()
    docs = list(data.corpus.values())
    store.add_texts([d.content for d in docs], ids=[d.doc_id for d in docs], batch_size=512)
    timings["index"] = time.perf_counter() - t
    before, before_version = _measure(store, test)
    console.print(f"before: {before_version} nDCG@10 {before.ndcg_at_10:.4f}  Recall@10 {before.recall_at_10:.4f}")

    t = time.perf_counter()
    traffic = simulate(cfg.rounds, cfg.seed)
    timings["traffic"] = time.perf_counter() - t
    console.print(f"traffic: {traffic['searches']:,} searches, {traffic['clicks']:,} clicks "
                  f"({traffic['relevant_clicks']:,} on relevant documents)")

    t = time.perf_counter()
    # The test queries ride along in the offline check as a report-only set: scored for both models
    # and recorded, never decided on (the loop only ever sees clicks).
    gate = OfflineCheck.from_settings(settings, report_sets={"test": test})
    loop = RetrainLoop(settings, handle=store.handle, feedback=store.feedback, gate=gate)
    started = loop.tick(force=True)
    timings["train_and_build"] = time.perf_counter() - t
    console.print(f"loop: [bold]{started.status}[/] - {started.reason}")
    offline = (started.decision or {}).get("offline") or {}
    candidate: dict[str, Any] = (
        {"version": offline["candidate_version"], **offline["candidate"]["test"]} if offline else {})
    phase_rounds: list[dict[str, Any]] = []
    final = started
    challenger = store.active_challenger()
    if started.status == "challenger" and challenger is not None:
        t = time.perf_counter()
        for i in range(cfg.phase_rounds):
            round_traffic = simulate(1, cfg.seed + 1000 * (i + 1))
            final = loop.tick()
            verdict = final.decision or {}
            phase_rounds.append({"round": i + 1, "searches": round_traffic["searches"], "status": final.status,
                                 **{k: verdict.get(k) for k in ("wins", "losses", "ties", "z")}})
            console.print(f"challenger phase, round {i + 1}: {final.status} - {verdict.get('wins')} wins, "
                          f"{verdict.get('losses')} losses, {verdict.get('ties')} ties, z {verdict.get('z')}; "
                          f"{final.reason}")
            if final.status != "running":
                break
        timings["challenger_phase"] = time.perf_counter() - t
    after, after_version = _measure(store, test)

    report = {
        "dataset": str(cfg.data_dir),
        "seed": cfg.seed,
        "settings": {"max_seq_length": cfg.max_seq_length, "train_max_seq_length": cfg.train_max_seq_length,
                     "train_epochs": cfg.train_epochs, "rounds": cfg.rounds, "phase_rounds": cfg.phase_rounds,
                     "users": cfg.users, "interleave_share": settings.challenger.interleave_share,
                     "challenger_alpha": settings.challenger.alpha},
        "before": {"version": before_version, **before.as_dict()},
        "after": {"version": after_version, **after.as_dict()},
        "candidate": candidate,
        "traffic": traffic,
        "training": started.as_dict(),
        "offline_check": (started.decision or {}).get("offline"),
        "challenger_phase": {"rounds": phase_rounds, "status": final.status, "reason": final.reason,
                             "verdict": final.decision if final is not started else None},
        "outcome": final.status,
        "seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    cfg.report_dir.mkdir(parents=True, exist_ok=True)
    (cfg.report_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
    _plot(report, cfg.report_dir / "report.png")
    _table(console, report)
    console.print(f"report: {cfg.report_dir / 'report.json'} and {cfg.report_dir / 'report.png'}")
    close_shared_clients()
    return report


def _measure(store: DemoStore, test: EvalSet) -> tuple[Scores, str]:
    handle = store.handle
    live = handle.collections.require_live()
    return evaluate_version(handle, live.version, test), live.version


def _table(console: Console, report: dict[str, Any]) -> None:
    offline = report.get("offline_check") or {}
    if offline:
        console.print(f"offline check ({'passed' if offline.get('passed') else 'failed'}): {offline.get('reason')}")
    verdict = report["challenger_phase"].get("verdict") or {}
    if verdict:
        console.print(f"challenger phase: {verdict.get('logged', verdict.get('searches'))} interleaved searches; "
                      f"decided on the first {verdict.get('searches')}: {verdict.get('wins')} wins, "
                      f"{verdict.get('losses')} losses, {verdict.get('ties')} ties, z {verdict.get('z')} "
                      f"(boundary ±{verdict.get('interim_boundary')} before the last look, "
                      f"{verdict.get('boundary')} at it) -> [bold]{report['outcome']}[/]")
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
    console.print(f"timings (s): {report['seconds']}")


def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, middle, right) = plt.subplots(1, 3, figsize=(15, 4.2))
    metrics = ["ndcg@10", "recall@10", "mrr@10"]
    xs = range(len(metrics))
    bars = [("before", report["before"]), ("after", report["after"])]
    if report.get("candidate") and report["candidate"].get("version") != report["after"]["version"]:
        bars.append(("candidate, not promoted", report["candidate"]))
    width = 0.8 / len(bars)
    for i, (label, row) in enumerate(bars):
        left.bar([x + (i - (len(bars) - 1) / 2) * width for x in xs], [row[m] for m in metrics], width,
                 label=f"{label} ({row['version']})")
    left.set_xticks(list(xs), metrics)
    left.set_ylim(0, 1)
    left.set_title("SciFact test, before and after the loop")
    left.legend(loc="lower right", fontsize=8)

    verdict = report["challenger_phase"].get("verdict") or {}
    looks = verdict.get("looks") or []
    if looks:
        xs, bounds = [look["decided"] for look in looks], [look["boundary"] for look in looks]
        middle.plot(xs, [look["z"] for look in looks], "o-", label="z at each look")
        # A bar per look as well as the line, so a phase decided at its first look still shows its bar.
        middle.plot(xs, bounds, ls="--", marker="_", ms=18, color="tab:green", label="promote at z >= the look's boundary")
        middle.plot(xs, [-b for b in bounds], ls="--", marker="_", ms=18, color="tab:red", label="drop")
        middle.axhline(verdict["boundary"], color="tab:green", ls=":", label=f"last look's boundary {verdict['boundary']:.2f}")
        middle.set_xscale("log", base=2)
        middle.set_xlabel("decided searches (wins + losses)")
        middle.set_ylabel("sign-test z")
        middle.legend(fontsize=8)
    else:
        middle.text(0.5, 0.5, f"no look reached yet:\n{report['challenger_phase'].get('reason') or '-'}",
                    ha="center", va="center", wrap=True, fontsize=9)
        middle.set_axis_off()
    middle.set_title(f"Challenger phase: {verdict.get('wins', 0)} W / {verdict.get('losses', 0)} L / "
                     f"{verdict.get('ties', 0)} T -> {report['outcome']}")

    ctr = report["traffic"]["ctr_by_rank"]
    ranks = sorted(int(r) for r in ctr)
    right.bar(ranks, [ctr[r] if r in ctr else ctr[str(r)] for r in ranks], color="tab:gray")
    right.set_xlabel("rank")
    right.set_ylabel("click-through rate")
    right.set_title("Simulated clicks by rank (position bias)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
