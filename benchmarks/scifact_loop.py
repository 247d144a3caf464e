"""Benchmark: does the loop climb? Rounds of traffic, training, offline check and challenger phase on SciFact.

Usage: python benchmarks/scifact_loop.py [--rounds 5] [--epochs 3] [--max-seq-length 256] [--passes 2]
                                         [--phase-rounds 16] [--train-max-seq-length N]

``--max-seq-length`` is the length the loop's targets are measured at (256), for serving and, by default, for training
too (``--train-max-seq-length`` to differ; the product trains at 128 to fit the demo's CPU budget, and
a training step at 256 takes about 4x one at 128 on a 2-core CPU). ``--passes``: passes of traffic
over the train queries before each tick, 2 as in the demo (with one pass, about 560 clicks, round-1
candidates measured x1.03-1.045 on a 2-core CPU; docs/RESULTS.md).

Each round: simulated users issue every SciFact train query ``--passes`` times (position-based clicks,
interleaved with the challenger's results while one runs); one loop tick trains a candidate from all clicks so far
and, if it passes the offline check, opens its challenger phase; simulated users then search until
the sequential test decides (at most ``--phase-rounds`` passes over the train queries, 64: with
only 13-18% of searches decided, a phase that runs to the last look, 3,200 decided, needs about 26). Per round it
records the champion's and the candidate's test nDCG@10 (the 300 test queries, never trained on), the
interleaving counts and z, the decision, and whether the decision agreed with the test set. The
targets (a benchmark, not a test): x1.05 over the base model after round 1, x1.06 after 5 rounds, and
no promotion of a candidate that is worse on test.

``--resume HOME`` continues a run cut short (its home is printed at the start; ``--out`` must be its
JSON) after its last complete round: the loop's state (feedback database, Qdrant, registry) is on
disk by design, and each round's traffic is seeded by its number. A phase the last round left
undecided (more than ``--phase-rounds`` passes; raise it to resume) is finished first, from its next
pass. It refuses settings that differ from the JSON's, and a challenger that its last round does not
own; searches logged after the last complete round (a cut inside the next round's traffic) stay in
the log and are counted in the report (``extra_searches_at_resume``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--passes", type=int, default=2, help="passes of traffic over the train queries before each tick")
    parser.add_argument("--phase-rounds", type=int, default=64,
                        help="at most this many passes of traffic in a phase (< 100; the last look decides before)")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--train-max-seq-length", type=int, default=None, help="default: --max-seq-length")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-max-rows", type=int, default=None, help="default: the product's train_max_rows")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scifact_loop.json"))
    parser.add_argument("--resume", type=Path, default=None, help="home of a run cut short; --out is its JSON")
    args = parser.parse_args()
    if not 0 < args.phase_rounds < 100:
        parser.error("--phase-rounds must be between 1 and 99 (a phase pass's seed is 100 * round + pass)")
    previous = _previous_run(args) if args.resume else None

    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.qdrant import close_shared_clients
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
    from clicktune.scheduler.evaluation import EvalSet, evaluate_version
    from clicktune.scheduler.loop import RetrainLoop
    from clicktune.scheduler.simulator import ClickSimulator, SimulationConfig

    data = BeirDataset.load(BUNDLED_SCIFACT)
    test = EvalSet(data.split_queries("test"), {q: set(r) for q, r in data.qrels["test"].items()}, name="test")
    home = args.resume or Path(tempfile.mkdtemp(prefix="clicktune-scifact-"))
    print(f"home {home} (--resume {home} --out {args.out} continues a run cut short)", flush=True)
    settings = ClicktuneSettings(
        home=home, max_seq_length=args.max_seq_length,
        train_epochs=args.epochs, precision=args.precision,
        progress=True, min_new_clicks=1, seed=args.seed, interleave_share=1.0, challenger_settle_seconds=0.0,
        challenger_refresh_seconds=0.0, watch_registry=False,
        train_max_seq_length=args.train_max_seq_length or args.max_seq_length,
        **({"train_max_rows": args.train_max_rows} if args.train_max_rows else {}),
    )
    emb = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=emb)
    handle = store.handle

    def scored(version: str) -> float:
        return evaluate_version(handle, version, test).ndcg_at_10

    def traffic(seed: int, passes: int = 1) -> None:
        ClickSimulator(data, store.similarity_search, store.record_click,
                       SimulationConfig(rounds=passes, users=args.users, seed=seed), show_progress=True).run()

    def run_phase(number: int, row: dict, first_pass: int = 0) -> None:
        """Passes of traffic, one tick after each, until the challenger's phase is decided."""
        outcome = None
        for phase_pass in range(first_pass, args.phase_rounds):
            traffic(args.seed * 1000 + 100 * number + phase_pass)
            outcome = loop.tick()
            row["phase_passes"] = phase_pass + 1
            if outcome.status != "running":
                break
        verdict = (outcome.decision if outcome else None) or {}
        row.update({k: verdict.get(k) for k in ("searches", "logged", "wins", "losses", "ties", "z", "boundary")})
        row["decision"] = outcome.status if outcome else "running"
        better = row["candidate_ndcg"] > row["champion_ndcg"]
        row["agrees_with_test"] = (row["decision"] == "promoted") == better if row["decision"] != "running" else None

    def finish_round(row: dict, started: float) -> None:
        live = store.collections.require_live()
        row["live_after"] = live.version
        row["live_ndcg_after"] = scored(live.version)
        row["x_base"] = row["live_ndcg_after"] / base
        row["seconds"] = round(row.get("seconds", 0.0) + time.perf_counter() - started, 1)
        row["searches_logged_total"] = store.feedback.stats()["impressions"]
        print(json.dumps(row), flush=True)
        _write_report(args, base, rounds)  # after every round, so a run cut short keeps what it measured

    loop = RetrainLoop(settings, handle=handle, feedback=store.feedback)
    rounds: list[dict] = []
    if previous is not None:
        base, rounds = previous["base_ndcg"], previous["rounds"]
        logged = store.feedback.stats()["impressions"]
        args.extra_searches_at_resume = logged - rounds[-1]["searches_logged_total"]
        print(f"resuming after round {len(rounds)}: {args.extra_searches_at_resume} searches logged after it",
              flush=True)
        challenger = store.active_challenger()
        if challenger is not None:  # the last round's phase was left undecided: finish it first
            last = rounds[-1]
            if last.get("decision") != "running" or last.get("candidate") != challenger.challenger_version:
                raise SystemExit(f"{home} has a challenger running that {args.out}'s last round does not own")
            started = time.perf_counter()
            run_phase(last["round"], last, last.get("phase_passes", previous["settings"]["phase_rounds"]))
            finish_round(last, started)
    else:
        t = time.perf_counter()
        docs = list(data.corpus.values())
        store.add_texts([d.content for d in docs], ids=[d.doc_id for d in docs], batch_size=512)
        live = store.collections.require_live()
        base = scored(live.version)
        print(f"base {live.version}: test nDCG@10 {base:.4f} ({time.perf_counter() - t:.0f}s to index)", flush=True)
    for number in range(len(rounds) + 1, args.rounds + 1):
        if rounds and rounds[-1]["decision"] == "running":
            print(f"round {number - 1}'s phase is still undecided after --phase-rounds {args.phase_rounds} passes: "
                  "stopping (raise it and --resume)", flush=True)
            break
        started = time.perf_counter()
        traffic(args.seed * 1000 + number, args.passes)
        live = store.collections.require_live()
        row: dict = {"round": number, "champion": live.version, "champion_ndcg": scored(live.version)}
        opened = loop.tick(force=True)
        row["tick"] = opened.status
        challenger = store.active_challenger()
        if opened.status == "challenger" and challenger is not None:
            row["candidate"] = challenger.challenger_version
            training = handle.registry.get(challenger.challenger_version).training
            row["train"] = {k: training.get(k) for k in ("pairs", "rows_trained", "seconds")}
            row["candidate_ndcg"] = scored(challenger.challenger_version)
            run_phase(number, row)
        else:
            row["decision"] = opened.status
            row["reason"] = opened.reason
        rounds.append(row)
        finish_round(row, started)
    emb.close()
    close_shared_clients()

    report = _write_report(args, base, rounds)
    print(f"\n{'round':>5} {'champion':>9} {'candidate':>9} {'W':>5} {'L':>5} {'T':>5} {'z':>6} {'decision':>9} "
          f"{'agrees':>6} {'x base':>7}")
    for r in rounds:
        print(f"{r['round']:>5} {r['champion_ndcg']:>9.4f} {r.get('candidate_ndcg', float('nan')):>9.4f} "
              f"{r.get('wins') or 0:>5} {r.get('losses') or 0:>5} {r.get('ties') or 0:>5} {r.get('z') or 0:>6.2f} "
              f"{r['decision']:>9} {str(r.get('agrees_with_test')):>6} {r['x_base']:>7.4f}")
    print(f"targets: {report['targets']}\nJSON: {args.out}")


