"""The feedback database's tables (SQLAlchemy Core), shared by SQLite and PostgreSQL.

``SCHEMA_VERSION`` is stored in ``clicktune_schema``; a change bumps it and :func:`migrate` brings an
older database forward (adding columns is all that has been needed so far, so plain ``ALTER TABLE``
on both backends rather than Alembic).

Version 2 added the challenger phase: ``clicktune_challengers`` (one row per online comparison of a
candidate with the champion), ``impressions.challenge_id`` (the searches served interleaved) and
``impression_results.model_version`` (which model contributed each shown document), plus
``impressions.alias`` so that aliases sharing one database never mix their feedback. Version 3 added
``locks.acquired_at``, so an operator sees since when a lease has been held (renewals move only
``expires_at``). Version 4 added ``impression_results.shared``: the document was in the common prefix
of both interleaved rankings, so a click on it credits neither model (NULL: not interleaved, or
logged before version 4, when such clicks were credited by the coin). Version 5 added the control
plane: ``clicktune_requests`` (commands an operator sends to the loop running in the app, and their
outcomes) and ``clicktune_loops`` (a heartbeat row per loop that serves them); both are new tables,
so ``create_all`` adds them to an older database and there is nothing to migrate in place.

Tables clicktune no longer uses are dropped on open (:data:`RETIRED_TABLES`), without a version bump:
nothing reads them.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    text,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeDecorator

from clicktune.adapters.limits import MAX_DOC_ID_LENGTH, MAX_SESSION_ID_LENGTH, MAX_USER_ID_LENGTH


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


log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
#: Tables of earlier releases that clicktune drops on open. ``clicktune_scheduler_jobs`` was
#: APScheduler's SQLAlchemy job store: its rows are pickles, which the worker unpickled at start (code
#: taken from the database), and the stored job carried every setting, secrets included. The job now
#: lives in memory (scheduler/jobs.py); dropping the table removes the secrets it held.
RETIRED_TABLES = ("clicktune_scheduler_jobs",)
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
    Column("user_id", String(MAX_USER_ID_LENGTH)),
    Column("session_id", String(MAX_SESSION_ID_LENGTH)),
    Column("alias", String(255), index=True),
    Column("challenge_id", Integer, index=True),
)

impression_results = Table(
    "clicktune_impression_results",
    metadata,
    Column("search_id", String(36), ForeignKey("clicktune_impressions.search_id", ondelete="CASCADE"),
           primary_key=True),
    Column("doc_id", String(MAX_DOC_ID_LENGTH), primary_key=True),
    Column("rank", Integer, nullable=False),
    Column("score", Float),
    Column("model_version", String(32)),
    Column("shared", Boolean),
)

clicks = Table(
    "clicktune_clicks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("search_id", String(36), ForeignKey("clicktune_impressions.search_id", ondelete="CASCADE"),
           nullable=False),
    Column("doc_id", String(MAX_DOC_ID_LENGTH), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False, index=True),
    Column("dwell_seconds", Float),
    Column("grade", Integer),
    Column("user_id", String(MAX_USER_ID_LENGTH)),
    UniqueConstraint("search_id", "doc_id", name="uq_clicktune_click"),
)
Index("ix_clicktune_clicks_search", clicks.c.search_id)

locks = Table(
    "clicktune_locks",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
    Column("acquired_at", UTCDateTime()),  # NULL for a lock taken before schema version 3
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

challengers = Table(
    "clicktune_challengers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alias", String(255), nullable=False),
    Column("champion_version", String(32), nullable=False),
    Column("challenger_version", String(32), nullable=False),
    Column("champion_collection", String(255), nullable=False),
    Column("challenger_collection", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("interleave_share", Float, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("ended_at", UTCDateTime()),
    Column("offline", JSON, nullable=False),
    Column("result", JSON),
)
#: At most one running challenger per alias, enforced by the database itself (both backends have
#: partial indexes), so two workers racing to start one cannot both succeed.
Index("uq_clicktune_running_challenger", challengers.c.alias, unique=True,
      sqlite_where=challengers.c.status == "running", postgresql_where=challengers.c.status == "running")

#: When each alias's scheduled loop runs next, as the scheduler running it last wrote: a time and the
#: trigger's description, never code or settings (the job itself lives in the scheduler's memory).
#: Added without a version bump: ``create_all`` adds the table to an older database on open.
schedules = Table(
    "clicktune_schedules",
    metadata,
    Column("alias", String(255), primary_key=True),
    Column("trigger", String(255), nullable=False),
    Column("next_run_at", UTCDateTime()),  # NULL: the job is paused
    Column("updated_at", UTCDateTime(), nullable=False),
)

requests = Table(
    "clicktune_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alias", String(255), nullable=False),
    Column("command", String(32), nullable=False),
    Column("arguments", Text, nullable=False),  # JSON text: the command's plain arguments, nothing else
    Column("status", String(16), nullable=False),
    Column("submitted_at", UTCDateTime(), nullable=False),
    Column("submitted_by", String(255), nullable=False),
    Column("owner", String(255)),  # host:pid:token of the loop that claimed it
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("outcome", Text),  # JSON text: the command's answer, or why it did not finish
)
Index("ix_clicktune_requests_queue", requests.c.alias, requests.c.status, requests.c.id)

loops = Table(
    "clicktune_loops",
    metadata,
    Column("owner", String(255), primary_key=True),
    Column("alias", String(255), nullable=False, index=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("seen_at", UTCDateTime(), nullable=False),
)

_V2_COLUMNS = {
    "clicktune_impressions": {"alias": "VARCHAR(255)", "challenge_id": "INTEGER"},
    "clicktune_impression_results": {"model_version": "VARCHAR(32)"},
}


def migrate(conn: Connection, from_version: int) -> None:
    """Bring a database of an older schema to ``SCHEMA_VERSION`` inside the caller's transaction."""
    if from_version < 2:
        inspector = inspect(conn)
        for table, columns in _V2_COLUMNS.items():
            present = {c["name"] for c in inspector.get_columns(table)}
            for name, sql_type in columns.items():
                if name not in present:
                    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}"))
        # Version-1 rows name their collection ``<alias>__<version>``: the alias is its prefix.
        for row in conn.execute(text("SELECT DISTINCT collection FROM clicktune_impressions WHERE alias IS NULL")):
            alias = row.collection.rsplit("__", 1)[0]
            conn.execute(text("UPDATE clicktune_impressions SET alias = :a WHERE collection = :c AND alias IS NULL"),
                         {"a": alias, "c": row.collection})
        for index in impressions.indexes:
            index.create(conn, checkfirst=True)
    if from_version < 3:
        present = {c["name"] for c in inspect(conn).get_columns("clicktune_locks")}
        if "acquired_at" not in present:
            sql_type = "DATETIME" if conn.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
            conn.execute(text(f"ALTER TABLE clicktune_locks ADD COLUMN acquired_at {sql_type}"))
    if from_version < 4:
        present = {c["name"] for c in inspect(conn).get_columns("clicktune_impression_results")}
        if "shared" not in present:
            conn.execute(text("ALTER TABLE clicktune_impression_results ADD COLUMN shared BOOLEAN"))


def drop_retired_tables(engine: Engine) -> list[str]:
    """Drop every :data:`RETIRED_TABLES` table present; returns their names.

    SQLite overwrites the dropped pages (``secure_delete``) and checkpoints the WAL, so the secrets an
    old job store held leave the file too. A drop the database refuses (PostgreSQL: a table owned by
    another role) is a warning naming what to drop by hand; the table is never read either way.
    """
    present = [name for name in RETIRED_TABLES if inspect(engine).has_table(name)]
    for name in present:
        try:
            with engine.begin() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("PRAGMA secure_delete=ON")
                conn.execute(text(f"DROP TABLE IF EXISTS {name}"))
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("PRAGMA secure_delete=OFF")
        except SQLAlchemyError as exc:
            log.warning("could not drop the retired table %s (%s); drop it by hand: it may hold secrets of an "
                        "earlier release", name, exc)
    if present and engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            raw.close()
    return present
