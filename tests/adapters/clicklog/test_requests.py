"""The control plane's queue (feedback schema 5), on SQLite and PostgreSQL: a request is claimed by one
loop only, finished only by its owner, cancelled only while nobody runs it, and holds plain arguments."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from pydantic import ValidationError
from sqlalchemy import inspect, text

from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.clicklog import schema as tables


def test_a_request_goes_pending_running_done_and_only_its_owner_finishes_it(db_url: str) -> None:
    log = ClickLog(db_url)
    sent = log.requests.submit("docs", "reindex", {"version": "v0002"}, submitted_by="ops:1")
    assert (sent.status, sent.arguments, sent.owner) == ("pending", {"version": "v0002"}, None)
    assert log.requests.claim("other-alias", "loop-a", {"reindex"}) is None  # another alias's loop
    assert log.requests.claim("docs", "loop-a", {"status"}) is None  # a loop serving other commands
    claimed = log.requests.claim("docs", "loop-a", {"reindex", "rollback"})
    assert claimed is not None and (claimed.id, claimed.status, claimed.owner) == (sent.id, "running", "loop-a")
    assert claimed.started_at is not None
    assert log.requests.claim("docs", "loop-b", {"reindex"}) is None  # nothing pending any more
    assert not log.requests.cancel(sent.id, "too late")  # running: cannot be cancelled
    assert not log.requests.finish(sent.id, "loop-b", "done", "{}")  # not its owner
    assert log.requests.finish(sent.id, "loop-a", "done", '{"exit_code": 0}')
    done = log.requests.get(sent.id)
    assert (done.status, done.outcome, done.finished) == ("done", '{"exit_code": 0}', True)
    assert not log.requests.finish(sent.id, "loop-a", "failed", "{}")  # finished once
    log.close()


def test_pending_requests_are_cancelled_and_dead_owners_interrupted_never_rerun(db_url: str) -> None:
    log = ClickLog(db_url)
    first = log.requests.submit("docs", "rollback", {}, submitted_by="ops:1")
    second = log.requests.submit("docs", "retrain", {"force": True}, submitted_by="ops:1")
    assert log.requests.cancel(second.id, "nobody waits")
    assert log.requests.get(second.id).status == "skipped"
    assert log.requests.claim("docs", "loop-a", {"retrain", "rollback"}).id == first.id  # oldest first
    assert [r.id for r in log.requests.running("docs")] == [first.id]
    assert not log.requests.interrupt(first.id, "loop-b", "not its owner")
    assert log.requests.interrupt(first.id, "loop-a", "interrupted: loop-a stopped")
    failed = log.requests.get(first.id)
    assert failed.status == "failed" and "interrupted" in failed.outcome
    assert log.requests.claim("docs", "loop-c", {"retrain", "rollback"}) is None  # never re-run
    assert not log.requests.finish(first.id, "loop-a", "done", "{}")  # a late answer is dropped
    assert [r.id for r in log.requests.recent("docs")] == [second.id, first.id]
    pending = log.requests.submit("docs", "status", {}, submitted_by="ops:1")
    assert log.requests.prune("docs", older_than=timedelta(hours=1)) == 0  # all younger
    assert log.requests.prune("docs", older_than=timedelta(0), commands={"retrain"}) == 1
    assert log.requests.prune("docs", older_than=timedelta(0)) == 1  # the rollback; the pending one stays
    assert [r.id for r in log.requests.recent("docs")] == [pending.id]
    log.close()


def test_a_request_holds_a_known_command_and_plain_arguments_only(db_url: str) -> None:
    log = ClickLog(db_url)
    with pytest.raises(ValidationError):
        log.requests.submit("docs", "shell", {}, submitted_by="ops:1")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        log.requests.submit("docs", "reindex", {"version": {"nested": "object"}},  # type: ignore[dict-item]
                            submitted_by="ops:1")
    with log.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM clicktune_requests")).scalar() == 0  # nothing half-written
    log.close()


def test_heartbeats_say_which_loops_serve_an_alias(db_url: str) -> None:
    log = ClickLog(db_url)
    log.requests.beat("host:1:a", "docs", "host", 1)
    log.requests.beat("host:2:b", "other", "host", 2)
    assert [b.owner for b in log.requests.loops("docs", seen_within=60)] == ["host:1:a"]
    first_seen = log.requests.loops("docs")[0].seen_at
    time.sleep(0.05)
    log.requests.beat("host:1:a", "docs", "host", 1)
    again = log.requests.loops("docs")[0]
    assert again.seen_at > first_seen and again.started_at == first_seen
    time.sleep(0.05)
    assert log.requests.loops("docs", seen_within=0.01) == []  # stale
    log.requests.leave("host:1:a")
    assert log.requests.loops("docs") == []
    log.close()


def test_a_schema_4_database_gains_the_control_tables(db_url: str) -> None:
    log = ClickLog(db_url)
    with log.engine.begin() as conn:
        conn.execute(text("DROP TABLE clicktune_requests"))
        conn.execute(text("DROP TABLE clicktune_loops"))
        conn.execute(text("UPDATE clicktune_schema SET version = 4"))
    log.close()
    migrated = ClickLog(db_url)
    with migrated.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM clicktune_schema")).scalar() == tables.SCHEMA_VERSION == 5
    assert {"clicktune_requests", "clicktune_loops"} <= set(inspect(migrated.engine).get_table_names())
    assert migrated.requests.submit("docs", "status", {}, submitted_by="ops:1").id >= 1
    migrated.close()


_CLAIMER = textwrap.dedent(
    """
    import sys, threading
    from clicktune.adapters.clicklog import ClickLog
    url, worker = sys.argv[1], sys.argv[2]
    log = ClickLog(url)
    barrier = threading.Barrier(4)
    got = []
    def run(t):
        barrier.wait()
        while (request := log.requests.claim("docs", f"{worker}-{t}", {"retrain"})) is not None:
            got.append(request.id)
    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(",".join(map(str, got)))
    """
)


def test_loops_in_several_processes_claim_each_request_exactly_once(db_url: str) -> None:
    log = ClickLog(db_url)
    sent = [log.requests.submit("docs", "retrain", {}, submitted_by="ops:1").id for _ in range(40)]
    procs = [subprocess.Popen([sys.executable, "-c", _CLAIMER, db_url, f"w{i}"], stdout=subprocess.PIPE, text=True)
             for i in range(3)]
    claimed = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        claimed += [int(i) for i in out.strip().split(",") if i]
    assert sorted(claimed) == sent  # every request once: none twice, none lost
    owners = {r.owner for r in (log.requests.get(i) for i in sent)}
    assert len(owners) > 1  # more than one loop really took part
    log.close()
