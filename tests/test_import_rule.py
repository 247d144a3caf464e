"""The arrows go plugin -> adapters <- scheduler: no module imports across them, not even lazily."""

from __future__ import annotations

import ast

import pytest
from shared_homes import REPO_ROOT

FORBIDDEN = {
    "plugin": ("clicktune.scheduler",),
    "scheduler": ("clicktune.plugin",),
    "adapters": ("clicktune.plugin", "clicktune.scheduler"),
}


def _imports(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_module_imports_against_the_arrows(folder: str) -> None:
    files = sorted((REPO_ROOT / folder).rglob("*.py"))
    assert files, f"no Python files under {folder}/"
    wrong = [
        f"{path.relative_to(REPO_ROOT)}:{line} imports {module}"
        for path in files
        for line, module in _imports(path.read_text(encoding="utf-8"))
        if module.startswith(FORBIDDEN[folder])
    ]
    assert wrong == []


def test_the_rule_sees_lazy_imports() -> None:
    assert _imports("def f():\n    from clicktune.plugin import X\n") == [(2, "clicktune.plugin")]
