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


#: Names that spell Qdrant's point layout (payload keys, point ids) and the client calls that read or
#: write points: only ``adapters/qdrant`` may use them; the rest speaks in versions and caller ids.
PAYLOAD_NAMES = {"DOC_ID_KEY", "CONTENT_KEY", "METADATA_KEY", "point_id", "document_from_payload", "build_payload"}
POINT_CALLS = {"scroll", "retrieve", "query_points", "query_batch_points", "upsert", "upload_points"}


def _payload_uses(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("clicktune.adapters.qdrant"):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name in PAYLOAD_NAMES]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in POINT_CALLS:
            found.append((node.lineno, f".{node.func.attr}()"))
    return found


@pytest.mark.parametrize("folder", ["plugin", "scheduler"])
def test_only_the_qdrant_adapter_knows_the_point_layout(folder: str) -> None:
    wrong = [
        f"{path.relative_to(REPO_ROOT)}:{line} uses {name}"
        for path in sorted((REPO_ROOT / folder).rglob("*.py"))
        for line, name in _payload_uses(path.read_text(encoding="utf-8"))
    ]
    assert wrong == []


def test_the_layout_rule_sees_payload_keys_and_point_calls() -> None:
    source = "from clicktune.adapters.qdrant.documents import CONTENT_KEY\nclient.scroll('docs')\n"
    assert _payload_uses(source) == [(1, "CONTENT_KEY"), (2, ".scroll()")]
