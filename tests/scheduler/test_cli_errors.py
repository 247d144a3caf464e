"""Every error an operator can fix is one line ``clicktune: error: ...`` and exit code 1, in a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.qdrant import close_shared_clients
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore

pytestmark = pytest.mark.both_engines  # each embedded engine

_RUN = "from clicktune.scheduler.cli import run; run()"  # the console script's entry point


def _clicktune(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
    return subprocess.run([sys.executable, "-c", _RUN, "--home", str(home), *args], capture_output=True, text=True,
                          env={**clean, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}, timeout=300)


def _assert_one_line_error(proc: subprocess.CompletedProcess, *hints: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    # INFO lines are progress (log_level INFO, no TTY here); the error itself is one line.
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("INFO clicktune.")]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("clicktune: error: ")
    for hint in hints:
        assert hint in lines[0]


@pytest.mark.parametrize(
    ("args", "env", "hints"),
    [
        (["--alias", "a__b", "status"], {}, ["CLICKTUNE_COLLECTION_ALIAS='a__b' (from --alias", "'__'"]),
        (["status"], {"CLICKTUNE_PRECISION": "fp16"}, ["CLICKTUNE_PRECISION='fp16'", "'auto', 'fp32' or 'bf16'"]),
        (["status"], {"CLICKTUNE_FEEDBACK_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test"},
         ["127.0.0.1:1", "check CLICKTUNE_FEEDBACK_URL"]),
        (["rollback"], {"CLICKTUNE_FEEDBACK_URL": "postgresql+psycopg://postgres@127.0.0.1:1/test"},
         ["127.0.0.1:1", "check CLICKTUNE_FEEDBACK_URL"]),
        (["status"], {"CLICKTUNE_QDRANT_URL": "http://127.0.0.1:1"}, ["http://127.0.0.1:1", "check CLICKTUNE_QDRANT_URL"]),
        # A group's field is named by the variable the operator set, not by its group (CLICKTUNE_TRAINING).
        (["status"], {"CLICKTUNE_TRAIN_EPOCHS": "abc"}, ["CLICKTUNE_TRAIN_EPOCHS='abc'", "valid number"]),
        (["status"], {"CLICKTUNE_INTERLEAVE_SHARE": "1.5"}, ["CLICKTUNE_INTERLEAVE_SHARE='1.5'", "less than or equal to 1"]),
        (["status"], {"CLICKTUNE_CHALLENGER_FIRST_LOOK": "5000"},
         ["CLICKTUNE_CHALLENGER_FIRST_LOOK='5000'", "challenger_last_look must be >= challenger_first_look"]),
    ],
    ids=["bad-alias", "bad-env-value", "postgres-unreachable-status", "postgres-unreachable-rollback",
         "qdrant-unreachable", "bad-group-field", "group-field-out-of-range", "group-check"],
)
def test_bad_setting_or_unreachable_server_is_one_line_and_exit_1(
    home: Path, args: list[str], env: dict[str, str], hints: list[str]
) -> None:
    proc = _clicktune(home, *args, **env)
    _assert_one_line_error(proc, *hints)
    assert "CLICKTUNE_TRAINING" not in proc.stderr and "CLICKTUNE_CHALLENGER=" not in proc.stderr


def test_embedded_folder_held_by_a_process_that_serves_no_requests(home: Path) -> None:
    """A process holds the folder and runs no clicktune loop: a command that needs Qdrant says both in
    one line and exits 1; status reads the rest and says what it could not read."""
    holder = QdrantClient(path=str(home / "qdrant"))
    try:
        rollback = _clicktune(home, "rollback")
        status = _clicktune(home, "status")
    finally:
        holder.close()
    _assert_one_line_error(rollback, str(home / "qdrant"), "no clicktune loop serves requests for alias",
                           "start_background_loop()", "CLICKTUNE_QDRANT_URL")
    assert status.returncode == 0, status.stderr
    assert f"not read: qdrant (the embedded Qdrant folder {home / 'qdrant'} is open in another process" in status.stdout
    assert "alias docs -> (not read)" in status.stdout and "v0001" in status.stdout  # the registry was read


def test_a_process_holding_the_folder_and_the_lease_makes_commands_exit_3_as_before(home: Path) -> None:
    """Another `clicktune retrain` holds the folder and the alias's lease and serves no requests: a second
    command says "locked" with exit 3, as when the lease alone is taken, not that nothing serves."""
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.scheduler.lock import lock_name

    feedback = ClickLog.from_settings(ClicktuneSettings(home=home))
    holder = QdrantClient(path=str(home / "qdrant"))
    assert feedback.acquire_lock(lock_name("docs"), "another-worker", 600)
    try:
        retrain, rollback = _clicktune(home, "retrain"), _clicktune(home, "rollback")
    finally:
        holder.close()
        feedback.release_lock(lock_name("docs"), "another-worker")
        feedback.close()
    assert (retrain.returncode, retrain.stdout) == (3, "locked: another retrain holds the lock\n"), retrain.stderr
    assert rollback.returncode == 3 and "another process holds the lock of alias 'docs'" in rollback.stderr


def test_failed_retrain_is_one_line_and_exit_1_and_debug_shows_the_traceback(home: Path) -> None:
    settings = ClicktuneSettings(home=home, progress=False)
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        ClicktuneVectorStore(settings, embeddings=emb).add_texts(["alpha beta", "gamma delta"], ids=["a", "b"])
    close_shared_clients()

    proc = _clicktune(home, "retrain", "--force", CLICKTUNE_FAIL_AT="mine")
    _assert_one_line_error(proc, "retrain failed, alias and CURRENT unchanged", "failure injected at step 'mine'")
    # no TTY here: the steps are logged at INFO (the log_level setting's default) instead of being silent
    assert "INFO clicktune.scheduler.loop: retrain step mine ..." in proc.stderr

    debug = _clicktune(home, "retrain", "--force", CLICKTUNE_FAIL_AT="mine", CLICKTUNE_DEBUG="1")
    assert debug.returncode == 1 and "Traceback" in debug.stderr
