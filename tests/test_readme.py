"""The documents stay true: every python block of the README runs as written, in order, and the
configuration table in docs/configuration.md lists every setting."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from shared_homes import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "examples"))
from quickstart import readme_blocks  # noqa: E402

CONFIGURATION = REPO_ROOT / "docs" / "configuration.md"


def test_every_readme_python_block_runs_as_written_in_order(tmp_path: Path) -> None:
    """A reader pastes the blocks one after the other: each must run on what the earlier ones defined,
    on a fresh embedded home, with nothing but the installed package."""
    env = {**os.environ, "CLICKTUNE_HOME": str(tmp_path / ".clicktune")}
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "examples" / "quickstart.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    blocks = readme_blocks()
    ran = re.findall(r"^README python block (\d+):", proc.stderr, re.M)
    assert ran == [str(n) for n in range(1, len(blocks) + 1)] and len(blocks) >= 5, (ran, len(blocks))
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("fracture-1 1 v0001 ")
    assert lines[2] == "rates-3"
    assert "Probably: see fracture-1. True" in lines  # the LCEL chain handed its search id back


def test_the_configuration_table_lists_every_setting_with_its_environment_variable() -> None:
    """The configuration table is the one place an operator reads settings from: a new setting that
    is not in it is invisible. A top-level setting's row is its name; a group field's row is its
    attribute path (``training.epochs``) and the variable of its flat name (``CLICKTUNE_TRAIN_EPOCHS``)."""
    from clicktune.adapters.settings import ClicktuneSettings
    from clicktune.adapters.settings_groups import GROUPS, flat_name

    table = CONFIGURATION.read_text()
    rows = [(name, name) for name in ClicktuneSettings.model_fields if name not in GROUPS]
    rows += [(f"{group}.{name}", flat_name(field)) for group, model in GROUPS.items()
             for name, field in model.model_fields.items()]
    assert len(rows) > 40 and set(GROUPS) <= set(ClicktuneSettings.model_fields)
    missing = [path for path, flat in rows if f"| `{path}` | `CLICKTUNE_{flat.upper()}` |" not in table]
    assert not missing, f"docs/configuration.md's settings table lacks {missing}"
    assert all(f"`settings.{group}`" in table for group in GROUPS), "a group has no heading in the table"


def test_the_readme_essentials_are_real_settings_with_their_variables() -> None:
    """The README's short table must not drift from the full one: every row it shows is a row there."""
    readme = (REPO_ROOT / "README.md").read_text()
    table = CONFIGURATION.read_text()
    rows = re.findall(r"^\| `[a-z_.]+` \| `CLICKTUNE_[A-Z_]+` \|", readme, re.M)
    assert len(rows) >= 10, rows
    assert not [row for row in rows if row not in table], "README rows missing from docs/configuration.md"


def test_links_between_the_documents_point_at_files_that_exist() -> None:
    documents = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
    broken = []
    for doc in documents:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text()):
            if not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(REPO_ROOT)} -> {target}")
    assert not broken, broken
