"""Helpers the test modules import by name (a module called `conftest` would be ambiguous: pytest
loads several)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _link_large_copy_small(src: str, dst: str) -> None:
    # Weights are never written in place; metadata files may be (tests corrupt them on purpose).
    if os.path.getsize(src) > 1_000_000:
        os.link(src, dst)
    else:
        shutil.copy2(src, dst)


def clone_home(template: Path, target: Path) -> Path:
    """A home whose registry is the template's, weights hard-linked, metadata copied."""
    shutil.copytree(template / "registry", target / "registry", copy_function=_link_large_copy_small)
    return target
