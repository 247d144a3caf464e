"""What an operator reads: stdout holds a command's answer only, `history` tells the whole story at
80 columns, and counts read as English. A real retrain (real model, real trainer) in a real process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from loop_fixtures import index_and_simulate, loop_settings, scifact_slice

from clicktune.adapters import ModelRegistry
from clicktune.adapters.clicklog import ClickLog, Impression, ShownResult
from clicktune.adapters.qdrant import close_shared_clients
from clicktune.scheduler.cli import main

DATA = scifact_slice(n_queries=60, n_fillers=120)
_RUN = "from clicktune.scheduler.cli import run; run()"  # the console script's entry point

#: The loop's settings for a small slice and a short training, as a worker would read them.
ENV = {f"CLICKTUNE_{name.upper()}": str(value) for name, value in {
    "train_max_seq_length": 96, "train_epochs": 1, "train_batch_size": 16, "train_max_rows": 64,  # 5 steps
    "train_min_pairs": 16, "gate_min_queries": 5, "gate_tolerance": 1.0, "heldout_fraction": 0.2,
    "watch_registry": "false", "progress": "false"}.items()}


def _clicktune(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
    return subprocess.run([sys.executable, "-c", _RUN, "--home", str(home), *args], capture_output=True, text=True,
                          env={**clean, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **ENV, **env},
                          timeout=900)


def _out(capsys: pytest.CaptureFixture, *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0, capsys.readouterr().err
    return capsys.readouterr().out


@pytest.fixture
def trafficked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """v0001 live over ~180 SciFact abstracts, with simulated searches and clicks logged."""
    home = tmp_path / "home"
    stats = index_and_simulate(loop_settings(home), DATA)
    assert stats["clicks"] > 50, stats
    close_shared_clients()
    for name, value in ENV.items():  # the in-process commands read the same settings
        monkeypatch.setenv(name, value)
    return home


def test_a_real_retrain_answers_on_stdout_only_and_history_tells_everything_at_80_columns(
    trafficked: Path, capsys: pytest.CaptureFixture
) -> None:
    home = str(trafficked)
    proc = _clicktune(trafficked, "retrain", "--force")
    assert proc.returncode == 0, proc.stderr
    # The answer, one line; the trainer's log dicts and sentence-transformers' model-card bar nowhere
    # on stdout (progress is INFO on stderr without a TTY).
    assert proc.stdout.startswith("challenger: v0002 passed the offline check") and proc.stdout.count("\n") == 1
    assert "{'loss'" not in proc.stdout and "'train_runtime'" not in proc.stdout
    assert "Computing widget examples" not in proc.stdout + proc.stderr
    assert re.search(r"^INFO clicktune.scheduler.training: training step 1 of \d+: loss", proc.stderr, re.M)
    assert proc.stdout.rstrip().endswith("s]")  # the steps' timings: printed, not eaten as markup
    # ... and the users' click queries are not written into the saved model's card
    card = (trafficked / "registry" / "models" / "v0002" / "README.md").read_text()
    assert not [q for q in DATA.dataset.queries.values() if q in card]

    assert "challenger v0002: drop by hand" in _out(capsys, "--home", home, "challenger", "drop")
    assert ModelRegistry.from_settings(loop_settings(trafficked)).get("v0002").status == "dropped"
    assert "alias and CURRENT now v0002" in _out(capsys, "--home", home, "reindex", "--version", "v0002")
    assert "rolled back: alias and CURRENT now v0001" in _out(capsys, "--home", home, "rollback")

    lines = _out(capsys, "--home", home, "history").splitlines()
    assert max(map(len, lines)) <= 80, "\n".join(line for line in lines if len(line) > 80)
    heads = [line.split("  ", 1)[1] for line in lines if not line.startswith(" ")]
    assert heads == ["challenger  v0002 vs v0001", "dropped     v0002 vs v0001  (by hand)",
                     "reindexed   v0001 -> v0002  (by hand)", "rolled back v0002 -> v0001  (by hand)"], lines
    text = "\n".join(lines)
    assert "passed the offline check" in text and "drop by hand: 0 W / 0 L / 0 T" in text

    # Too few pairs is nothing to do yet, not a failure: exit 0, "skipped" and why.
    few = _clicktune(trafficked, "retrain", "--force", CLICKTUNE_TRAIN_MIN_PAIRS="100000")
    assert few.returncode == 0, few.stderr
    assert few.stdout.startswith("skipped: ") and "fewer than train_min_pairs=100000" in few.stdout
    assert "failed" not in few.stdout + few.stderr


def test_counts_read_as_english(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """One click since the last run: '1 new click', not '1 new clicks'."""
    settings = loop_settings(tmp_path)
    feedback = ClickLog.from_settings(settings)
    search = str(uuid.uuid4())
    feedback.log_impression(Impression(search_id=search, query="q", model_version="v0001", collection="docs__v0001",
                                       alias="docs", results=[ShownResult(doc_id="a", rank=1)]))
    feedback.record_click(search, "a")
    feedback.close()
    out = _out(capsys, "--home", str(tmp_path), "retrain")
    assert out.startswith("skipped: 1 new click < min_new_clicks=100"), out
