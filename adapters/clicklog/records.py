"""Impressions and clicks as validated records: what a search showed, and what a user did with it."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from clicktune.adapters.clicklog.clicks import ClickInput


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ShownResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    doc_id: str
    rank: int = Field(ge=1)
    score: float | None = None
    #: The model whose ranking contributed this document; set on interleaved searches only (the
    #: impression's ``model_version`` is the champion's otherwise).
    model_version: str | None = None
    #: On interleaved searches: the document is in both rankings' common prefix, shown at this rank
    #: whatever the coins said, so a click on it credits neither model (``None`` off interleaving).
    shared: bool | None = None


class Impression(BaseModel):
    """One search: the query, the collection and model version that answered, the ranked results."""

    search_id: str
    query: str
    model_version: str
    collection: str
    results: list[ShownResult]
    user_id: str | None = None
    session_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    #: The alias searched (``collection`` minus ``__<version>`` when not given).
    alias: str | None = None
    #: Set when the search was served as an interleaving of champion and challenger.
    challenge_id: int | None = None


class Click(ClickInput):
    """A stored click: the validated :class:`ClickInput` plus when the log stored it.

    The log reads stored clicks back with ``model_construct`` (no validation): every row was
    validated on the way in, and re-checking each one the miner reads would cost time and let one
    old row (stored before a limit existed) stop all mining.
    """

    created_at: datetime = Field(default_factory=utcnow)


class FeedbackEvent(BaseModel):
    """An impression with the clicks it received: the miner's unit of input."""

    impression: Impression
    clicks: list[Click] = Field(default_factory=list)


ChallengerStatus = Literal["running", "promoted", "dropped"]


class Challenger(BaseModel):
    """One challenger phase: a candidate served interleaved with the champion until a decision.

    Lives in the feedback database so every serving process and the worker see the same phase.
    """

    id: int
    alias: str
    champion_version: str
    challenger_version: str
    champion_collection: str
    challenger_collection: str
    status: ChallengerStatus
    interleave_share: float
    started_at: datetime
    ended_at: datetime | None = None
    offline: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None


class InterleavedSearch(BaseModel):
    """One interleaved search's credit: clicks on each model's contributed documents (clicks on the
    rankings' common prefix credit neither)."""

    search_id: str
    created_at: datetime
    challenger_clicks: int
    champion_clicks: int

    @property
    def outcome(self) -> int:
        """+1 a challenger win, -1 a loss, 0 a tie (no clicks, or as many for each)."""
        return (self.challenger_clicks > self.champion_clicks) - (self.challenger_clicks < self.champion_clicks)


class LockHolder(NamedTuple):
    """A held lease: who, until when (renewals move it) and since when (``None`` for a lock taken
    before feedback schema version 3)."""

    owner: str
    expires_at: datetime
    acquired_at: datetime | None
