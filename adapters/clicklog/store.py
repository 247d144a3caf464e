"""The click log: impressions, clicks, the retrain lock and run history, on SQLAlchemy 2.

SQLite (the embedded default) runs in WAL mode with a busy timeout and takes write transactions with
``BEGIN IMMEDIATE``, so several processes on one machine queue for the write lock instead of failing
with "database is locked". Any other SQLAlchemy URL (PostgreSQL) works unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, case, create_engine, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from clicktune.adapters.clicklog import schema as tables
from clicktune.adapters.clicklog.challengers import ChallengerLog
from clicktune.adapters.clicklog.clicks import ClickInput, parse_clicks
from clicktune.adapters.clicklog.owners import owner_is_gone
from clicktune.adapters.clicklog.records import (
    Click,
    FeedbackEvent,
    Impression,
    LockHolder,
    ShownResult,
    utcnow,
)
from clicktune.adapters.clicklog.requests import RequestLog
from clicktune.adapters.clicklog.schedules import ScheduleLog
from clicktune.adapters.clicklog.sqlite import sqlite_engine
from clicktune.adapters.errors import (
    ClickWindowExpiredError,
    ConfigurationError,
    DocNotShownError,
    FeedbackError,
    UnknownSearchError,
)
from clicktune.adapters.limits import (
    check_doc_id,
    check_query,
    check_search_id,
    check_session_id,
    check_user_id,
)
from clicktune.adapters.observability.counters import CLICKS, count_clicks
from clicktune.adapters.permissions import OWNER_ONLY, FileModes
from clicktune.adapters.settings import ClicktuneSettings

log = logging.getLogger(__name__)


class ClickLog:
    """Everything the loop remembers between runs, in one database."""

    def __init__(
        self, url: str, *, click_window: timedelta = timedelta(days=7), max_grade: int = 3,
        modes: FileModes = OWNER_ONLY,
    ) -> None:
        """``modes``: the permission bits of a SQLite file (and its folders) this creates."""
        try:
            backend = make_url(url).get_backend_name()
        except Exception as exc:  # noqa: BLE001 - sqlalchemy raises several types for bad URLs
            raise ConfigurationError(f"feedback_url {url!r} is not a SQLAlchemy URL: {exc}") from exc
        self.url = url
        self.engine = sqlite_engine(url, modes) if backend == "sqlite" else create_engine(url, pool_pre_ping=True)
        self.dialect = self.engine.dialect.name
        self.click_window = click_window
        self.max_grade = max_grade
        self._create_schema()
        #: The challenger phases of every alias (same database, same engine).
        self.challengers = ChallengerLog(self.engine)
        #: Each alias's next scheduled run (the job itself lives in the scheduler's memory).
        self.schedules = ScheduleLog(self.engine)
        #: The control plane's requests and the loops serving them (same database, same engine).
        self.requests = RequestLog(self.engine)

    @classmethod
    def from_settings(cls, settings: ClicktuneSettings) -> ClickLog:
        return cls(
            settings.resolved_feedback_url,
            click_window=timedelta(seconds=settings.feedback.click_window_seconds),
            max_grade=settings.feedback.max_grade,
            modes=settings.file_modes,
        )

    def _create_schema(self) -> None:
        tables.metadata.create_all(self.engine)
        tables.drop_retired_tables(self.engine)
        with self.engine.begin() as conn:
            version = conn.execute(select(tables.schema_info.c.version).where(tables.schema_info.c.id == 1)).scalar()
            if version is None:
                self._insert_ignore(conn, tables.schema_info, [{"id": 1, "version": tables.SCHEMA_VERSION}], ["id"])
            elif version < tables.SCHEMA_VERSION:
                tables.migrate(conn, version)
                conn.execute(tables.schema_info.update().where(tables.schema_info.c.id == 1).values(version=tables.SCHEMA_VERSION))
            elif version > tables.SCHEMA_VERSION:
                raise ConfigurationError(
                    f"feedback database {self.url} has schema {version}, newer than this clicktune "
                    f"({tables.SCHEMA_VERSION}): upgrade clicktune"
                )

    def _insert_ignore(self, conn: Connection, table: Any, rows: list[dict], keys: list[str]) -> int:
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        stmt = dialect.insert(table).values(rows).on_conflict_do_nothing(index_elements=keys)
        # RETURNING, not rowcount: drivers disagree on rowcount for multi-row and conflicting inserts.
        return len(conn.execute(stmt.returning(table.c[keys[0]])).all())

    def close(self) -> None:
        self.engine.dispose()

    # Impressions -------------------------------------------------------------------------------
    def log_impression(self, impression: Impression) -> None:
        """Store one search; an id the columns cannot hold is refused the same on every backend."""
        check_search_id(impression.search_id)
        check_query(impression.query)
        check_user_id(impression.user_id)
        check_session_id(impression.session_id)
        for result in impression.results:
            check_doc_id(result.doc_id, what=f"document id (rank {result.rank})")
        with self.engine.begin() as conn:
            conn.execute(insert(tables.impressions).values(
                search_id=impression.search_id, query=impression.query, created_at=impression.created_at,
                model_version=impression.model_version, collection=impression.collection,
                user_id=impression.user_id, session_id=impression.session_id,
                alias=impression.alias or impression.collection.rsplit("__", 1)[0],
                challenge_id=impression.challenge_id,
            ))
            if impression.results:
                conn.execute(insert(tables.impression_results), [
                    {"search_id": impression.search_id, "doc_id": r.doc_id, "rank": r.rank, "score": r.score,
                     "model_version": r.model_version, "shared": r.shared}
                    for r in impression.results
                ])

    def get_impression(self, search_id: str) -> Impression | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.impressions).where(tables.impressions.c.search_id == search_id)).mappings().first()
            if row is None:
                return None
            results = conn.execute(
                select(tables.impression_results).where(tables.impression_results.c.search_id == search_id)
                .order_by(tables.impression_results.c.rank)
            ).mappings().all()
        return _impression(row, results)

    # Clicks ------------------------------------------------------------------------------------
    def record_click(
        self,
        search_id: str,
        doc_id: str,
        *,
        dwell_seconds: float | None = None,
        grade: int | None = None,
        user_id: str | None = None,
        dwell: float | None = None,
        user: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Store one click; True if new, False if this (search, doc) click was already stored.

        ``dwell`` and ``user`` are the older names of ``dwell_seconds`` and ``user_id``; give one of each.
        """
        fields = {"dwell_seconds": dwell_seconds, "dwell": dwell, "grade": grade, "user_id": user_id, "user": user}
        click = {"search_id": search_id, "doc_id": doc_id, **{k: v for k, v in fields.items() if v is not None}}
        return self.record_clicks([click], now=now)[0]

    def record_clicks(
        self, clicks: Iterable[ClickInput | Mapping[str, Any]], *, now: datetime | None = None,
    ) -> list[bool]:
        """All or nothing: every click is validated (:class:`ClickInput`) before any is written; one bad
        click stores none. Mappings use ``ClickInput``'s field names or their older aliases.

        A click is stored as the user its search was logged with (``similarity_search(user_id=...)``,
        set by the app), whatever ``user_id`` the click carries: a click body is written by the
        browser, so a user id in it is a claim anyone can forge, and the miner's per-user cap would
        count a forger as whoever it claimed to be, or as a fresh user per click. A differing
        ``user_id`` is ignored rather than refused: the browser that sent it cannot act on a refusal,
        refusing would lose honest clicks of apps that log searches without a user but beacon one, and
        either way a forger gains nothing (docs/ARCHITECTURE.md invariant 17). Every door a click comes
        in by (``record_click``, ``POST /clicks``) ends here, so the clicks counter is kept here.
        """
        try:
            stored = self._record_clicks(clicks, now=now)
        except FeedbackError:
            CLICKS.labels("refused").inc()
            raise
        except Exception:
            CLICKS.labels("failed").inc()  # the database, not the click: the caller may retry
            raise
        count_clicks(stored)
        return stored

    def _record_clicks(self, clicks: Iterable[ClickInput | Mapping[str, Any]], *, now: datetime | None) -> list[bool]:
        now = now or utcnow()
        batch = parse_clicks(clicks, max_grade=self.max_grade)
        stored: list[bool] = []
        with self.engine.begin() as conn:
            search_ids = sorted({c.search_id for c in batch})
            logged = conn.execute(
                select(tables.impressions.c.search_id, tables.impressions.c.created_at, tables.impressions.c.user_id)
                .where(tables.impressions.c.search_id.in_(search_ids))).all()
            found = {r.search_id: r.created_at for r in logged}
            searcher = {r.search_id: r.user_id for r in logged}
            shown: dict[str, set[str]] = {}
            for r in conn.execute(select(tables.impression_results.c.search_id, tables.impression_results.c.doc_id)
                                  .where(tables.impression_results.c.search_id.in_(search_ids))):
                shown.setdefault(r.search_id, set()).add(r.doc_id)
            for i, click in enumerate(batch):
                prefix = f"click {i}: " if len(batch) > 1 else ""
                created = found.get(click.search_id)
                if created is None:
                    raise UnknownSearchError(f"{prefix}no search {click.search_id} was logged; pass the "
                                             "metadata['clicktune']['search_id'] of a result this app returned")
                if click.doc_id not in shown.get(click.search_id, set()):
                    raise DocNotShownError(f"{prefix}document {click.doc_id!r} was not shown by search "
                                           f"{click.search_id}; pass the Document.id of one of its results")
                if now - created > self.click_window:
                    raise ClickWindowExpiredError(
                        f"{prefix}search {click.search_id} is {now - created} old, past the click window of "
                        f"{self.click_window}; late clicks are not trusted as feedback"
                    )
            for click in batch:
                inserted = self._insert_ignore(conn, tables.clicks, [{
                    "search_id": click.search_id, "doc_id": click.doc_id, "created_at": now,
                    "dwell_seconds": click.dwell_seconds, "grade": click.grade,
                    "user_id": searcher[click.search_id],  # the search's user, never the click's (below)
                }], ["search_id", "doc_id"])
                stored.append(inserted == 1)
        return stored

    def count_clicks(self, since: datetime | None = None, *, alias: str | None = None) -> int:
        """Clicks stored after ``since``; with ``alias``, only clicks on that alias's searches."""
        query = select(func.count()).select_from(tables.clicks)
        if alias is not None:
            query = query.join(tables.impressions, tables.impressions.c.search_id == tables.clicks.c.search_id).where(
                tables.impressions.c.alias == alias)
        if since is not None:
            query = query.where(tables.clicks.c.created_at > since)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def iter_feedback(
        self, since: datetime | None = None, until: datetime | None = None, *, chunk: int = 1000,
        alias: str | None = None,
    ) -> Iterator[FeedbackEvent]:
        """Impressions in the window (by search time), each with its results and clicks, oldest first.

        With ``alias``, only that alias's searches: aliases sharing one database never train on each
        other's clicks (a document id may exist under both).
        """
        last: tuple[datetime, str] | None = None
        while True:
            query = select(tables.impressions).order_by(tables.impressions.c.created_at, tables.impressions.c.search_id).limit(chunk)
            if alias is not None:
                query = query.where(tables.impressions.c.alias == alias)
            if since is not None:
                query = query.where(tables.impressions.c.created_at >= since)
            if until is not None:
                query = query.where(tables.impressions.c.created_at < until)
            if last is not None:
                query = query.where(
                    (tables.impressions.c.created_at > last[0])
                    | ((tables.impressions.c.created_at == last[0]) & (tables.impressions.c.search_id > last[1]))
                )
            with self.engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
                if not rows:
                    return
                ids = [r["search_id"] for r in rows]
                results: dict[str, list] = {}
                for r in conn.execute(select(tables.impression_results).where(tables.impression_results.c.search_id.in_(ids))
                                      .order_by(tables.impression_results.c.rank)).mappings():
                    results.setdefault(r["search_id"], []).append(r)
                clicks: dict[str, list[Click]] = {}
                for c in conn.execute(select(tables.clicks).where(tables.clicks.c.search_id.in_(ids))
                                      .order_by(tables.clicks.c.created_at, tables.clicks.c.id)).mappings():
                    clicks.setdefault(c["search_id"], []).append(Click.model_construct(
                        search_id=c["search_id"], doc_id=c["doc_id"], dwell_seconds=c["dwell_seconds"],
                        grade=c["grade"], user_id=c["user_id"], created_at=c["created_at"]))
            for row in rows:
                yield FeedbackEvent(impression=_impression(row, results.get(row["search_id"], [])),
                                    clicks=clicks.get(row["search_id"], []))
            last = (rows[-1]["created_at"], rows[-1]["search_id"])

    def stats(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {
                "impressions": int(conn.execute(select(func.count()).select_from(tables.impressions)).scalar() or 0),
                "clicks": int(conn.execute(select(func.count()).select_from(tables.clicks)).scalar() or 0),
            }

    def window_counts(self, since: datetime | None = None, *, alias: str | None = None) -> dict[str, int]:
        """Searches logged since ``since`` and the clicks on them: the window the miner reads (by search
        time, as :meth:`iter_feedback`), so an operator sees how much feedback the next run has."""
        searches = select(tables.impressions.c.search_id)
        if alias is not None:
            searches = searches.where(tables.impressions.c.alias == alias)
        if since is not None:
            searches = searches.where(tables.impressions.c.created_at >= since)
        searches = searches.subquery()
        with self.engine.connect() as conn:
            impressions = conn.execute(select(func.count()).select_from(searches)).scalar()
            clicks = conn.execute(select(func.count()).select_from(tables.clicks).where(
                tables.clicks.c.search_id.in_(select(searches.c.search_id)))).scalar()
        return {"impressions": int(impressions or 0), "clicks": int(clicks or 0)}

    # The retrain lock (a lease) ------------------------------------------------------------------
    def acquire_lock(self, name: str, owner: str, lease_seconds: float) -> bool:
        """Take ``name`` if free, expired, already ours, or held by a process of this host that is gone
        (:func:`~.owners.owner_is_gone`: a SIGKILLed command); one atomic statement on either backend."""
        if self._upsert_lock(name, owner, lease_seconds):
            return True
        with self.engine.connect() as conn:
            holder = conn.execute(select(tables.locks.c.owner).where(tables.locks.c.name == name)).scalar()
        if holder is None or not owner_is_gone(holder):
            return False
        now = utcnow()
        with self.engine.begin() as conn:  # only if the dead holder still has it: one taker wins
            taken = conn.execute(
                tables.locks.update().where((tables.locks.c.name == name) & (tables.locks.c.owner == holder))
                .values(owner=owner, acquired_at=now, expires_at=now + timedelta(seconds=lease_seconds))
            ).rowcount == 1
        if taken:
            log.warning("took over the lock %r from %s: that process is gone", name, holder)
        return taken

    def _upsert_lock(self, name: str, owner: str, lease_seconds: float) -> bool:
        now = utcnow()
        dialect = postgresql if self.dialect == "postgresql" else sqlite
        stmt = dialect.insert(tables.locks).values(name=name, owner=owner, acquired_at=now,
                                                   expires_at=now + timedelta(seconds=lease_seconds))
        # The holder re-taking its own lock keeps the time it first took it.
        keep_since = case((tables.locks.c.owner == stmt.excluded.owner, tables.locks.c.acquired_at),
                          else_=stmt.excluded.acquired_at)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at, "acquired_at": keep_since},
            where=(tables.locks.c.expires_at < now) | (tables.locks.c.owner == owner),
        ).returning(tables.locks.c.owner)
        with self.engine.begin() as conn:
            return conn.execute(stmt).scalar() == owner

    def renew_lock(self, name: str, owner: str, lease_seconds: float) -> bool:
        with self.engine.begin() as conn:
            updated = conn.execute(
                tables.locks.update().where((tables.locks.c.name == name) & (tables.locks.c.owner == owner))
                .values(expires_at=utcnow() + timedelta(seconds=lease_seconds))
            ).rowcount
        return updated == 1

    def release_lock(self, name: str, owner: str) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(
                tables.locks.delete().where((tables.locks.c.name == name) & (tables.locks.c.owner == owner))
            ).rowcount == 1

    def lock_holder(self, name: str) -> LockHolder | None:
        """Who holds ``name`` now, until when, and since when (``None`` when free or expired)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(tables.locks.c.owner, tables.locks.c.expires_at, tables.locks.c.acquired_at)
                               .where(tables.locks.c.name == name)).first()
        return LockHolder(row.owner, row.expires_at, row.acquired_at) if row and row.expires_at > utcnow() else None

    # Run history ---------------------------------------------------------------------------------
    def record_run(self, started_at: datetime, outcome: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(tables.runs).values(started_at=started_at, finished_at=utcnow(),
                                               status=str(outcome.get("status")), outcome=dict(outcome)))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tables.runs).order_by(tables.runs.c.id.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def last_run(self, *, attempted_only: bool = True) -> dict[str, Any] | None:
        """The latest run that did work: skipped and locked runs, and a rollback or a re-index made by
        hand (they train nothing), don't reset the count of new clicks."""
        query = select(tables.runs).order_by(tables.runs.c.id.desc()).limit(1)
        if attempted_only:
            query = query.where(tables.runs.c.status.notin_(["skipped", "locked", "rolled_back", "reindexed"]))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return dict(row) if row else None


def _impression(row: Mapping[str, Any], results: Iterable[Mapping[str, Any]]) -> Impression:
    return Impression(
        search_id=row["search_id"], query=row["query"], model_version=row["model_version"],
        collection=row["collection"], user_id=row["user_id"], session_id=row["session_id"],
        created_at=row["created_at"], alias=row["alias"], challenge_id=row["challenge_id"],
        results=[ShownResult(doc_id=r["doc_id"], rank=r["rank"], score=r["score"], model_version=r["model_version"],
                             shared=r["shared"])
                 for r in results],
    )

