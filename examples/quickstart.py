"""Run every ``python`` block of the README, in order, as one program, on the embedded defaults.

The blocks build on each other (the quickstart's ``store`` is the one clicks are reported on), so they
share one namespace, the way a reader pastes them into one interpreter. They index three
documents, search, report a click, build the click endpoint, start and stop the background loop;
nothing is trained. ``tests/test_readme.py`` runs this script on a fresh home. The whole loop
(SciFact, simulated clicks, training, challenger phase, report) is ``make demo``.

The code lives in README.md only, so the README and what is tested can never drift apart.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def readme_blocks(readme: Path = README) -> list[str]:
    """Every fenced ``python`` block of the README, in order."""
    blocks = BLOCK.findall(readme.read_text(encoding="utf-8"))
    if not blocks:
        raise SystemExit(f"{readme} has no ```python block")
    return blocks


def run_blocks(blocks: list[str], filename: str = str(README)) -> dict[str, object]:
    """Execute ``blocks`` in one namespace; a failing block is named in the error."""
    namespace: dict[str, object] = {"__name__": "__readme__"}
    for number, code in enumerate(blocks, 1):
        print(f"README python block {number}:\n{code}", file=sys.stderr)
        try:
            exec(compile(code, f"{filename} (python block {number})", "exec"), namespace)
        except Exception as exc:
            raise RuntimeError(f"README python block {number} failed: {type(exc).__name__}: {exc}") from exc
    return namespace


if __name__ == "__main__":
    run_blocks(readme_blocks())
