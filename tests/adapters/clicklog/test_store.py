"""The click log on real SQLite and real PostgreSQL: validation, idempotence, atomicity, the lease lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from clicktune.adapters.clicklog import ClickLog, Impression, ShownResult
from clicktune.adapters.clicklog import schema as tables
from clicktune.adapters.errors import (
    ClickWindowExpiredError,
    DocNotShownError,
    InvalidDwellError,
    InvalidGradeError,
    MalformedIdError,
    UnknownSearchError,
)
from clicktune.adapters.limits import MAX_DOC_ID_LENGTH, MAX_SESSION_ID_LENGTH, MAX_USER_ID_LENGTH


def _impression(log: ClickLog, docs=("a", "b", "c"), **kw) -> str:
    sid = str(uuid.uuid4())
    log.log_impression(Impression(
        search_id=sid, query=kw.pop("query", "vitamin d"), model_version="v0001", collection="docs__v0001",
        results=[ShownResult(doc_id=d, rank=i, score=1 - i / 10) for i, d in enumerate(docs, start=1)], **kw))
    return sid


def _snapshot(log: ClickLog) -> tuple:
    with log.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(tb)).scalar()
                     for tb in (tables.impressions, tables.impression_results, tables.clicks))


def test_impressions_round_trip(db_url: str) -> None:
    log = ClickLog(db_url)
    sid = _impression(log, user_id="u1", session_id="s1")
    got = log.get_impression(sid)
    assert got is not None and [r.doc_id for r in got.results] == ["a", "b", "c"]
    assert got.user_id == "u1" and got.created_at.tzinfo is not None
    assert log.get_impression(str(uuid.uuid4())) is None


def test_clicks_are_idempotent(db_url: str) -> None:
    log = ClickLog(db_url)
    sid = _impression(log, user_id="u1")
    assert log.record_click(sid, "b", dwell=12.5, grade=2, user="u1") is True
    assert log.record_click(sid, "b", dwell=99.0) is False
    assert log.count_clicks() == 1
    (event,) = list(log.iter_feedback())
    assert [(c.doc_id, c.dwell_seconds, c.grade, c.user_id) for c in event.clicks] == [("b", 12.5, 2, "u1")]


@pytest.mark.parametrize(
    "click, error, message",
    [
        ({"search_id": "not-a-uuid", "doc_id": "a"}, MalformedIdError, "not a UUID"),
        ({"search_id": "SID", "doc_id": ""}, MalformedIdError, "non-empty"),
        ({"search_id": "SID", "doc_id": "x" * 600}, MalformedIdError, "at most 512"),
        ({"search_id": "SID", "doc_id": "a", "user": "u" * 256}, MalformedIdError, "longer than 255"),
        ({"search_id": str(uuid.UUID(int=7)), "doc_id": "a"}, UnknownSearchError, "was logged"),
        ({"search_id": "SID", "doc_id": "zzz"}, DocNotShownError, "was not shown"),
        ({"search_id": "SID", "doc_id": "a", "dwell": -1.0}, InvalidDwellError, ">= 0"),
        ({"search_id": "SID", "doc_id": "a", "dwell": float("nan")}, InvalidDwellError, "finite"),
        ({"search_id": "SID", "doc_id": "a", "grade": 4}, InvalidGradeError, "0 to 3"),
        ({"search_id": "SID", "doc_id": "a", "grade": True}, InvalidGradeError, "integer"),
    ],
)
def test_bad_clicks_raise_and_store_nothing(db_url: str, click: dict, error: type, message: str) -> None:
    log = ClickLog(db_url)
    sid = _impression(log)
    log.record_click(sid, "c")
    before = _snapshot(log)
    click = {k: (sid if v == "SID" else v) for k, v in click.items()}
    with pytest.raises(error, match=message):
        log.record_click(click.pop("search_id"), click.pop("doc_id"), **click)
    assert _snapshot(log) == before


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"docs": ("a", "x" * (MAX_DOC_ID_LENGTH + 1))}, f"at most {MAX_DOC_ID_LENGTH} characters"),
        ({"docs": ("a", "")}, "non-empty"),
        ({"user_id": "u" * (MAX_USER_ID_LENGTH + 1)}, f"user id .* longer than {MAX_USER_ID_LENGTH}"),
        ({"session_id": "s" * (MAX_SESSION_ID_LENGTH + 1)}, f"session id .* longer than {MAX_SESSION_ID_LENGTH}"),
    ],
    ids=["overlong-doc-id", "empty-doc-id", "overlong-user", "overlong-session"],
)
def test_an_impression_the_log_cannot_hold_is_refused_the_same_on_every_backend(
    db_url: str, fields: dict, message: str
) -> None:
    log = ClickLog(db_url)
    before = _snapshot(log)
    with pytest.raises(MalformedIdError, match=message):
        _impression(log, **fields)
    assert _snapshot(log) == before


def test_ids_and_users_of_exactly_the_limits_are_stored_and_clicked(db_url: str) -> None:
    log = ClickLog(db_url)
    doc, user, session = "d" * MAX_DOC_ID_LENGTH, "u" * MAX_USER_ID_LENGTH, "s" * MAX_SESSION_ID_LENGTH
    sid = _impression(log, docs=("a", doc), user_id=user, session_id=session)
    assert log.record_click(sid, doc, user=user) is True
    (event,) = list(log.iter_feedback())
    assert event.impression.results[1].doc_id == doc and event.impression.session_id == session
    assert [(c.doc_id, c.user_id) for c in event.clicks] == [(doc, user)]


def test_late_click_is_refused(db_url: str) -> None:
    log = ClickLog(db_url, click_window=timedelta(hours=1))
    sid = _impression(log)
    before = _snapshot(log)
    with pytest.raises(ClickWindowExpiredError, match="click window"):
        log.record_click(sid, "a", now=datetime.now(timezone.utc) + timedelta(hours=2))
    assert _snapshot(log) == before


def test_a_batch_with_one_bad_click_stores_none(db_url: str) -> None:
    log = ClickLog(db_url)
    sid = _impression(log)
    before = _snapshot(log)
    with pytest.raises(DocNotShownError, match="click 2"):
        log.record_clicks([{"search_id": sid, "doc_id": "a"}, {"search_id": sid, "doc_id": "b"},
                           {"search_id": sid, "doc_id": "nope"}])
    assert _snapshot(log) == before
    assert log.record_clicks([{"search_id": sid, "doc_id": "a"}, {"search_id": sid, "doc_id": "a"}]) == [True, False]


def test_feedback_window_and_counts(db_url: str) -> None:
    log = ClickLog(db_url)
    first = _impression(log, query="one")
    log.record_click(first, "a")
    middle = datetime.now(timezone.utc)
    second = _impression(log, query="two")
    log.record_click(second, "b")
    assert log.count_clicks() == 2 and log.count_clicks(since=middle) == 1
    assert [e.impression.query for e in log.iter_feedback(since=middle)] == ["two"]
    assert [e.impression.query for e in log.iter_feedback(until=middle)] == ["one"]
    assert [e.impression.query for e in log.iter_feedback(chunk=1)] == ["one", "two"]
    assert log.stats() == {"impressions": 2, "clicks": 2}


def test_lease_lock(db_url: str) -> None:
    log = ClickLog(db_url)
    assert log.acquire_lock("retrain", "A", 60)
    assert not log.acquire_lock("retrain", "B", 60)
    assert log.acquire_lock("retrain", "A", 60)  # re-entrant for its owner
    assert not log.release_lock("retrain", "B")
    assert log.lock_holder("retrain")[0] == "A"
    assert log.renew_lock("retrain", "A", 60) and not log.renew_lock("retrain", "B", 60)
    assert log.release_lock("retrain", "A")
    assert log.acquire_lock("retrain", "B", 0.01)
    import time

    time.sleep(0.05)  # B's lease expires: a dead holder does not block forever
    assert log.lock_holder("retrain") is None
    assert log.acquire_lock("retrain", "A", 60)


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.clicklog.owners import lock_owner
    owner = lock_owner()
    assert ClickLog(sys.argv[1]).acquire_lock("retrain", owner, 3600)
    print(owner, flush=True)
    time.sleep(3600)
    """
)


