"""The control plane's queue: commands an operator sends to the loop running in the app, and their outcomes.

With embedded Qdrant only the app's process can open the Qdrant folder, so a command that needs it
(``clicktune retrain``, ``rollback``, ...) cannot run in another shell. The feedback database is
the one thing both processes open, so it carries the command: the CLI inserts a ``pending`` row,
the app's loop claims it, runs it under its own lease and writes the answer back, and the CLI,
polling the row, prints it. Authority is the database access the operator already has: no port,
no credential of its own.

A row holds a command name and its plain arguments only (never code, settings or secrets), so a
row cannot make the loop do anything a command line could not. Its life is ``pending -> running
(owner, started_at) -> done | failed | skipped``: claiming is one compare-and-set ``UPDATE ...
WHERE status = 'pending'``, so two loops never both run a request; only the owner may finish it.
A request found ``running`` whose owner died is marked ``failed`` (interrupted) and never re-run:
a retrain or a rollback is not idempotent (running a rollback twice goes back two versions).

``clicktune_loops`` holds one heartbeat row per loop serving requests: the CLI sends a request
only when a fresh one exists for its alias, and a waiting CLI sees its executor die.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Engine, insert, select

from clicktune.adapters.clicklog import schema as tables
from clicktune.adapters.clicklog.records import utcnow

RequestCommand = Literal[
    "retrain", "rollback", "reindex", "repair", "challenger-promote", "challenger-drop", "eval", "status"]
RequestStatus = Literal["pending", "running", "done", "failed", "skipped"]
FINAL_STATUSES: frozenset[str] = frozenset({"done", "failed", "skipped"})
#: A plain argument: what a command line can hold.
PlainValue = str | int | float | bool | None


class ControlRequest(BaseModel):
    """One command sent to the loop: what to run, who sent it, who runs it, and how it ended."""

    id: int
    alias: str
    command: RequestCommand
    arguments: dict[str, PlainValue] = Field(default_factory=dict)
    status: RequestStatus
    submitted_at: datetime
    submitted_by: str
    owner: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    #: JSON text: the command's answer (``done``/``failed``), or why it never ran or did not finish.
    outcome: str | None = None

    @field_validator("arguments", mode="before")
    @classmethod
    def _from_json(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES


class LoopBeat(BaseModel):
    """A loop serving requests for an alias, as its last heartbeat left it."""

    owner: str
    alias: str
    host: str
    pid: int
    started_at: datetime
    seen_at: datetime


class RequestLog:
    """Submit, claim, finish and read control requests; record and read loops' heartbeats."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # Requests ----------------------------------------------------------------------------------
    def submit(self, alias: str, command: RequestCommand, arguments: dict[str, PlainValue], *,
               submitted_by: str) -> ControlRequest:
        """Queue a command as ``pending``; the arguments must be plain values (checked here)."""
        row = {"alias": alias, "command": command, "status": "pending", "submitted_at": utcnow(),
               "submitted_by": submitted_by}
        checked = ControlRequest(id=0, arguments=arguments, **row)  # refuses a command or argument it cannot hold
        with self.engine.begin() as conn:
            new_id = conn.execute(insert(tables.requests).values(arguments=json.dumps(checked.arguments), **row)
                                  .returning(tables.requests.c.id)).scalar_one()
        return checked.model_copy(update={"id": new_id})

    def get(self, request_id: int) -> ControlRequest | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.requests).where(tables.requests.c.id == request_id)).mappings().first()
        return ControlRequest.model_validate(dict(row)) if row else None

    def claim(self, alias: str, owner: str, commands: Collection[str]) -> ControlRequest | None:
        """The oldest pending request of ``alias`` among ``commands``, now ``running`` under ``owner``.

        Compare-and-set: the ``UPDATE`` only matches a row still ``pending``, so of two loops
        claiming at once exactly one gets it; the other moves on to the next row.
        """
        t = tables.requests
        while True:
            with self.engine.connect() as conn:
                ids = list(conn.execute(select(t.c.id).where(
                    (t.c.alias == alias) & (t.c.status == "pending") & t.c.command.in_(list(commands)))
                    .order_by(t.c.id).limit(5)).scalars())
            if not ids:
                return None
            for request_id in ids:
                with self.engine.begin() as conn:
                    won = conn.execute(t.update().where((t.c.id == request_id) & (t.c.status == "pending"))
                                       .values(status="running", owner=owner, started_at=utcnow())).rowcount == 1
                if won:
                    return self.get(request_id)

    def finish(self, request_id: int, owner: str, status: Literal["done", "failed"], outcome: str) -> bool:
        """Record the outcome; False if ``owner`` no longer runs it (it was declared interrupted)."""
        t = tables.requests
        with self.engine.begin() as conn:
            return conn.execute(t.update().where(
                (t.c.id == request_id) & (t.c.status == "running") & (t.c.owner == owner))
                .values(status=status, finished_at=utcnow(), outcome=outcome)).rowcount == 1

    def cancel(self, request_id: int, reason: str) -> bool:
        """``pending`` -> ``skipped`` (nobody waits for it any more); False if a loop already claimed it."""
        t = tables.requests
        with self.engine.begin() as conn:
            return conn.execute(t.update().where((t.c.id == request_id) & (t.c.status == "pending"))
                                .values(status="skipped", finished_at=utcnow(),
                                        outcome=json.dumps({"reason": reason}))).rowcount == 1

    def interrupt(self, request_id: int, owner: str, reason: str) -> bool:
        """``running`` under ``owner`` -> ``failed``: its owner died before finishing it (never re-run)."""
        t = tables.requests
        with self.engine.begin() as conn:
            return conn.execute(t.update().where(
                (t.c.id == request_id) & (t.c.status == "running") & (t.c.owner == owner))
                .values(status="failed", finished_at=utcnow(),
                        outcome=json.dumps({"interrupted": True, "reason": reason}))).rowcount == 1

    def running(self, alias: str) -> list[ControlRequest]:
        t = tables.requests
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where((t.c.alias == alias) & (t.c.status == "running"))
                                .order_by(t.c.id)).mappings().all()
        return [ControlRequest.model_validate(dict(r)) for r in rows]

    def recent(self, alias: str, limit: int = 5) -> list[ControlRequest]:
        """The newest requests of ``alias``, newest first."""
        t = tables.requests
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.alias == alias).order_by(t.c.id.desc()).limit(limit)).mappings()
            return [ControlRequest.model_validate(dict(r)) for r in rows]

    def prune(self, alias: str, *, older_than: timedelta, commands: Collection[str] | None = None) -> int:
        """Delete finished requests of ``alias`` submitted before ``older_than`` ago (only ``commands``)."""
        t = tables.requests
        where = ((t.c.alias == alias) & t.c.status.in_(sorted(FINAL_STATUSES))
                 & (t.c.submitted_at < utcnow() - older_than))
        if commands is not None:
            where &= t.c.command.in_(list(commands))
        with self.engine.begin() as conn:
            return conn.execute(t.delete().where(where)).rowcount

    # Heartbeats ----------------------------------------------------------------------------------
    def beat(self, owner: str, alias: str, host: str, pid: int) -> None:
        """Say that ``owner`` serves ``alias``'s requests now (insert or refresh its row)."""
        now = utcnow()
        t = tables.loops
        with self.engine.begin() as conn:
            if conn.execute(t.update().where(t.c.owner == owner).values(seen_at=now)).rowcount == 0:
                conn.execute(insert(t).values(owner=owner, alias=alias, host=host, pid=pid, started_at=now,
                                              seen_at=now))

    def leave(self, owner: str) -> None:
        """A loop stopping cleanly takes its row away: the CLI then knows at once that nothing serves."""
        with self.engine.begin() as conn:
            conn.execute(tables.loops.delete().where(tables.loops.c.owner == owner))

    def loops(self, alias: str, *, seen_within: float | None = None) -> list[LoopBeat]:
        """Loops with a heartbeat row for ``alias`` (only those seen in the last ``seen_within`` s)."""
        t = tables.loops
        query = select(t).where(t.c.alias == alias).order_by(t.c.seen_at.desc())
        if seen_within is not None:
            query = query.where(t.c.seen_at >= utcnow() - timedelta(seconds=seen_within))
        with self.engine.connect() as conn:
            return [LoopBeat.model_validate(dict(r)) for r in conn.execute(query).mappings()]
