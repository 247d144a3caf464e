"""Several processes, several threads each, one database: nothing lost, nothing doubled, one lock holder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

from clicktune.adapters.clicklog import ClickLog, Impression, ShownResult

_CLICKER = textwrap.dedent(
    """
    import sys, threading
    from clicktune.adapters.clicklog import ClickLog
    url, worker, search_ids = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(",")
    log = ClickLog(url)
    errors = []
    def run(thread):
        try:
            for i, sid in enumerate(search_ids):
                # every thread of both processes clicks every (search, doc): each must be stored once
                log.record_click(sid, f"d{(i + thread) % 4}", user=f"w{worker}t{thread}")
                log.record_click(sid, f"d{(i + thread + 1) % 4}")
        except Exception as exc:
            errors.append(repr(exc))
    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    print("errors", len(errors), errors[:3])
    sys.exit(1 if errors else 0)
    """
)

_LOCKER = textwrap.dedent(
    """
    import sys, threading
    from clicktune.adapters.clicklog import ClickLog
    url, worker = sys.argv[1], sys.argv[2]
    log = ClickLog(url)
    barrier = threading.Barrier(4)
    wins = []
    def run(t):
        barrier.wait()
        if log.acquire_lock("retrain", f"{worker}-{t}", 60):
            wins.append(f"{worker}-{t}")
    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(",".join(wins))
    """
)


def _searches(log: ClickLog, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        sid = str(uuid.uuid4())
        log.log_impression(Impression(search_id=sid, query="q", model_version="v0001", collection="docs__v0001",
                                      results=[ShownResult(doc_id=f"d{i}", rank=i + 1) for i in range(4)]))
        ids.append(sid)
    return ids


def test_two_processes_eight_threads_each_store_every_click_once(db_url: str) -> None:
    log = ClickLog(db_url)
    search_ids = _searches(log, 40)
    procs = [
        subprocess.Popen([sys.executable, "-c", _CLICKER, db_url, str(w), ",".join(search_ids)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for w in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, out + err[-2000:]
    # 8 threads x 2 offsets cover all 4 docs of each search; duplicates must have collapsed.
    assert log.count_clicks() == 40 * 4
    events = list(log.iter_feedback())
    assert all(sorted(c.doc_id for c in e.clicks) == ["d0", "d1", "d2", "d3"] for e in events)


def test_exactly_one_of_many_processes_gets_the_lock(db_url: str) -> None:
    ClickLog(db_url)  # schema first, so the racers only race for the lock
    procs = [
        subprocess.Popen([sys.executable, "-c", _LOCKER, db_url, f"p{w}"], stdout=subprocess.PIPE, text=True)
        for w in range(2)
    ]
    winners = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        winners += [w for w in out.strip().split(",") if w]
    assert len(winners) == 1
    assert ClickLog(db_url).lock_holder("retrain")[0] == winners[0]