def test_a_lease_whose_holder_was_sigkilled_on_this_host_is_taken_over_and_no_other(db_url: str) -> None:
    """A command SIGKILLed while holding the lease does not block the next one for the lease's length:
    its owner names this host, this PID namespace and a PID that is gone. A holder that is alive, on
    another host or in another PID namespace (a container sharing the hostname) keeps its lease."""
    from clicktune.adapters.clicklog.owners import lock_owner

    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, db_url], stdout=subprocess.PIPE, text=True)
    dead = holder.stdout.readline().strip()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert holder.returncode == -signal.SIGKILL
    log = ClickLog(db_url)
    assert log.lock_holder("retrain").owner == dead  # its hour-long lease is still in the database
    host, pid, _nonce, machine = dead.rsplit(":", 3)
    me = lock_owner()
    strangers = [
        f"another-host:{pid}:0badf00d:{machine}",  # another host: its PIDs mean nothing here
        f"{host}:{pid}:0badf00d:0123456789ab",  # same hostname, another machine or PID namespace
        f"{host}:{pid}:0badf00d",  # written by an older release
        f"{host}:{os.getppid()}:0badf00d:{machine}",  # a process of this host that is alive
    ]
    for stranger in strangers:
        assert log.acquire_lock("other", stranger, 3600)
        assert not log.acquire_lock("other", me, 60), stranger
        assert log.lock_holder("other").owner == stranger
        assert log.release_lock("other", stranger)

    assert log.acquire_lock("retrain", me, 60)  # the dead holder's lease, taken over
    assert log.lock_holder("retrain").owner == me
    assert not log.acquire_lock("retrain", lock_owner(), 60)  # and now held by a live process