def _previous_run(args: argparse.Namespace) -> dict:
    """The JSON of the run to continue, refused where it does not match these settings."""
    if not args.out.is_file():
        raise SystemExit(f"--resume needs the cut run's JSON as --out; {args.out} does not exist")
    previous = json.loads(args.out.read_text())
    if not previous.get("rounds") or "searches_logged_total" not in previous["rounds"][-1]:
        raise SystemExit(f"{args.out} has no complete round to continue from (or predates --resume)")
    fixed = ("passes", "users", "epochs", "max_seq_length", "train_max_seq_length", "precision",
             "seed", "train_max_rows")
    differ = [k for k in fixed if previous["settings"].get(k) != getattr(args, k)]
    if differ:
        raise SystemExit(f"--resume with other settings than the cut run's: {', '.join(differ)}")
    return previous


def _write_report(args: argparse.Namespace, base: float, rounds: list[dict]) -> dict:
    report = {"settings": vars(args) | {"out": str(args.out)}, "base_ndcg": base, "rounds": rounds,
              "completed_rounds": len(rounds),
              "targets": {"round1>=1.05": bool(rounds) and rounds[0]["x_base"] >= 1.05,
                          "last>=1.06": len(rounds) == args.rounds and rounds[-1]["x_base"] >= 1.06,
                          "no_worse_promoted": all(r.get("agrees_with_test") is not False or r["decision"] != "promoted"
                                                   for r in rounds)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
