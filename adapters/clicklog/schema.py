"""The feedback database's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

``SCHEMA_VERSION`` is stored in ``clicktune_schema``; a later change bumps it and migrates (Alembic
when the first migration is needed) instead of guessing from the tables present.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in and out, whatever the backend (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


SCHEMA_VERSION = 1
metadata = MetaData()

schema_info = Table(
    "clicktune_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
)

impressions = Table(
    "clicktune_impressions",
    metadata,
    Column("search_id", String(36), primary_key=True),
    Column("query", Text, nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, index=True),
    Column("model_version", String(32), nullable=False),
    Column("collection", String(255), nullable=False),
    Column("user_id", String(255)),
    Column("session_id", String(255)),
)

impression_results = Table(
    "clicktune_impression_results",
    metadata,
    Column("search_id", String(36), ForeignKey("clicktune_impressions.search_id", ondelete="CASCADE"),
           primary_key=True),
    Column("doc_id", String(512), primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("score", Float),
)

clicks = Table(
    "clicktune_clicks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("search_id", String(36), ForeignKey("clicktune_impressions.search_id", ondelete="CASCADE"),
           nullable=False),
    Column("doc_id", String(512), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, index=True),
    Column("dwell_seconds", Float),
    Column("grade", Integer),
    Column("user_id", String(255)),
    UniqueConstraint("search_id", "doc_id", name="uq_clicktune_click"),
)
Index("ix_clicktune_clicks_search", clicks.c.search_id)

locks = Table(
    "clicktune_locks",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

runs = Table(
    "clicktune_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("started_at", UTCDateTime(), nullable=False, index=True),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("status", String(32), nullable=False),
    Column("outcome", JSON, nullable=False),
)
