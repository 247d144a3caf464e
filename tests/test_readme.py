"""The README stays true: its quickstart block runs as written, and its configuration table lists every setting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared_homes import REPO_ROOT


def test_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    env = {**os.environ, "CLICKTUNE_HOME": str(tmp_path / ".clicktune")}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("fracture-1 1 v0001 ")
    assert lines[2] == "rates-3"


def test_readme_lists_every_setting_with_its_environment_variable() -> None:
    """The configuration table is the one place an operator reads settings from: a new setting that
    is not in it is invisible. A top-level setting's row is its name; a group field's row is its
    attribute path (``training.epochs``) and the variable of its flat name (``CLICKTUNE_TRAIN_EPOCHS``)."""
    from clicktune.adapters.settings import ClicktuneSettings
    from clicktune.adapters.settings_groups import GROUPS, flat_name

    readme = (REPO_ROOT / "README.md").read_text()
    rows = [(name, name) for name in ClicktuneSettings.model_fields if name not in GROUPS]
    rows += [(f"{group}.{name}", flat_name(field)) for group, model in GROUPS.items()
             for name, field in model.model_fields.items()]
    assert len(rows) > 40 and set(GROUPS) <= set(ClicktuneSettings.model_fields)
    missing = [path for path, flat in rows if f"| `{path}` | `CLICKTUNE_{flat.upper()}` |" not in readme]
    assert not missing, f"README.md's configuration table lacks {missing}"
    assert all(f"`settings.{group}`" in readme for group in GROUPS), "a group has no heading in the table"
