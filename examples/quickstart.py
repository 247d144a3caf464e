"""Run the README's LangChain quickstart block as written, on the embedded defaults (``./.clicktune``).

It indexes three documents, runs two searches and prints what they return; nothing is trained.
``tests/test_readme.py`` runs this script on a fresh home. The whole loop (SciFact, simulated clicks,
training, challenger phase, report) is ``make demo``, which runs ``examples/demo.py``.

The quickstart code itself lives in README.md, so the README and this script can never drift apart:
this file extracts the first ``python`` block under "Quickstart" and executes it.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_code(readme: Path = README) -> str:
    text = readme.read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    if match is None:
        raise SystemExit("README.md has no ```python block under '## Quickstart'")
    return match.group(1)


if __name__ == "__main__":
    code = quickstart_code()
    print("Running the README quickstart:\n" + code, file=sys.stderr)
    exec(compile(code, str(README), "exec"), {"__name__": "__quickstart__"})
