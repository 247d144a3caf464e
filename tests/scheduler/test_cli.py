"""The operator's commands, on a persistent embedded home, in-process."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from clicktune.adapters import ClicktuneSettings
from clicktune.scheduler.cli import main

pytestmark = pytest.mark.both_engines  # each embedded engine


def _status(home: Path, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert main(["--home", str(home), "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_reindex_rollback(cli_home: Path, capsys: pytest.CaptureFixture, embedded_engine: str) -> None:
    status = _status(cli_home, capsys)
    assert status["alias_target"] == "docs__v0001" and status["current_version"] == "v0001"
    search = "exact (local mode)" if embedded_engine == "local" else "int8 scan"  # 3 documents: no graph
    assert status["collections"] == [{"collection": "docs__v0001", "version": "v0001", "points": 3, "index": search}]

    assert main(["--home", str(cli_home), "reindex", "--version", "v0002"]) == 0
    assert "alias and CURRENT now v0002" in capsys.readouterr().out
    status = _status(cli_home, capsys)
    assert status["alias_target"] == "docs__v0002" and status["current_version"] == "v0002"
    assert [c["points"] for c in status["collections"]] == [3, 3]

    assert main(["--home", str(cli_home), "rollback"]) == 0
    status = _status(cli_home, capsys)
    assert status["alias_target"] == "docs__v0001" and status["current_version"] == "v0001"


def test_errors_are_one_line_with_exit_code_1(cli_home: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--home", str(cli_home), "rollback"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("clicktune: error: no previous live version") and "\n" not in err and "Traceback" not in err
    assert main(["--home", str(cli_home), "reindex", "--version", "latest"]) == 1
    assert "expected the form v0001" in capsys.readouterr().err
    assert main(["--home", str(cli_home), "reindex"]) == 2  # usage error
    assert main(["--home", str(cli_home), "--help"]) == 0


@pytest.mark.parametrize(
    "corrupt", [b"\x00\xffnot json{", json.dumps({"version": "v0042", "history": ["v0001"]}).encode()],
    ids=["garbage-bytes", "unknown-version"],
)
def test_repair_rebuilds_a_corrupt_current_from_the_alias_so_rollback_works(
    cli_home: Path, capsys: pytest.CaptureFixture, corrupt: bytes
) -> None:
    assert main(["--home", str(cli_home), "reindex", "--version", "v0002"]) == 0
    current = cli_home / "registry" / "CURRENT"
    current.write_bytes(corrupt)
    capsys.readouterr()
    for command in ("status", "rollback"):
        assert main(["--home", str(cli_home), command]) == 1
        err = capsys.readouterr().err
        assert err.startswith("clicktune: error: ") and err.count("\n") == 1 and "run `clicktune repair`" in err

    assert main(["--home", str(cli_home), "repair"]) == 0
    assert "CURRENT rebuilt: v0002 live, history v0001" in capsys.readouterr().out
    assert [kept.read_bytes() for kept in current.parent.glob("CURRENT.corrupt-*")] == [corrupt]
    status = _status(cli_home, capsys)
    assert (status["alias_target"], status["current_version"], status["previous_version"]) == (
        "docs__v0002", "v0002", "v0001")

    assert main(["--home", str(cli_home), "rollback"]) == 0
    status = _status(cli_home, capsys)
    assert status["alias_target"] == "docs__v0001" and status["current_version"] == "v0001"
    assert main(["--home", str(cli_home), "repair"]) == 0
    assert "nothing to repair" in capsys.readouterr().out


@pytest.mark.parametrize("command", [["reindex", "--version", "v0002"], ["rollback"], ["challenger", "drop"]])
def test_commands_that_move_the_alias_wait_for_the_lease(cli_home: Path, command: list[str],
                                                         capsys: pytest.CaptureFixture) -> None:
    """Another process holds the alias's lease (a retrain, a reindex): these refuse with exit 3 and
    change nothing, so one cannot drop the other's candidate collection mid-build."""
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.scheduler.loop import lock_name

    settings = ClicktuneSettings(home=cli_home, progress=False)
    feedback = ClickLog.from_settings(settings)
    assert feedback.acquire_lock(lock_name("docs"), "another-worker", 60)
    before = _status(cli_home, capsys)
    assert main(["--home", str(cli_home), *command]) == 3
    assert "holds the lock of alias 'docs'" in capsys.readouterr().err
    assert _status(cli_home, capsys) == before
    feedback.release_lock(lock_name("docs"), "another-worker")


def test_a_command_sigkilled_holding_the_lease_does_not_block_the_next_one(
    cli_home: Path, capsys: pytest.CaptureFixture
) -> None:
    """The holder's owner names this host and a process that is gone: the next command takes the
    lease over at once instead of being refused (exit 3) until the lease runs out."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(cli_home)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL
    assert _status(cli_home, capsys)["lock"]["lease_expires_at"] is not None  # an hour still to run
    assert main(["--home", str(cli_home), "reindex", "--version", "v0002"]) == 0
    assert _status(cli_home, capsys)["alias_target"] == "docs__v0002"


_HOLDER = textwrap.dedent(
    """
    import sys, time
    from clicktune.adapters import ClicktuneSettings
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.clicklog.owners import lock_owner
    from clicktune.scheduler.lock import lock_name
    log = ClickLog.from_settings(ClicktuneSettings(home=sys.argv[1]))
    assert log.acquire_lock(lock_name("docs"), lock_owner(), 3600)
    print("held", flush=True)
    time.sleep(3600)
    """
)


def test_the_demo_command_takes_the_demo_arguments_and_opens_the_registered_store(
    settings: ClicktuneSettings, capsys: pytest.CaptureFixture
) -> None:
    """`clicktune demo` (from a wheel too) hands its arguments to the demo and opens the app's store
    through the clicktune.stores entry point: the scheduler itself never imports the plugin."""
    from clicktune.plugin import ClicktuneVectorStore
    from clicktune.scheduler.demo import parse_config, registered_store

    assert main(["demo", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: clicktune demo" in out and "--demo-home" in out and "--phase-rounds" in out
    assert main(["demo", "--no-such-option"]) == 2
    cfg = parse_config(["--seed", "3", "--rounds", "1", "--max-seq-length", "64"])
    assert (cfg.seed, cfg.rounds, cfg.max_seq_length, cfg.train_max_seq_length) == (3, 1, 64, 64)
    assert isinstance(registered_store(settings), ClicktuneVectorStore)
