"""The crash soak, short: writers, a reader and the loop in one process, SIGKILLed mid-step, checked.

The long run is ``benchmarks/soak.py --cycles 100`` (docs/RESULTS.md); this runs the same code for a few
cycles so a regression in any of its invariants fails CI: every acknowledged write in the live
collection and in the one kept for rollback, no acknowledged delete back, CURRENT agreeing with the
alias after recovery, every acknowledged click stored once.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from shared_homes import REPO_ROOT, clone_home

pytestmark = pytest.mark.both_engines  # each embedded engine


def test_a_short_crash_soak_finds_no_violation(template_home: Path, tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    home = clone_home(template_home, tmp_path / "home")
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "soak.py"), "--cycles", "2", "--seed", "1", "--max-kill-seconds", "20",
         "--home", str(home), "--out", str(out)],
        capture_output=True, text=True, timeout=900,
    )
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads(out.read_text())["summary"]
    assert summary["violations"] == 0, proc.stdout[-3000:]
    assert summary["kills"] == 2 and summary["acknowledged_adds"] > 0 and summary["acknowledged_clicks"] > 0
    assert proc.returncode == 0
