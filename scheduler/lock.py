"""The retrain lease's name: one per alias, shared by the loop and every command that moves the alias.

Its own module, so `clicktune status` can name the lock without importing the loop (and with it the
trainer, the reindexer and LangChain).
"""

from __future__ import annotations

LOCK_NAME = "clicktune-retrain"


def lock_name(alias: str) -> str:
    """One lease per alias: aliases sharing a feedback database retrain independently."""
    return f"{LOCK_NAME}:{alias}"
