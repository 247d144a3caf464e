"""The CLI beside the running example app: the app holds embedded Qdrant, so `clicktune status`, `history`,
`retrain`, `reindex`, `rollback`, `eval` and `challenger drop` typed in another process are sent to
its loop through the feedback database, and print what the same command prints with no app running.

Real processes only: the app under uvicorn (examples/rag_app/app.py) and each command in its own
Python process, on the packaged model, embedded Qdrant and SQLite in a tmp home; the crash test kills
the app with a real SIGKILL at a crash point while it runs a request.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from shared_homes import REPO_ROOT, clone_home
from sqlalchemy import text

pytest.importorskip("uvicorn", reason="the example app is served by uvicorn (the dev or server extra)")

from clicktune.adapters import ClicktuneSettings, ModelRegistry  # noqa: E402
from clicktune.adapters.clicklog import ClickLog  # noqa: E402

pytestmark = pytest.mark.both_engines  # each embedded engine: each refuses a held folder its own way

APP_PATH = REPO_ROOT / "examples" / "rag_app" / "app.py"
_RUN = "from clicktune.scheduler.cli import run; run()"  # the console script's entry point


def _env(**extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
    engine = os.environ.get("CLICKTUNE_EMBEDDED_ENGINE")
    return {**clean, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            **({"CLICKTUNE_EMBEDDED_ENGINE": engine} if engine else {}), **extra}


def clicktune(home: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _RUN, "--home", str(home), *args], capture_output=True, text=True,
                          env=_env(), timeout=600)


def printed(proc: subprocess.CompletedProcess) -> tuple[int, str, list[str]]:
    """What a command answered: exit code, stdout, and stderr without progress (INFO logs of the command
    run here; 'clicktune: ...' waiting notes of a command sent to the app; its errors are kept)."""
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("INFO ")
              and not (line.startswith("clicktune: ") and not line.startswith("clicktune: error: "))]
    return proc.returncode, proc.stdout, errors


def feedback(home: Path) -> ClickLog:
    return ClickLog(f"sqlite:///{home / 'feedback.db'}")


@pytest.fixture(scope="module")
def app_home(tmp_path_factory: pytest.TempPathFactory, template_home: Path, variant_model, embedded_engine: str) -> Path:
    """A home whose registry holds v0001 (the packaged model) and v0002 (a different one), not yet indexed."""
    home = clone_home(template_home, tmp_path_factory.mktemp("rag-control") / "home")
    ModelRegistry.from_settings(ClicktuneSettings(home=home)).register(variant_model, parent="v0001")
    return home


@contextmanager
def running_app(home: Path, **env: str) -> Iterator[subprocess.Popen]:
    """The example app in its own process, up and serving requests (its loop's heartbeat is in the log)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([sys.executable, str(APP_PATH), "--home", str(home), "--port", str(port)],
                            env=_env(CLICKTUNE_REQUEST_POLL_SECONDS="0.5", **env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    proc.base_url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 300
    while True:
        assert proc.poll() is None, f"the example app exited: {proc.stderr.read() if proc.stderr else ''}"
        assert time.monotonic() < deadline, "the example app did not start"
        try:
            with urllib.request.urlopen(f"{proc.base_url}/questions", timeout=5):  # type: ignore[attr-defined]
                break
        except OSError:
            time.sleep(0.5)
    log = feedback(home)
    try:
        assert [b.pid for b in log.requests.loops("docs")] == [proc.pid]  # its loop serves; dead loops' rows are gone
    finally:
        log.close()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        if proc.stderr:
            proc.stderr.close()


def ask(proc: subprocess.Popen, question: str) -> dict:
    request = urllib.request.Request(f"{proc.base_url}/ask", data=json.dumps({"question": question}).encode(),  # type: ignore[attr-defined]
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def status(home: Path) -> dict:
    proc = clicktune(home, "status", "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_commands_beside_the_running_app_run_in_it_and_print_what_they_print_without_it(app_home: Path) -> None:
    home = app_home
    with running_app(home) as app:
        now = status(home)
        assert now["unread"] == {} and now["alias_target"] == "docs__v0001" and now["current_version"] == "v0001"
        assert [(c["collection"], c["points"]) for c in now["collections"]] == [("docs__v0001", 30)]
        assert [loop["owner"].split(":")[1] for loop in now["control"]["loops"]] == [str(app.pid)]
        history = clicktune(home, "history")
        # history reads the run history from the feedback database: nothing has run on this alias yet
        assert history.returncode == 0 and "no run recorded yet on alias 'docs'" in history.stdout, history.stderr
        human = clicktune(home, "status")
        assert human.returncode == 0 and "alias docs -> docs__v0001" in human.stdout
        assert f"requests from other shells: served by {now['control']['loops'][0]['owner']}" in human.stdout

        sent = {name: printed(clicktune(home, *args)) for name, args in (
            ("rollback refused", ["rollback"]), ("drop without challenger", ["challenger", "drop"]),
            ("retrain", ["retrain", "--force"]), ("eval", ["eval"]))}
        assert sent["rollback refused"] == (1, "", ["clicktune: error: no previous live version to roll back to"])
        assert sent["drop without challenger"] == (1, "", ["clicktune: error: no challenger is running on alias 'docs'"])
        # too few pairs is a skipped tick (exit 0), not a failure
        assert sent["retrain"][0] == 0 and sent["retrain"][1].startswith("skipped: ")
        assert "fewer than train_min_pairs" in sent["retrain"][1]

        reindex = clicktune(home, "reindex", "--version", "v0002")
        assert reindex.returncode == 0, reindex.stderr
        assert reindex.stdout.startswith("docs__v0001 -> docs__v0002: 30 points, 0 replayed, ")
        assert reindex.stdout.rstrip().endswith("alias and CURRENT now v0002")
        now = status(home)
        assert (now["alias_target"], now["current_version"], now["previous_version"]) == ("docs__v0002", "v0002", "v0001")
        assert ask(app, "Does folic acid lower serum homocysteine?")["sources"][0]["model_version"] == "v0002"

        rollback = clicktune(home, "rollback")
        assert (rollback.returncode, rollback.stdout) == (0, "rolled back: alias and CURRENT now v0001\n"), rollback.stderr
        assert ask(app, "Does folic acid lower serum homocysteine?")["sources"][0]["model_version"] == "v0001"
        sent["rollback after a rollback"] = printed(clicktune(home, "rollback"))
        assert sent["rollback after a rollback"][0] == 1

        assert [(command, state) for _, command, state, _ in _requests(home)] == [
            ("rollback", "failed"), ("challenger-drop", "failed"), ("retrain", "done"), ("eval", "failed"),
            ("reindex", "done"), ("rollback", "done"), ("rollback", "failed")]

    log = feedback(home)
    try:
        assert log.requests.loops("docs") == []  # a loop that stops takes its heartbeat away
    finally:
        log.close()
    # The same commands with no app: run here, they print the same and exit the same.
    assert printed(clicktune(home, "rollback")) == sent["rollback after a rollback"]
    assert printed(clicktune(home, "challenger", "drop")) == sent["drop without challenger"]
    alone_retrain = printed(clicktune(home, "retrain", "--force"))
    untimed = lambda answer: (answer[0], re.sub(r" \[mine [^]]*\]", "", answer[1]), answer[2])  # noqa: E731
    assert untimed(alone_retrain) == untimed(sent["retrain"])  # the same but for the step timings
    assert printed(clicktune(home, "eval")) == sent["eval"]
    alone = status(home)
    assert (alone["alias_target"], alone["current_version"], alone["control"]["loops"]) == ("docs__v0001", "v0001", [])


def _requests(home: Path) -> list[tuple[int, str, str, str | None]]:
    log = feedback(home)
    try:
        return [(r.id, r.command, r.status, r.outcome) for r in reversed(log.requests.recent("docs", limit=100))
                if r.command != "status"]
    finally:
        log.close()


def _runs(home: Path) -> int:
    log = feedback(home)
    try:
        with log.engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM clicktune_runs")).scalar() or 0)
    finally:
        log.close()


def test_a_sigkill_of_the_app_while_it_runs_a_request_fails_it_and_it_never_runs_twice(
    tmp_path: Path, template_home: Path, variant_model
) -> None:
    home = clone_home(template_home, tmp_path / "home")
    ModelRegistry.from_settings(ClicktuneSettings(home=home)).register(variant_model, parent="v0001")

    # 1. Killed half way through a rollback (alias moved, CURRENT not yet), with the CLI waiting on it.
    with running_app(home, CLICKTUNE_CRASH_AT="rollback.after_swap") as app:
        assert clicktune(home, "reindex", "--version", "v0002").returncode == 0
        waiting = subprocess.Popen([sys.executable, "-c", _RUN, "--home", str(home), "rollback"], env=_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert app.wait(timeout=120) == -signal.SIGKILL  # reaped at once: the waiting CLI sees its pid gone
        out, err = waiting.communicate(timeout=120)
        rollback = subprocess.CompletedProcess(waiting.args, waiting.returncode, out, err)
    assert rollback.returncode == 1 and rollback.stdout == ""
    [error] = printed(rollback)[2]
    assert error.startswith("clicktune: error: request ") and "(rollback) failed: interrupted" in error
    assert "not run again" in error

    # 2. Killed right after claiming a retrain nobody waits for: the next loop start marks it failed.
    runs = _runs(home)
    log = feedback(home)
    with running_app(home, CLICKTUNE_CRASH_AT="request.claimed") as app:
        retrain = log.requests.submit("docs", "retrain", {"force": True}, submitted_by="test:1")
        assert app.wait(timeout=60) == -signal.SIGKILL
    assert log.requests.get(retrain.id).status == "running"  # nobody has looked yet
    log.close()

    with running_app(home) as app:
        requests = _requests(home)
        assert [(command, state) for _, command, state, _ in requests] == [
            ("reindex", "done"), ("rollback", "failed"), ("retrain", "failed")]
        assert all("interrupted" in json.loads(outcome)["reason"] for _, _, _, outcome in requests[1:])
        # never re-run: after several polls the alias is where the one rollback put it, no retrain ran
        for _ in range(3):
            assert ask(app, "Does folic acid lower serum homocysteine?")["sources"][0]["model_version"] == "v0001"
        now = status(home)
        assert now["alias_target"] == "docs__v0001" and now["unread"] == {}
        assert _requests(home) == requests and _runs(home) == runs
