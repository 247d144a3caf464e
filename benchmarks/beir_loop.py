"""Benchmark: does the loop climb? Rounds of traffic, training, offline check and challenger phase on a BEIR folder.

Usage: python benchmarks/beir_loop.py [--data FOLDER] [--click-model pbm|dcm] [--rounds 5] [--epochs 3]
                                      [--max-seq-length 256] [--passes 2] [--phase-rounds 64]
                                      [--train-max-seq-length N] [--oracle]

``--data``: any BEIR folder with train and test qrels (default: the bundled SciFact; BEIR NFCorpus
is ``../shared/data/nfcorpus`` in this project's checkouts). ``--click-model``: the simulated users'
family (``scheduler/simulator.py``): ``pbm``, position-based (the miner's own assumption), or ``dcm``,
the dependent click model, a cascade whose examination depends on the clicks above. Test nDCG@10 is
reported with binary gains (grade > 0, as the offline tools score) and, where the test qrels are
graded, with the grades as gains (``ndcg_graded``). ``--oracle``: a clean-label reference at the
loop's training budget: the base model trained by the product's trainer on shuffled train-qrels
pairs, the same rows an epoch (``train_max_rows``) and epochs as a tick, scored the same way.

``--max-seq-length`` is the length the loop's targets are measured at (256), for serving and, by default, for training
too (``--train-max-seq-length`` to differ; the product trains at 128 to fit the demo's CPU budget, and
a training step at 256 takes about 4x one at 128 on a 2-core CPU). ``--passes``: passes of traffic
over the train queries before each tick, 2 as in the demo (with one pass, about 560 clicks, round-1
candidates measured x1.03-1.045 on a 2-core CPU; docs/RESULTS.md).

Each round: simulated users issue every train query ``--passes`` times (position-based clicks,
interleaved with the challenger's results while one runs); one loop tick trains a candidate from all clicks so far
and, if it passes the offline check, opens its challenger phase; simulated users then search until
the sequential test decides (at most ``--phase-rounds`` passes over the train queries, 64: with
only 13-18% of searches decided, a phase that runs to the last look, 3,200 decided, needs about 26). Per round it
records the champion's and the candidate's test nDCG@10 (test queries, never trained on), the
interleaving counts and z, the decision, and whether the decision agreed with the test set. The
targets (a benchmark, not a test; ``TARGETS``, by the folder's name): on SciFact x1.05 over the base
model after round 1 and x1.065 after 5 rounds, on NFCorpus x1.03 and x1.05; on any data, no promotion
of a candidate that is worse on test.

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

#: Round-1 and last-round targets (x base test nDCG@10) by the BEIR folder's name.
TARGETS = {"scifact": (1.05, 1.065), "nfcorpus": (1.03, 1.05)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=None, help="BEIR folder (default: the bundled SciFact)")
    parser.add_argument("--click-model", choices=("pbm", "dcm"), default="pbm")
    parser.add_argument("--oracle", action="store_true", help="also train and score the clean-label reference")
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
    parser.add_argument("--out", type=Path, default=None,
                        help="default: benchmarks/results/<data>_<click model>_loop.json")
    parser.add_argument("--resume", type=Path, default=None, help="home of a run cut short; --out is its JSON")
    args = parser.parse_args()
    if not 0 < args.phase_rounds < 100:
        parser.error("--phase-rounds must be between 1 and 99 (a phase pass's seed is 100 * round + pass)")
    args.data = (args.data or _bundled_scifact()).resolve()
    args.out = args.out or Path(f"benchmarks/results/{args.data.name}_{args.click_model}_loop.json")
    previous = _previous_run(args) if args.resume else None

    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.qdrant import close_shared_clients
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.beir import BeirDataset
    from clicktune.scheduler.evaluation import EvalSet, evaluate_version
    from clicktune.scheduler.loop import RetrainLoop
    from clicktune.scheduler.simulator import ClickSimulator, SimulationConfig, click_model_named

    data = BeirDataset.load(args.data)
    qrels = data.qrels["test"]
    test = EvalSet(data.split_queries("test"), {q: {d for d, g in r.items() if g > 0} for q, r in qrels.items()},
                   name="test")
    graded = EvalSet(data.split_queries("test"), {q: {d: float(g) for d, g in r.items() if g > 0}
                                                  for q, r in qrels.items()}, name="test-graded")
    home = args.resume or Path(tempfile.mkdtemp(prefix=f"clicktune-{args.data.name}-"))
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

    def scored_graded(version: str) -> float:
        return evaluate_version(handle, version, graded).ndcg_at_10

    def traffic(seed: int, passes: int = 1) -> None:
        ClickSimulator(data, store.similarity_search, store.record_click,
                       SimulationConfig(rounds=passes, users=args.users, seed=seed,
                                        click_model=click_model_named(args.click_model)),
                       show_progress=True).run()

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
        row["live_ndcg_graded_after"] = scored_graded(live.version)
        row["x_base"] = row["live_ndcg_after"] / base
        row["x_base_graded"] = row["live_ndcg_graded_after"] / base_graded
        row["seconds"] = round(row.get("seconds", 0.0) + time.perf_counter() - started, 1)
        row["searches_logged_total"] = store.feedback.stats()["impressions"]
        print(json.dumps(row), flush=True)
        _write_report(args, base, base_graded, rounds)  # after every round, so a run cut short keeps what it measured

    loop = RetrainLoop(settings, handle=handle, feedback=store.feedback)
    rounds: list[dict] = []
    if previous is not None:
        base, base_graded, rounds = previous["base_ndcg"], previous["base_ndcg_graded"], previous["rounds"]
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
        base, base_graded = scored(live.version), scored_graded(live.version)
        print(f"base {live.version}: test nDCG@10 {base:.4f}, graded {base_graded:.4f} "
              f"({time.perf_counter() - t:.0f}s to index)", flush=True)
        if args.oracle:
            args.oracle_result = _oracle(args, settings, data, test, graded)
            print(f"oracle: {json.dumps(args.oracle_result)}", flush=True)
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
            row["candidate_ndcg_graded"] = scored_graded(challenger.challenger_version)
            run_phase(number, row)
        else:
            row["decision"] = opened.status
            row["reason"] = opened.reason
        rounds.append(row)
        finish_round(row, started)
    emb.close()
    close_shared_clients()

    report = _write_report(args, base, base_graded, rounds)
    print(f"\n{'round':>5} {'champion':>9} {'candidate':>9} {'W':>5} {'L':>5} {'T':>5} {'z':>6} {'decision':>9} "
          f"{'agrees':>6} {'x base':>7} {'graded':>7}")
    for r in rounds:
        print(f"{r['round']:>5} {r['champion_ndcg']:>9.4f} {r.get('candidate_ndcg', float('nan')):>9.4f} "
              f"{r.get('wins') or 0:>5} {r.get('losses') or 0:>5} {r.get('ties') or 0:>5} {r.get('z') or 0:>6.2f} "
              f"{r['decision']:>9} {str(r.get('agrees_with_test')):>6} {r['x_base']:>7.4f} {r['x_base_graded']:>7.4f}")
    print(f"targets: {report['targets']}\nJSON: {args.out}")


def _previous_run(args: argparse.Namespace) -> dict:
    """The JSON of the run to continue, refused where it does not match these settings."""
    if not args.out.is_file():
        raise SystemExit(f"--resume needs the cut run's JSON as --out; {args.out} does not exist")
    previous = json.loads(args.out.read_text())
    if not previous.get("rounds") or "searches_logged_total" not in previous["rounds"][-1]:
        raise SystemExit(f"{args.out} has no complete round to continue from (or predates --resume)")
    fixed = ("data", "click_model", "passes", "users", "epochs", "max_seq_length", "train_max_seq_length", "precision",
             "seed", "train_max_rows")
    differ = [k for k in fixed if previous["settings"].get(k) != (str(v) if isinstance(v := getattr(args, k), Path) else v)]
    if differ:
        raise SystemExit(f"--resume with other settings than the cut run's: {', '.join(differ)}")
    return previous


def _write_report(args: argparse.Namespace, base: float, base_graded: float, rounds: list[dict]) -> dict:
    first, last = TARGETS.get(args.data.name, (None, None))
    report = {"settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "base_ndcg": base, "base_ndcg_graded": base_graded, "rounds": rounds, "completed_rounds": len(rounds),
              "targets": {f"round1>={first}": first is not None and bool(rounds) and rounds[0]["x_base"] >= first,
                          f"last>={last}": last is not None and len(rounds) == args.rounds
                          and rounds[-1]["x_base"] >= last,
                          "no_worse_promoted": all(r.get("agrees_with_test") is not False or r["decision"] != "promoted"
                                                   for r in rounds)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    return report


def _bundled_scifact() -> Path:
    from clicktune.scheduler.beir import BUNDLED_SCIFACT

    return BUNDLED_SCIFACT


def _oracle(args: argparse.Namespace, settings, data, test, graded) -> dict:
    """The clean-label reference at one tick's budget: the product's trainer on shuffled train-qrels pairs
    (no clicks, no weights), in a registry of its own, scored by exact search over the test corpus."""
    import random

    import numpy as np
    from datasets import Dataset

    from clicktune.adapters.registry import ModelRegistry
    from clicktune.scheduler.evaluation import ir_metrics
    from clicktune.scheduler.training import ClickTrainer

    oracle_settings = settings.model_copy(update={"home": Path(tempfile.mkdtemp(prefix="clicktune-oracle-"))})
    pairs = [(data.queries[q], data.corpus[d].content) for q, docs in data.qrels["train"].items() if q in data.queries
             for d, grade in docs.items() if grade > 0 and d in data.corpus]
    random.Random(args.seed).shuffle(pairs)
    registry = ModelRegistry.from_settings(oracle_settings)
    registry.bootstrap()  # v0001 = the base model, the trainer's parent
    trainer = ClickTrainer(registry, oracle_settings)
    trainer.config.max_rows = trainer.config.max_rows or len(pairs)
    pairs = pairs[: trainer.config.max_rows]  # the tick's rows an epoch, drawn evenly from all the qrels
    result = trainer.train(Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]}))
    ids = list(data.corpus)
    texts = [data.corpus[d].content for d in ids]
    scores = {}
    for name, model in (("base", trainer.starting_model()[0]), ("oracle", registry.load_model(result.version))):
        model.max_seq_length = settings.max_seq_length or model.max_seq_length
        docs = model.encode(texts, batch_size=settings.batch_size, normalize_embeddings=True, show_progress_bar=True)
        qids = list(test.queries)
        queries = model.encode([test.queries[q] for q in qids], normalize_embeddings=True)
        top = np.argsort(-(queries @ docs.T), axis=1)[:, :10]
        rankings = {q: [ids[i] for i in row] for q, row in zip(qids, top, strict=True)}
        scores[name] = {"ndcg": ir_metrics(rankings, test.relevant_docs).ndcg_at_10,
                        "ndcg_graded": ir_metrics(rankings, graded.relevant_docs).ndcg_at_10}
    return {"rows_trained": result.rows_trained, "seconds": result.seconds, "epochs": trainer.config.epochs,
            "base": scores["base"], "oracle": scores["oracle"],
            "x_base": scores["oracle"]["ndcg"] / scores["base"]["ndcg"],
            "x_base_graded": scores["oracle"]["ndcg_graded"] / scores["base"]["ndcg_graded"]}


if __name__ == "__main__":
    main()
