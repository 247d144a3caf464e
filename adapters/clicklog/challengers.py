"""Challenger phases in the feedback database: which candidate is being compared online, and its tally.

The phase's state is a row, not process memory, so every serving process (which interleaves) and the
worker (which decides) agree on it; the tally is computed from the impressions and clicks themselves
(each interleaved result records the model that contributed it), so no counter can drift or be lost.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, case, func, insert, select
from sqlalchemy.exc import IntegrityError

from clicktune.adapters.clicklog import schema as tables
from clicktune.adapters.clicklog.records import Challenger, ChallengerStatus, InterleavedSearch, utcnow
from clicktune.adapters.errors import ChallengerRunningError, ConfigurationError


class ChallengerLog:
    """Start, read, tally and end challenger phases (at most one running per alias)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def start(
        self,
        *,
        alias: str,
        champion_version: str,
        challenger_version: str,
        champion_collection: str,
        challenger_collection: str,
        interleave_share: float,
        offline: dict[str, Any],
    ) -> Challenger:
        """Open a phase; :class:`ChallengerRunningError` if the alias already has one running."""
        if not 0.0 < interleave_share <= 1.0:
            raise ConfigurationError(f"interleave_share {interleave_share} must be in (0, 1]")
        row = {
            "alias": alias, "champion_version": champion_version, "challenger_version": challenger_version,
            "champion_collection": champion_collection, "challenger_collection": challenger_collection,
            "status": "running", "interleave_share": interleave_share, "started_at": utcnow(), "offline": offline,
        }
        try:
            with self.engine.begin() as conn:
                new_id = conn.execute(insert(tables.challengers).values(**row).returning(tables.challengers.c.id)).scalar_one()
        except IntegrityError:
            running = self.active(alias)
            raise ChallengerRunningError(
                f"alias {alias!r} already has a running challenger"
                + (f" ({running.challenger_version})" if running else "")
                + "; end it first with `clicktune challenger promote|drop`"
            ) from None
        return Challenger(id=new_id, **row)

    def active(self, alias: str) -> Challenger | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.challengers).where(
                (tables.challengers.c.alias == alias) & (tables.challengers.c.status == "running"))).mappings().first()
        return Challenger.model_validate(dict(row)) if row else None

    def get(self, challenge_id: int) -> Challenger | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.challengers).where(tables.challengers.c.id == challenge_id)).mappings().first()
        return Challenger.model_validate(dict(row)) if row else None

    def history(self, alias: str | None = None, limit: int = 50) -> list[Challenger]:
        query = select(tables.challengers).order_by(tables.challengers.c.id.desc()).limit(limit)
        if alias is not None:
            query = query.where(tables.challengers.c.alias == alias)
        with self.engine.connect() as conn:
            return [Challenger.model_validate(dict(r)) for r in conn.execute(query).mappings()]

    def end(self, challenge_id: int, status: ChallengerStatus, result: dict[str, Any]) -> bool:
        """Close a running phase with its verdict; False if it was no longer running (idempotent)."""
        if status == "running":
            raise ValueError("end() takes a final status: promoted or dropped")
        with self.engine.begin() as conn:
            updated = conn.execute(
                tables.challengers.update()
                .where((tables.challengers.c.id == challenge_id) & (tables.challengers.c.status == "running"))
                .values(status=status, ended_at=utcnow(), result=result)
            ).rowcount
        return updated == 1

    def searches(self, challenger: Challenger, *, until: datetime | None = None) -> list[InterleavedSearch]:
        """Every interleaved search of the phase (oldest first), with the clicks credited to each model.

        A click credits the model whose ranking contributed the clicked document (team-draft credit),
        except on the two rankings' common prefix, where the coin alone chose the team (see
        ``clicktune.plugin.interleaving``); ``until`` leaves out searches too recent for their clicks.
        """
        credited = tables.impression_results.c.model_version
        by_choice = tables.impression_results.c.shared.is_not(True)
        query = (
            select(
                tables.impressions.c.search_id,
                tables.impressions.c.created_at,
                func.coalesce(func.sum(case(((credited == challenger.challenger_version) & by_choice, 1), else_=0)), 0)
                .label("challenger_clicks"),
                func.coalesce(func.sum(case(((credited == challenger.champion_version) & by_choice, 1), else_=0)), 0)
                .label("champion_clicks"),
            )
            .select_from(tables.impressions)
            .outerjoin(tables.clicks, tables.clicks.c.search_id == tables.impressions.c.search_id)
            .outerjoin(tables.impression_results, (tables.impression_results.c.search_id == tables.clicks.c.search_id)
                       & (tables.impression_results.c.doc_id == tables.clicks.c.doc_id))
            .where(tables.impressions.c.challenge_id == challenger.id)
            .group_by(tables.impressions.c.search_id, tables.impressions.c.created_at)
            .order_by(tables.impressions.c.created_at, tables.impressions.c.search_id)
        )
        if until is not None:
            query = query.where(tables.impressions.c.created_at <= until)
        with self.engine.connect() as conn:
            return [InterleavedSearch(search_id=r.search_id, created_at=r.created_at,
                                      challenger_clicks=int(r.challenger_clicks), champion_clicks=int(r.champion_clicks))
                    for r in conn.execute(query)]
