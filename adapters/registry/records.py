"""What the registry writes to disk, as validated records (so a hand-edited file fails loudly)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: ``rejected``: refused by the offline check, before any user saw it; ``dropped``: it lost (or could
#: not finish) its challenger phase, after users saw it; ``failed``: its training or build broke.
VersionStatus = Literal["candidate", "challenger", "live", "retired", "rejected", "dropped", "failed"]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class VersionInfo(BaseModel):
    """``models/<version>/clicktune.json``: where a version came from and what became of it."""

    model_config = ConfigDict(extra="allow")

    version: str
    parent: str | None = None
    base_model: str
    created_at: datetime = Field(default_factory=utcnow)
    status: VersionStatus = "candidate"
    embedding_dim: int | None = None
    max_seq_length: int | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    decisions: list[dict[str, Any]] = Field(default_factory=list)
    #: When it last went live, and CURRENT's history then: what ``clicktune repair`` rebuilds CURRENT from.
    promoted_at: datetime | None = None
    promoted_history: list[str] | None = None
    #: It last went live by a rollback (so CURRENT's ``rollback_ready`` is False; repair keeps that).
    live_by_rollback: bool = False


class CurrentPointer(BaseModel):
    """``CURRENT``: the live version plus the stack of earlier live ones, so rollback needs no guess.

    One file, replaced with ``os.replace``, so readers see either the old or the new pointer whole.
    """

    version: str
    history: list[str] = Field(default_factory=list)
    promoted_at: datetime = Field(default_factory=utcnow)
    #: False once a rollback made ``version`` live: the version before it left service earlier and its
    #: collection has missed every write since, so serving it again would lose them. A promotion makes
    #: it True again (the version it replaces was live, hence complete, up to that moment).
    rollback_ready: bool = True

    @property
    def previous(self) -> str | None:
        return self.history[-1] if self.history else None
