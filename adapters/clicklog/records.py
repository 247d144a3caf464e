"""Impressions and clicks as validated records: what a search showed, and what a user did with it."""

from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ShownResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    doc_id: str
    rank: int = Field(ge=1)
    score: float | None = None


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


class Click(BaseModel):
    search_id: str
    doc_id: str
    dwell_seconds: float | None = None
    grade: int | None = None
    user_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class FeedbackEvent(BaseModel):
    """An impression with the clicks it received: the miner's unit of input."""

    impression: Impression
    clicks: list[Click] = Field(default_factory=list)
