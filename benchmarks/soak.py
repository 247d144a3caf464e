"""Crash soak: writers, a reader and the loop in one process, SIGKILLed at a random moment each cycle.

Usage: python benchmarks/soak.py [--cycles 100] [--seed 0] [--home DIR] [--out benchmarks/results/soak.json]

In the spirit of Qdrant's crasher. Each cycle starts a worker process on one persistent embedded
home (embedded Qdrant admits one process, so the app's threads and the worker share it, as they do
in an embedded deployment). In it, writer threads add and delete documents, a reader searches and
clicks, and the main thread runs one operator step: a loop tick (train, offline check, open or
judge a challenger phase), a reindex to another registered version, a rollback, or a drop of the
running challenger by hand (`clicktune challenger drop`). Every write, delete and click is
journalled only after the call returned (acknowledged); a write that raised is journalled as failed,
and one write in ten carries metadata Qdrant cannot store (NaN, infinity, a lone surrogate, bytes),
which must be refused before anything is written. The process is
SIGKILLed at a uniformly random moment of its step (the step's length is learnt from cycles that
finished it). Then this process checks, before and after running the recovery that the next run
would (`reconcile` of the reindexer and of the challenger phase):
- the alias points at a collection that holds every acknowledged document;
- every acknowledged add is in the live collection, in the one kept for rollback and in a running
  challenger's, and no acknowledged delete is back in any of them;
- no refused write and no write that raised is in any of them, and a delete that raised left its
  document in all of them (a write is acknowledged exactly when it is applied);
- after recovery, CURRENT and the alias agree;
- every acknowledged click is stored exactly once.
Prints a table and writes JSON: cycles run, kills, violations (target: 100 cycles, 0 violations).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

STEPS = ("tick", "tick", "reindex", "rollback", "drop")
#: Metadata no collection may store: each must raise InvalidDocumentsError with nothing written.
UNSTORABLE = (float("nan"), float("inf"), "caf\udce9", b"raw bytes")
JOURNAL_KINDS = ("try", "add", "trydel", "del", "refused", "failed", "faildel")
DOCS = 120


def soak_settings(home: Path, **extra: object):  # noqa: ANN201 - ClicktuneSettings, imported lazily
    from clicktune.adapters import ClicktuneSettings

    # Small and fast: the soak proves crash safety, not model quality, so the offline check lets any
    # candidate through to a short challenger phase.
    return ClicktuneSettings(
        home=home, progress=False, max_seq_length=32, train_max_seq_length=32, train_epochs=1,
        train_batch_size=8, train_min_pairs=4, min_new_clicks=1, gate_min_queries=1, gate_tolerance=1.0,
        interleave_share=1.0, challenger_settle_seconds=0.0, challenger_refresh_seconds=0.0,
        challenger_first_look=10, challenger_last_look=40, lock_lease_seconds=10, keep_versions=3,
        watch_registry=False, batch_size=32, **extra,
    )


def _annotations(doc) -> dict:  # noqa: ANN001 - a langchain Document
    from clicktune.adapters.qdrant import ANNOTATIONS_KEY

    return doc.metadata[ANNOTATIONS_KEY]


# The worker (one cycle) ------------------------------------------------------------------------
def worker(home: Path, journal_path: Path, step: str, cycle: int, seed: int) -> None:
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.errors import InvalidDocumentsError
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.challenger import ChallengerPhase
    from clicktune.scheduler.loop import RetrainLoop
    from clicktune.scheduler.reindex import BlueGreenReindexer, rollback

    settings = soak_settings(home)
    rng = random.Random(seed)
    journal = open(journal_path, "a", buffering=1)  # line-buffered: each ack reaches the OS at once
    journal_lock = threading.Lock()

    def note(*fields: str) -> None:
        with journal_lock:
            journal.write(" ".join(fields) + "\n")

    embeddings = ClicktuneEmbeddings(settings, watch=False)
    store = ClicktuneVectorStore(settings, embeddings=embeddings, feedback=ClickLog.from_settings(settings))
    stop = threading.Event()

    def attempt(write: Callable[[], object], ok: str, failed: str, *ids: str) -> bool:
        """Journal ``ids`` as acknowledged, or as failed if ``write`` raised (then nothing of it may remain)."""
        try:
            write()
        except Exception as exc:  # noqa: BLE001 - a failed write is checked, not fatal
            note(failed, *ids)
            print(f"soak: {failed} {ids}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            return False
        note(ok, *ids)
        return True

    def writer(n: int) -> None:
        acked: list[str] = []
        i = 0
        while not stop.is_set():
            ids = [f"c{cycle}-w{n}-{i}-{j}" for j in range(2)]
            texts = [f"soak note {cycle} {n} {i} {j} about cell biology" for j in range(2)]
            if rng.random() < 0.1:  # the second document's metadata cannot be stored: nothing may be written
                note("refused", *ids)  # journalled first: these ids must never appear, killed or not
                with contextlib.suppress(InvalidDocumentsError):  # accepted, they would be found: a violation
                    store.add_texts(texts, [{"n": i}, {"score": rng.choice(UNSTORABLE)}], ids=ids)
                i += 1
                continue
            note("try", *ids)
            if attempt(lambda: store.add_texts(texts, ids=ids), "add", "failed", *ids):  # noqa: B023 - called at once
                acked += ids
            if len(acked) > 3 and rng.random() < 0.5:
                victim = acked.pop(rng.randrange(len(acked)))
                note("trydel", victim)
                attempt(lambda: store.delete([victim]), "del", "faildel", victim)  # noqa: B023 - called at once
            i += 1
            time.sleep(0.05)

    def reader() -> None:
        queries = ["cell biology", "protein folding", "vitamin d", "soak note", "immune response"]
        while not stop.is_set():
            docs = store.similarity_search(rng.choice(queries), k=5, user_id=f"u{rng.randrange(20)}")
            if docs and rng.random() < 0.8:
                annotations = _annotations(docs[0])
                chosen = rng.choice(docs[:3])
                store.record_click(annotations["search_id"], chosen.id, user="soak")
                note("click", annotations["search_id"], str(chosen.id))
            time.sleep(0.02)

    store.similarity_search("warm up", k=1)  # load the model before the clock starts
    import clicktune.scheduler.training  # noqa: F401 - and the trainer's imports (seconds of torch)

    threads = [threading.Thread(target=writer, args=(n,), daemon=True) for n in range(2)]
    threads.append(threading.Thread(target=reader, daemon=True))
    for thread in threads:
        thread.start()
    time.sleep(1.0)
    loop = RetrainLoop(settings, handle=store.handle, feedback=store.feedback)  # the app's client and coordinator
    phase = ChallengerPhase(store.handle, store.feedback, settings)
    pointer = store.registry.pointer()
    kept_for_rollback = store.handle.rollback_version(pointer.version) if pointer else None
    kept = {pointer.version, kept_for_rollback} if pointer else set()  # live, and kept for rollback
    others = [v for v in store.registry.versions() if v not in kept]
    # An operator's step where one can be taken, else a tick: every cycle does real work. Under a
    # running phase the operator first ends it by hand (`clicktune challenger drop`), as the CLI
    # requires, inside the same lease: a kill may land between the two. A drop step is that alone.
    if step != "tick" and ((step == "rollback" and not kept_for_rollback) or (step == "reindex" and not others)
                           or (step == "drop" and phase.active() is None)):
        step = "tick"
    print(f"step-start {step}", flush=True)
    started = time.monotonic()
    try:
        if step == "tick":
            outcome = loop.tick(force=True)
            result = f"tick {outcome.status}" + (f": {outcome.reason[:160]}" if outcome.status == "failed" else "")
        else:
            with loop.lease() as lease:
                running = phase.active()
                if lease and running is not None:
                    ChallengerPhase(store.handle, store.feedback, settings, guard=lease.ensure_held).drop(
                        running, {"decision": "drop", "reason": f"ended by hand before a {step} (soak)"})
                if not lease:
                    result = f"{step} locked"
                elif step == "drop":
                    result = "drop done" if running is not None else "drop nothing-to-do"
                elif step == "reindex":
                    version = rng.choice(others)
                    BlueGreenReindexer(store.handle, guard=lease.ensure_held).run(version)
                    result = f"reindex to {version} done"
                else:
                    result = f"rollback to {rollback(store.handle, guard=lease.ensure_held)} done"
    except Exception as exc:  # noqa: BLE001 - a refused step is reported, not a soak failure
        result = f"{step} refused: {type(exc).__name__}: {str(exc)[:120]}"
    print(f"step-done {time.monotonic() - started:.2f} {result}", flush=True)
    time.sleep(60)  # keep writing until killed


# The checks ------------------------------------------------------------------------------------
def read_journal(path: Path) -> dict[str, set]:
    seen: dict[str, set] = {kind: set() for kind in (*JOURNAL_KINDS, "click")}
    if not path.exists():
        return seen
    lines = path.read_text().split("\n")
    for line in lines[:-1]:  # the last piece may be cut by the kill
        kind, *fields = line.split(" ")
        if kind == "click":
            seen["click"].add((fields[0], fields[1]))
        else:
            seen[kind].update(fields)
    return seen



def check(home: Path, journal: dict[str, set], stage: str) -> list[str]:
    """Every invariant of the soak on the home as the kill (or the recovery) left it."""
    from sqlalchemy import func, select

    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.clicklog import schema as tables
    from clicktune.adapters.qdrant import IndexHandle

    settings = soak_settings(home)
    handle = IndexHandle.from_settings(settings)
    feedback = ClickLog.from_settings(settings)
    problems: list[str] = []
    live = handle.collections.live()
    if live is None:
        return [f"{stage}: the alias points at no collection"]
    must_have = journal["add"] - journal["trydel"]
    must_not = journal["del"]
    collections = handle.collections
    targets = {"live": live.version}
    previous = handle.rollback_version(live.version)
    if previous and collections.exists(collections.name_for(previous)):
        targets["rollback"] = previous
    running = feedback.challengers.active(collections.alias)
    if running is not None and collections.exists(running.challenger_collection):
        targets["challenger"] = running.challenger_version
    for role, version in targets.items():
        collection = collections.name_for(version)
        present = handle.index.doc_ids(version)
        if missing := must_have - present:
            problems.append(f"{stage}: {role} {collection} misses {len(missing)} acknowledged adds, e.g. {sorted(missing)[:3]}")
        if back := must_not & present:
            problems.append(f"{stage}: {role} {collection} holds {len(back)} acknowledged deletes, e.g. {sorted(back)[:3]}")
        for wrong, what in ((journal["refused"] & present, "holds refused documents"),
                            (journal["failed"] & present, "holds documents whose add raised"),
                            (journal["faildel"] - present, "lost documents whose delete raised")):
            if wrong:
                problems.append(f"{stage}: {role} {collection} {what}: {len(wrong)}, e.g. {sorted(wrong)[:3]}")
    if stage == "after recovery":
        pointer = handle.registry.pointer()
        if pointer is None or pointer.version != live.version:
            problems.append(f"{stage}: CURRENT {pointer.version if pointer else None} but the alias serves {live.version}")
    with feedback.engine.connect() as conn:
        for search_id, doc_id in journal["click"]:
            n = conn.execute(select(func.count()).select_from(tables.clicks).where(
                (tables.clicks.c.search_id == search_id) & (tables.clicks.c.doc_id == doc_id))).scalar()
            if n != 1:
                problems.append(f"{stage}: acknowledged click {search_id}/{doc_id} stored {n} times")
    feedback.engine.dispose()
    return problems


def recover(home: Path) -> None:
    """What the next run does first: finish or drop a challenger phase, then finish a cut-short swap."""
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.qdrant import IndexHandle
    from clicktune.scheduler.challenger import ChallengerPhase
    from clicktune.scheduler.reindex import BlueGreenReindexer

    settings = soak_settings(home)
    handle = IndexHandle.from_settings(settings)
    feedback = ClickLog.from_settings(settings)
    running = ChallengerPhase(handle, feedback, settings).reconcile()
    BlueGreenReindexer(handle).reconcile(protect={running.challenger_collection} if running else None)
    feedback.engine.dispose()


# The driver ------------------------------------------------------------------------------------
def prepare(home: Path) -> None:
    from clicktune.adapters import ModelRegistry
    from clicktune.adapters.qdrant import close_shared_clients
    from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
    from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset

    settings = soak_settings(home)
    ModelRegistry.from_settings(settings).bootstrap()
    docs = list(BeirDataset.load(BUNDLED_SCIFACT).corpus.values())[:DOCS]
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb)
        store.add_texts([d.content for d in docs], ids=[d.doc_id for d in docs])
        rng = random.Random(0)
        for doc in docs[:60]:  # clicks for the first tick to train on
            results = store.similarity_search(doc.title or doc.text[:80], k=5, user_id=f"u{rng.randrange(20)}")
            store.record_click(_annotations(results[0])["search_id"], results[rng.randrange(len(results))].id)
    close_shared_clients()


def run_cycle(home: Path, journal_path: Path, cycle: int, rng: random.Random,
              step_seconds: dict[str, list[float]], max_kill_seconds: float | None = None) -> dict:
    step = rng.choice(STEPS)
    with open(journal_path.with_name(f"worker-{cycle}.stderr"), "w") as stderr:  # the child keeps its own copy
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(home), str(journal_path), step, str(cycle),
             str(rng.randrange(1 << 30))],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
        )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("step-start"):
        proc.kill()
        proc.wait()
        stderr = journal_path.with_name(f"worker-{cycle}.stderr").read_text()[-1500:]
        return {"cycle": cycle, "step": step, "error": f"worker did not start: {line!r}; its stderr ends: {stderr}"}
    step = line.split()[1]  # what the worker could do (a tick where the step had nothing to act on)
    # Killed mid-step at a uniformly random moment of its length (learnt from earlier cycles that
    # finished it), or, in one cycle of three and until the length is known, right after it finished,
    # so the home moves on (a phase opens, a promotion lands) and later kills meet every state.
    known = step_seconds.get(step)
    if max_kill_seconds is not None:  # a short run (the tests): always mid-step, within this bound
        after, delay = False, rng.uniform(0, max_kill_seconds)
    else:
        after = not known or rng.random() < 1 / 3
        delay = rng.uniform(0, 1.2 * statistics.median(known)) if not after else None
    done: list[str] = []
    finished = threading.Event()

    def watch() -> None:
        for out in proc.stdout:  # type: ignore[union-attr]
            if out.startswith("step-done"):
                done.append(out.strip())
                finished.set()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    if after:
        finished.wait(timeout=900)
        time.sleep(rng.uniform(0, 1.0))
    else:
        time.sleep(delay)
    delay = time.monotonic() - started
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    watcher.join(timeout=5)
    if done and not any(word in done[0] for word in ("refused", "nothing-to-do", "locked", "skipped")):
        step_seconds.setdefault(step, []).append(float(done[0].split()[1]))
    return {"cycle": cycle, "step": step, "kill_after_s": round(delay, 2), "finished_step": done[0] if done else None,
            "killed": proc.returncode == -signal.SIGKILL}


def write_results(out: Path, rows: list[dict], violations: list[str], journal_path: Path, started: float,
                  *, final: bool) -> dict:
    journal = read_journal(journal_path)
    summary = {
        "finished": final, "cycles": len(rows), "kills": sum(r.get("killed", False) for r in rows),
        "killed_mid_step": sum(1 for r in rows if r.get("killed") and not r.get("finished_step")),
        "violations": len(violations), "acknowledged_adds": len(journal["add"]), "acknowledged_deletes": len(journal["del"]),
        "acknowledged_clicks": len(journal["click"]), "refused_writes": len(journal["refused"]) // 2,
        "failed_writes": len(journal["failed"]) // 2 + len(journal["faildel"]),
        "seconds": round(time.perf_counter() - started, 1),
        "steps": {s: sum(1 for r in rows if r["step"] == s) for s in set(STEPS)},
        "step_results": sorted({(r.get("finished_step") or "").split(" ", 2)[-1].split(":")[0] for r in rows} - {""}),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "cycles": rows}, indent=2))
    return summary


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        home, journal, step, cycle, seed = sys.argv[2:7]
        worker(Path(home), Path(journal), step, int(cycle), int(seed))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, default=None, help="a fresh folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak.json"))
    parser.add_argument("--max-kill-seconds", type=float, default=None,
                        help="kill every step within this many seconds of its start (short runs)")
    args = parser.parse_args()

    from clicktune.adapters.qdrant import close_shared_clients

    home = args.home or Path(tempfile.mkdtemp(prefix="clicktune-soak-"))
    prepare(home)
    rng = random.Random(args.seed)
    journal_path = home / "soak-journal.txt"
    step_seconds: dict[str, list[float]] = {}
    rows, violations = [], []
    started = time.perf_counter()
    for cycle in range(1, args.cycles + 1):
        row = run_cycle(home, journal_path, cycle, rng, step_seconds, args.max_kill_seconds)
        journal = read_journal(journal_path)
        problems = [row["error"]] if "error" in row else []
        problems += check(home, journal, "after the kill")
        recover(home)
        problems += check(home, journal, "after recovery")
        close_shared_clients()
        row["violations"] = problems
        violations += problems
        rows.append(row)
        print(f"cycle {cycle:>3} {row['step']:<8} kill at {row.get('kill_after_s', '-')}s "
              f"{'(step finished: ' + row['finished_step'].split(' ', 2)[2] + ')' if row.get('finished_step') else '(mid-step)'}"
              f" violations {len(problems)}", flush=True)
        for problem in problems:
            print("   ", problem, flush=True)
        write_results(args.out, rows, violations, journal_path, started, final=False)  # survives a cut-short run
    summary = write_results(args.out, rows, violations, journal_path, started, final=True)
    print("\n| cycles | kills | killed mid-step | acknowledged adds / deletes / clicks | refused / failed writes "
          "| violations |")
    print("|---|---|---|---|---|---|")
    print(f"| {summary['cycles']} | {summary['kills']} | {summary['killed_mid_step']} | {summary['acknowledged_adds']} / "
          f"{summary['acknowledged_deletes']} / {summary['acknowledged_clicks']} | {summary['refused_writes']} / "
          f"{summary['failed_writes']} | {summary['violations']} |")
    print(f"wrote {args.out}")
    sys.exit(1 if violations else 0)


if __name__ == "__main__":
    main()
