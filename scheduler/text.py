"""Small wording helpers for what the operator reads (CLI output, run reasons)."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 click"``, ``"2 clicks"``, ``"0 clicks"``: the count with its noun in the right number."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
