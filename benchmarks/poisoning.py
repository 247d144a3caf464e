"""Benchmark: can one user's click flood move a model? The miner's bounds against four forms of attack.

Usage: python benchmarks/poisoning.py [--queries 200] [--attacks 1000] [--train "fresh user per search:bounds off"]

1. index a SciFact subset (the documents relevant to ``--queries`` sampled train queries and to the
   test queries, plus random others up to ``--corpus``) with the base model, through the real store;
2. honest traffic: the simulator (position-based clicks, ``--users`` users) issues each sampled query
   ``--passes`` times through the store and reports clicks through the click API;
3. the attacker picks one sampled train query (never a held-out one: those are not trained on) and
   the non-relevant document the champion shows lowest in its top 10 (the largest inverse-propensity
   weight a click can get), then searches that query ``--attacks`` times and clicks that document
   each time, in each of four forms, each on its own copy of the honest feedback database:
   ``one user`` (searches and clicks as one logged user), ``forged user per click`` (searches as one
   user, each click body naming a new user), ``no user`` (no user, no session) and ``fresh user per
   search`` (a new user on every search: forged identities the app cannot tell apart);
4. the real miner (``mine_feedback``) under ``bounds off`` (only the per-user cap of 200, as before
   the bounds) and ``defaults`` (the product's settings): the attacker row's weight (rows are
   mean-normalised), its ratio to the median honest row, its share of the total weight and its
   expected copies in an epoch (share x min(rows, train_max_rows));
5. with ``--train FORM:CONFIG`` (repeatable), one loop tick on that form's log: train (``--epochs``,
   ``--train-rows`` rows), build, offline check; its report sets give the champion's and the
   candidate's nDCG@10 on the test queries and on "attacked" (the attacked query with the wrong
   document as its only relevant one: how far the candidate moved it up).

Writes a table (stdout) and JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

FORMS = ("none", "one user", "forged user per click", "no user", "fresh user per search")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200, help="sampled SciFact train queries in honest traffic")
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--attacks", type=int, default=1000)
    parser.add_argument("--corpus", type=int, default=2000)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", action="append", default=[], help="FORM:CONFIG to train and check, e.g. "
                        "'fresh user per search:defaults'")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--train-rows", type=int, default=256)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/poisoning.json"))
    args = parser.parse_args()
    cases = [tuple(c.split(":", 1)) for c in args.train]
    for case in cases:
        if len(case) != 2 or case[0] not in FORMS or case[1] not in ("bounds off", "defaults"):
            parser.error(f"--train {':'.join(case)}: FORM:CONFIG with FORM in {FORMS}, CONFIG bounds off|defaults")

    from functools import partial

    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset
    from clicktune.scheduler.miner import MiningConfig, is_heldout, mine_feedback, normalize_query
    from clicktune.scheduler.simulator import ClickSimulator, SimulationConfig

    started = time.perf_counter()
    rng = random.Random(args.seed)
    full = BeirDataset.load(BUNDLED_SCIFACT)
    train_qrels = {q: r for q, r in sorted(full.qrels["train"].items()) if q in full.queries}
    sampled = dict(rng.sample(sorted(train_qrels.items()), min(args.queries, len(train_qrels))))
    needed = {d for rels in (*sampled.values(), *full.qrels["test"].values()) for d in rels if d in full.corpus}
    others = sorted(set(full.corpus) - needed)
    keep = needed | set(rng.sample(others, max(0, min(len(others), args.corpus - len(needed)))))
    data = BeirDataset(corpus={d: full.corpus[d] for d in sorted(keep)}, queries=full.queries,
                       qrels={"train": sampled, "test": full.qrels["test"]})

    home = Path(tempfile.mkdtemp(prefix="clicktune-poisoning-"))
    settings = ClicktuneSettings(home=home, max_seq_length=args.max_seq_length, train_max_seq_length=args.max_seq_length,
                                 train_epochs=args.epochs, train_max_rows=args.train_rows, min_new_clicks=1,
                                 seed=args.seed, watch_registry=False)
    emb = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=emb)
    docs = list(data.corpus.values())
    store.add_texts([d.content for d in docs], ids=[d.doc_id for d in docs], batch_size=256)
    live = store.collections.require_live()
    _say(f"indexed {len(docs)} documents ({time.perf_counter() - started:.0f}s)")
    honest = ClickSimulator(data, store.similarity_search, store.record_click,
                            SimulationConfig(rounds=args.passes, users=args.users, seed=args.seed)).run()
    _say(f"honest traffic: {honest.searches} searches, {honest.clicks} clicks")

    target_qid, target, wrong, wrong_rank = _target(store, data, sampled, settings.gate.heldout_fraction, is_heldout)
    honest_db = Path(make_url_path(store.feedback.url))
    texts = partial(store.handle.index.texts, live.version)
    configs = {
        "bounds off": MiningConfig(window_days=None, heldout_fraction=settings.gate.heldout_fraction,
                                   max_anonymous_clicks_per_query=None, one_vote_per_identity=False,
                                   max_pair_weight_ratio=None),
        "defaults": MiningConfig.from_settings(settings),
    }
    configs["defaults"].window_days = None
    results: list[dict[str, Any]] = []
    logs: dict[str, ClickLog] = {}
    def path(form: str) -> Path:
        return home / f"feedback-{form.replace(' ', '-')}.db"

    for form in FORMS:
        logs[form] = log = _copy_log(honest_db, path(form))
        if form != "none":
            _attack(store, log, form, target, wrong, args.attacks)
        for name, config in configs.items():
            mined = mine_feedback(log, texts, config, alias=store.alias)
            results.append({"form": form, "config": name, **_shares(mined, target, texts([wrong])[wrong],
                                                                     settings.training.max_rows, normalize_query)})
            _say(json.dumps(results[-1]))

    trained: list[dict[str, Any]] = []
    report = {
        "target": {"qid": target_qid, "query": target, "wrong_doc": wrong, "champion_rank": wrong_rank},
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"documents": len(docs)},
        "honest_traffic": {"searches": honest.searches, "clicks": honest.clicks},
        "mining": results, "trained": trained,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # each training on its own copy of its form's log: a tick that opens a challenger phase records it
    # there, and the next tick on that log would judge the phase instead of training
    case_logs = [_copy_log(path(form), home / f"train-{i}.db") for i, (form, _) in enumerate(cases)]
    for i, case in enumerate([None, *cases]):  # the JSON is rewritten after the mining and after each training
        if case is not None:
            form, config = case
            trained.append(_train(settings, store, case_logs[i - 1], configs[config], form, config, data,
                                  target_qid, target, wrong))
        report["seconds"] = round(time.perf_counter() - started)
        args.out.write_text(json.dumps(report, indent=2, default=str))
    _table(results, trained)
    print(f"JSON: {args.out}")


def make_url_path(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).database)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _target(store: Any, data: Any, sampled: dict, heldout_fraction: float, is_heldout: Any) -> tuple[str, str, str, int]:
    """The first sampled train query (by id) whose champion top 10 holds a non-relevant document at
    rank 4 or below; that document, the lowest shown."""
    for qid in sorted(sampled):
        query = data.queries[qid]
        if is_heldout(query, heldout_fraction):
            continue
        shown = store.similarity_search(query, k=10, log_impression=False)
        wrong = [(rank, d.id) for rank, d in enumerate(shown, start=1) if d.id not in sampled[qid] and rank >= 4]
        if wrong:
            rank, doc = wrong[-1]
            return qid, query, doc, rank
    raise SystemExit("no sampled train query has a non-relevant document in its top 10")


def _copy_log(source: Path, target: Path) -> Any:
    """A copy of the honest feedback database (SQLite's online backup: WAL contents included)."""
    from clicktune.adapters.clicklog import ClickLog

    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return ClickLog(f"sqlite:///{target}")


def _attack(store: Any, log: Any, form: str, query: str, wrong: str, attacks: int) -> None:
    """``attacks`` searches of ``query``, each followed by a click on ``wrong`` through the click log.

    One search goes through the store; the others are logged as its copies (same ranking, same
    collection, each its own search id, user and time), since the champion answers a repeated
    query the same way and embedding it a thousand times on a shared 2-core CPU costs minutes.
    """
    import uuid

    from clicktune.adapters.clicklog import Impression, ShownResult

    shown = store.similarity_search(query, k=10, log_impression=False)
    live = store.collections.require_live()
    clicks = []
    for i in range(attacks):
        user = {"one user": "mallory", "forged user per click": "mallory", "fresh user per search": f"sock-{i}"}.get(form)
        search_id = str(uuid.uuid4())
        log.log_impression(Impression(
            search_id=search_id, query=query, model_version=live.version, collection=live.collection,
            alias=store.alias, user_id=user, results=[ShownResult(doc_id=d.id, rank=r) for r, d in enumerate(shown, 1)]))
        clicks.append({"search_id": search_id, "doc_id": wrong,
                       "user_id": f"sock-{i}" if form == "forged user per click" else user})
    for start in range(0, len(clicks), 100):
        log.record_clicks(clicks[start:start + 100])


def _shares(mined: Any, query: str, wrong_text: str, max_rows: int | None, normalize: Any) -> dict[str, Any]:
    rows = mined.train.to_list()
    is_attack = [normalize(r["anchor"]) == normalize(query) and r["positive"] == wrong_text for r in rows]
    attacker = sum(r["weight"] for r, a in zip(rows, is_attack, strict=True) if a)
    honest = [r["weight"] for r, a in zip(rows, is_attack, strict=True) if not a]
    total = attacker + sum(honest)
    share = attacker / total if total else 0.0
    epoch = min(len(rows), max_rows or len(rows))
    stats = mined.stats
    return {
        "rows": len(rows), "attacker_weight": round(attacker, 3),
        "honest_median": round(statistics.median(honest), 3), "honest_max": round(max(honest), 3),
        "attacker_over_median": round(attacker / statistics.median(honest), 2),
        "attacker_share": round(share, 4), "attacker_copies_per_epoch": round(share * epoch, 1),
        "clicks_capped_per_user": stats["clicks_capped_per_user"],
        "clicks_capped_anonymous_per_query": stats.get("clicks_capped_anonymous_per_query", 0),
        "train_pairs_weight_capped": stats.get("train_pairs_weight_capped", 0),
        "heldout_queries": stats["heldout_queries"],
    }


def _train(settings: Any, store: Any, log: Any, mining: Any, form: str, config: str, data: Any,
           target_qid: str, target: str, wrong: str) -> dict[str, Any]:
    """One loop tick on ``form``'s log: train, build, offline check (and, if it passes, a phase opens)."""
    from clicktune.scheduler.evaluation import EvalSet
    from clicktune.scheduler.gate import OfflineCheck
    from clicktune.scheduler.loop import RetrainLoop

    report_sets = {
        "test": EvalSet(data.split_queries("test"), {q: set(r) for q, r in data.qrels["test"].items()}, name="test"),
        "attacked": EvalSet({target_qid: target}, {target_qid: {wrong}}, name="attacked"),
    }
    t = time.perf_counter()
    loop = RetrainLoop(settings, handle=store.handle, feedback=log, mining=mining,
                       gate=OfflineCheck.from_settings(settings, report_sets=report_sets))
    outcome = loop.tick(force=True)
    offline = (outcome.decision or {}).get("offline", {})

    def score(side: str, name: str) -> float | None:
        return (offline.get(side, {}).get(name) or {}).get("ndcg@10")

    row = {"form": form, "config": config, "status": outcome.status, "reason": outcome.reason,
           "passed_offline_check": offline.get("passed"), "seconds": round(time.perf_counter() - t)}
    for name in ("heldout", "test", "attacked"):
        row[f"{name}_ndcg_champion"], row[f"{name}_ndcg_candidate"] = score("champion", name), score("candidate", name)
    _say(json.dumps(row))
    return row


def _table(results: list[dict[str, Any]], trained: list[dict[str, Any]]) -> None:
    head = ("form", "config", "rows", "attacker_weight", "honest_median", "attacker_over_median", "attacker_share",
            "attacker_copies_per_epoch", "train_pairs_weight_capped")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in results:
        print("| " + " | ".join(str(r[h]) for h in head) + " |")
    if trained:
        head = ("form", "config", "status", "heldout_ndcg_champion", "heldout_ndcg_candidate", "test_ndcg_champion",
                "test_ndcg_candidate", "attacked_ndcg_champion", "attacked_ndcg_candidate")
        print("\n| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for r in trained:
            print("| " + " | ".join(f"{r[h]:.4f}" if isinstance(r[h], float) else str(r[h]) for h in head) + " |")


if __name__ == "__main__":
    main()
