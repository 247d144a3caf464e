"""Each alias's next scheduled run, for `clicktune status` and for a restarted scheduler.

The scheduled job lives in the scheduler's memory (scheduler/jobs.py): a job store that persisted it
would persist code (APScheduler pickles jobs) and settings (secrets included). What other processes
need from it is a time, so that is all this table holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from clicktune.adapters.clicklog import schema as tables
from clicktune.adapters.clicklog.records import utcnow


@dataclass(frozen=True)
class ScheduledRun:
    """The alias's schedule as its scheduler last wrote it: ``next_run_at`` None = paused."""

    alias: str
    trigger: str
    next_run_at: datetime | None
    updated_at: datetime


class ScheduleLog:
    """Read and write ``clicktune_schedules`` (one row per alias)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record(self, alias: str, trigger: str, next_run_at: datetime | None) -> None:
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(tables.schedules).values(alias=alias, trigger=trigger[:255], next_run_at=next_run_at,
                                                       updated_at=utcnow())
        stmt = stmt.on_conflict_do_update(index_elements=["alias"], set_={
            "trigger": stmt.excluded.trigger, "next_run_at": stmt.excluded.next_run_at,
            "updated_at": stmt.excluded.updated_at})
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def get(self, alias: str) -> ScheduledRun | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.schedules).where(tables.schedules.c.alias == alias)).first()
        return ScheduledRun(row.alias, row.trigger, row.next_run_at, row.updated_at) if row else None
