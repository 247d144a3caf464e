"""The loop's side of the control plane (``scheduler/control.py``), in one process: it runs what it claims on
its own handle with the answers the command line gives, fails what a dead loop left running without
running it again, and a request nobody picks up is cancelled at the sender's timeout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.clicklog import ClickLog
from clicktune.scheduler.commands import LEASED_COMMANDS, READ_COMMANDS
from clicktune.scheduler.control import RequestServer, send, serving_loops, this_host

pytestmark = pytest.mark.both_engines  # each embedded engine


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_the_loop_runs_requests_on_its_handle_and_answers_as_the_command_line(cli_home: Path) -> None:
    settings = ClicktuneSettings(home=cli_home, progress=False)
    server = RequestServer(settings)
    log = server.feedback
    refused = log.requests.submit("docs", "rollback", {}, submitted_by="ops:1")
    reindex = log.requests.submit("docs", "reindex", {"version": "v0002"}, submitted_by="ops:1")
    rollback = log.requests.submit("docs", "rollback", {}, submitted_by="ops:1")
    assert server.serve_once(READ_COMMANDS) is None  # the read-only worker leaves leased commands alone
    answers = {}
    for sent in (refused, reindex, rollback):
        ended = server.serve_once(LEASED_COMMANDS)
        assert ended is not None and ended.id == sent.id and ended.owner == server.owner
        answers[sent.id] = (ended.status, json.loads(ended.outcome or "{}"))
    assert answers[refused.id] == ("failed", {"exit_code": 1, "out": [], "json_out": None, "err": [],
                                              "error": "no previous live version to roll back to"})
    status, answer = answers[reindex.id]
    assert status == "done" and answer["out"][0].endswith("alias and CURRENT now v0002")
    assert answers[rollback.id] == ("done", {"exit_code": 0, "out": ["rolled back: alias and CURRENT now v0001"],
                                             "json_out": None, "err": [], "error": None})
    bad = log.requests.submit("docs", "reindex", {"version": 2}, submitted_by="ops:1")
    ended = server.serve_once(LEASED_COMMANDS)
    assert ended.id == bad.id and "argument 'version' must be text" in json.loads(ended.outcome)["error"]
    server.feedback.close()


def test_a_started_loop_fails_what_dead_loops_left_running_and_never_runs_it(cli_home: Path, db_url: str) -> None:
    settings = ClicktuneSettings(home=cli_home, progress=False, feedback_url=db_url, request_poll_seconds=0.05)
    log = ClickLog(db_url)
    killed_here = log.requests.submit("docs", "rollback", {}, submitted_by="ops:1")
    log.requests.claim("docs", f"{this_host()}:{_dead_pid()}:dead", {"rollback"})
    silent_elsewhere = log.requests.submit("docs", "retrain", {}, submitted_by="ops:1")
    log.requests.claim("docs", "far-host:1:gone", {"retrain"})  # no heartbeat at all
    alive_elsewhere = log.requests.submit("docs", "reindex", {"version": "v0002"}, submitted_by="ops:1")
    log.requests.claim("docs", "near-host:7:busy", {"reindex"})
    log.requests.beat("near-host:7:busy", "docs", "near-host", 7)
    log.requests.beat(f"{this_host()}:{_dead_pid()}:old", "docs", this_host(), 0)  # a killed loop's row

    server = RequestServer(settings).start()
    try:
        states = {r.id: (r.status, r.outcome) for r in log.requests.recent("docs")}
        for request in (killed_here, silent_elsewhere):
            state, outcome = states[request.id]
            assert state == "failed" and json.loads(outcome)["reason"].startswith("interrupted: ")
        assert states[alive_elsewhere.id] == ("running", None)  # its loop beats: it may still finish
        assert sorted(b.owner for b in serving_loops(log, "docs")) == sorted(["near-host:7:busy", server.owner])
        assert log.requests.claim("docs", "anyone", LEASED_COMMANDS | READ_COMMANDS) is None  # nothing re-queued
    finally:
        server.stop()
    assert [b.owner for b in log.requests.loops("docs")] == ["near-host:7:busy"]  # its own row went with it
    log.close()


def test_a_request_nobody_picks_up_is_cancelled_when_the_sender_stops_waiting(home: Path, db_url: str) -> None:
    settings = ClicktuneSettings(home=home, feedback_url=db_url)
    log = ClickLog(db_url)
    log.requests.beat("near-host:7:busy", "docs", "near-host", 7)  # seems to serve, never claims
    answer = send(settings, "rollback", {}, timeout=1, why="held")
    assert answer.exit_code == 1 and "was not picked up within 1s" in (answer.error or "")
    [request] = log.requests.recent("docs")
    assert request.status == "skipped" and log.requests.claim("docs", "late", {"rollback"}) is None
    log.close()


def test_via_loop_sends_a_command_this_process_could_run_to_the_serving_loop(
    cli_home: Path, capsys: pytest.CaptureFixture
) -> None:
    """With a Qdrant server the CLI can run everything itself; --via-loop sends it to the serving loop
    anyway (there a reindex replays the app's writes). Shown here on an embedded home, in one process."""
    from clicktune.scheduler.cli import main

    server = RequestServer(ClicktuneSettings(home=cli_home, progress=False, request_poll_seconds=0.05)).start()
    try:
        assert main(["--home", str(cli_home), "--via-loop", "reindex", "--version", "v0002"]) == 0
        assert capsys.readouterr().out.rstrip().endswith("alias and CURRENT now v0002")
        [request] = server.feedback.requests.recent("docs")
        assert (request.command, request.status, request.owner) == ("reindex", "done", server.owner)
    finally:
        server.stop()
    assert main(["--home", str(cli_home), "--via-loop", "rollback"]) == 1
    assert "no clicktune loop serves requests for alias 'docs'" in capsys.readouterr().err
    assert main(["--home", str(cli_home), "rollback"]) == 0  # run here, as always
    assert "rolled back: alias and CURRENT now v0001" in capsys.readouterr().out