def test_run_history(db_url: str) -> None:
    log = ClickLog(db_url)
    assert log.last_run() is None
    start = datetime.now(timezone.utc)
    log.record_run(start, {"status": "rejected", "reason": "too small"})
    log.record_run(datetime.now(timezone.utc), {"status": "skipped", "reason": "few clicks"})
    assert log.last_run()["status"] == "rejected"
    assert [r["status"] for r in log.runs()] == ["skipped", "rejected"]
    assert log.runs()[1]["outcome"]["reason"] == "too small"


def _reopened_as_older_schema(log: ClickLog, db_url: str, version: int, drop_column: tuple[str, str]) -> ClickLog:
    """Make ``log``'s database the one an older clicktune left (without ``drop_column``, at schema
    ``version``), then open it again: the migration on open must bring it to the current schema."""
    from sqlalchemy import text

    table, column = drop_column
    with log.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {table} DROP COLUMN {column}"))
        conn.execute(text(f"UPDATE clicktune_schema SET version = {version}"))
    log.close()
    migrated = ClickLog(db_url)
    with migrated.engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM clicktune_schema")).scalar() == tables.SCHEMA_VERSION == 5
    return migrated


def test_a_schema_2_database_gains_the_locks_acquired_at_column(db_url: str) -> None:
    """Version 3 added locks.acquired_at; a database written by the previous release is migrated in
    place on open (SQLite and PostgreSQL), and a lock taken before keeps working (since: unknown)."""
    log = ClickLog(db_url)
    assert log.acquire_lock("old-lock", "worker-a", 600)
    migrated = _reopened_as_older_schema(log, db_url, 2, ("clicktune_locks", "acquired_at"))
    holder = migrated.lock_holder("old-lock")
    assert holder is not None and holder.owner == "worker-a" and holder.acquired_at is None
    assert migrated.acquire_lock("new-lock", "worker-b", 600)
    assert migrated.lock_holder("new-lock").acquired_at is not None
    migrated.close()


def test_a_schema_3_database_gains_the_shared_column_and_keeps_crediting_its_clicks(db_url: str) -> None:
    """Version 4 added impression_results.shared (a click on both rankings' common prefix credits
    neither model). A schema-3 database is migrated in place; its interleaved searches read back
    with ``shared`` unknown (None) and their clicks keep the credit they had."""
    log, sid = ClickLog(db_url), str(uuid.uuid4())
    challenger = log.challengers.start(alias="docs", champion_version="v0001", challenger_version="v0002",
                                       champion_collection="docs__v0001", challenger_collection="docs__v0002",
                                       interleave_share=1.0, offline={})
    log.log_impression(Impression(search_id=sid, query="q", model_version="v0001", collection="docs__v0001",
                                  alias="docs", challenge_id=challenger.id,
                                  results=[ShownResult(doc_id="a", rank=1, model_version="v0002", shared=True),
                                           ShownResult(doc_id="b", rank=2, model_version="v0001", shared=False)]))
    log.record_click(sid, "a")
    migrated = _reopened_as_older_schema(log, db_url, 3, ("clicktune_impression_results", "shared"))
    assert [r.shared for r in migrated.get_impression(sid).results] == [None, None]
    [search] = migrated.challengers.searches(challenger)
    assert (search.challenger_clicks, search.champion_clicks) == (1, 0)  # as credited before version 4
    migrated.close()
