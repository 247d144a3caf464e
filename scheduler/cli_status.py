"""What ``clicktune status`` reads and prints: read-only, and it creates nothing.

Opening the embedded parts the usual way creates them (the Qdrant folder, the registry's folders, the
SQLite file and its tables), so a misspelled ``--home`` used to get an empty setup and empty tables
with exit code 0. Here each local part is opened only if it is already there; when none is, the
command says so in one line and exits 1 (``NothingHereError``). A Qdrant server or a non-SQLite
feedback database is always asked: whether it is there is what the answer says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import make_url

from clicktune.adapters.settings import ClicktuneSettings
from clicktune.scheduler.cli_errors import NothingHereError
from clicktune.scheduler.text import counted

if TYPE_CHECKING:
    from rich.console import Console

    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.qdrant import AliasedCollections
    from clicktune.adapters.registry import ModelRegistry


@dataclass(frozen=True)
class HomeParts:
    """Which parts of a setup exist where the settings point; a server part always counts as there."""

    qdrant: bool
    registry: bool
    feedback: bool

    @classmethod
    def of(cls, settings: ClicktuneSettings) -> HomeParts:
        path = settings.resolved_qdrant_path
        if path is not None and path != ":memory:":
            from clicktune.adapters.qdrant.migration import finish_interrupted_migration

            finish_interrupted_migration(Path(path).expanduser().resolve())  # as opening the home would
        qdrant = path is None or (path != ":memory:" and Path(path).expanduser().is_dir())
        url = make_url(settings.resolved_feedback_url)
        if url.get_backend_name() == "sqlite":
            feedback = bool(url.database) and url.database != ":memory:" and Path(url.database).expanduser().is_file()
        else:
            feedback = True
        return cls(qdrant=qdrant, registry=settings.resolved_registry_dir.is_dir(), feedback=feedback)

    @property
    def missing(self) -> list[str]:
        return [name for name in ("qdrant", "registry", "feedback") if not getattr(self, name)]


def require_setup(settings: ClicktuneSettings) -> HomeParts:
    """The parts that exist; :class:`NothingHereError` (exit 1) when none does."""
    parts = HomeParts.of(settings)
    if len(parts.missing) < 3:
        return parts
    home = settings.home.expanduser().resolve()
    where = f"clicktune home {home}" + ("" if home.is_dir() else " (no such folder)")
    raise NothingHereError(
        f"nothing at {where}: no Qdrant folder {settings.resolved_qdrant_path}, no model registry "
        f"{settings.resolved_registry_dir} and no feedback database {settings.resolved_feedback_url}; pass the "
        "home your app uses with --home or CLICKTUNE_HOME (relative paths start from the current folder)"
    )


def status_data(settings: ClicktuneSettings, *, timeout: float = 30.0) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-ready data; reads only the parts that exist.

    When another process holds the embedded Qdrant folder, the Qdrant part comes from that process's
    loop (a ``status`` request, answered in about ``request_poll_seconds``) if one serves; else it
    stays empty and ``unread`` says why, and everything else is read as usual.
    """
    parts = require_setup(settings)  # before importing the Qdrant client: a wrong home fails at once
    from clicktune.adapters.clicklog import ClickLog
    from clicktune.adapters.qdrant import (
        AliasedCollections,
        EmbeddedFolderInUseError,
        qdrant_client_from_settings,
    )
    from clicktune.adapters.registry import ModelRegistry

    alias = settings.collection_alias
    registry = ModelRegistry.from_settings(settings) if parts.registry else None
    unread: dict[str, str] = {}
    try:
        client = qdrant_client_from_settings(settings) if parts.qdrant else None
    except EmbeddedFolderInUseError as held:
        client, unread["qdrant"] = None, str(held)
    collections = AliasedCollections(client, alias) if client is not None else None
    log = ClickLog.from_settings(settings) if parts.feedback else None
    try:
        index = qdrant_data(collections)
        if "qdrant" in unread:
            index = _qdrant_data_from_the_app(settings, unread, timeout) or index
        return {
            "home": str(settings.home.expanduser().resolve()),
            "missing": parts.missing,
            "unread": unread,
            "alias": alias,
            **index,
            **_registry_data(registry),
            **_feedback_data(settings, log),
            "challenger": _challenger_data(settings, log) if log is not None else None,
        }
    finally:
        if log is not None:
            log.close()


def _qdrant_data_from_the_app(settings: ClicktuneSettings, unread: dict[str, str],
                              timeout: float) -> dict[str, Any] | None:
    """The app's loop reads its Qdrant for us; None (and ``unread`` says why) when it cannot."""
    import json

    from clicktune.scheduler.control import NoLoopServingError, send

    try:
        answer = send(settings, "status", {}, timeout=timeout, why=unread["qdrant"])
    except NoLoopServingError as exc:
        unread["qdrant"] = str(exc)
        return None
    if answer.exit_code or answer.json_out is None:
        unread["qdrant"] = f"{unread['qdrant'].split(';')[0]}, and its loop did not answer: {answer.error}"
        return None
    del unread["qdrant"]
    return dict(json.loads(answer.json_out))


def qdrant_data(collections: AliasedCollections | None) -> dict[str, Any]:
    """What only Qdrant knows: the alias's target, its collections (points, search kind), other aliases."""
    live = collections.live() if collections is not None else None
    others = collections.other_aliases() if collections is not None and live is None else []
    return {
        "alias_target": live.collection if live else None,
        "other_aliases": others,  # only when this alias has none: a misspelled --alias shows the right one
        "collections": [_collection_row(collections, c.collection, c.version)
                        for c in collections.versions()] if collections is not None else [],
    }


def _registry_data(registry: ModelRegistry | None) -> dict[str, Any]:
    pointer = registry.pointer() if registry is not None else None
    return {
        "current_version": pointer.version if pointer else None,
        "previous_version": pointer.previous if pointer else None,
        "versions": [
            {k: row.get(k) for k in ("version", "status", "parent", "created_at", "embedding_dim", "index_precision")}
            for row in registry.describe()
        ] if registry is not None else [],
    }


def _collection_row(collections: AliasedCollections, collection: str, version: str) -> dict[str, Any]:
    """One collection's line; a damaged one (edge engine) says so instead of failing the whole status."""
    from clicktune.adapters.errors import DiskFullError
    from clicktune.adapters.qdrant.errors import EdgeStorageError

    try:
        points, index = collections.count(collection), collections.index_kind(collection)
    except (EdgeStorageError, DiskFullError) as exc:
        points, index = None, f"unavailable: {exc}"
    return {"collection": collection, "version": version, "points": points, "index": index}


def _feedback_data(settings: ClicktuneSettings, log: ClickLog | None) -> dict[str, Any]:
    """Clicks, the feedback window, runs, the alias's lock and the stored schedule."""
    days = settings.feedback.window_days
    since = datetime.now(timezone.utc) - timedelta(days=days) if days else None
    window: dict[str, Any] = {"days": days, "impressions": 0, "clicks": 0}
    if log is None:
        return {"clicks_total": 0, "clicks_since_last_run": 0, "last_runs": [], "feedback_window": window,
                "lock": None, "schedule": _schedule(settings, None), "control": {"loops": [], "requests": []}}
    from clicktune.scheduler.control import serving_loops
    from clicktune.scheduler.lock import lock_name

    last = log.last_run()
    holder = log.lock_holder(lock_name(settings.collection_alias))
    return {
        "clicks_total": log.count_clicks(),
        "clicks_since_last_run": log.count_clicks(since=last["started_at"] if last else None),
        "last_runs": [
            {"started_at": r["started_at"], "status": r["status"], "reason": r["outcome"].get("reason"),
             "candidate": r["outcome"].get("candidate")}
            for r in log.runs(limit=5)
        ],
        "feedback_window": {**window, **log.window_counts(since, alias=settings.collection_alias)},
        # The lease is renewed every lock_lease_seconds / 3 while the holder works: acquired_at is when
        # it was taken, lease_expires_at moves with each renewal.
        "lock": {"name": lock_name(settings.collection_alias), "owner": holder.owner,
                 "acquired_at": holder.acquired_at, "lease_expires_at": holder.expires_at}
        if holder else None,
        "schedule": _schedule(settings, log),
        # The control plane: loops serving commands sent from other shells, and the latest such commands
        # (status's own reads of the app's Qdrant left out).
        "control": {
            "loops": [{"owner": b.owner, "seen_at": b.seen_at} for b in serving_loops(log, settings.collection_alias)],
            "requests": [
                {"id": r.id, "command": r.command, "status": r.status, "submitted_at": r.submitted_at,
                 "owner": r.owner, "finished_at": r.finished_at}
                for r in log.requests.recent(settings.collection_alias, limit=10) if r.command != "status"][:5],
        },
    }


def _schedule(settings: ClicktuneSettings, log: ClickLog | None) -> dict[str, Any]:
    """The configured trigger and the next run time the alias's scheduler last recorded, if any."""
    schedule = settings.schedule
    trigger = (f"cron {schedule.cron!r}" if schedule.cron
               else f"every {schedule.interval_minutes:g} min" if schedule.interval_minutes
               else None)
    data: dict[str, Any] = {"trigger": trigger, "stored": False, "next_run_at": None}
    stored = log.schedules.get(settings.collection_alias) if log is not None else None
    if stored is not None:
        data["stored"] = True
        data["next_run_at"] = stored.next_run_at  # None: the job is paused
    return data


def _challenger_data(settings: ClicktuneSettings, log: ClickLog) -> dict[str, Any] | None:
    from clicktune.scheduler.challenger import judge_phase

    running = log.challengers.active(settings.collection_alias)
    if running is None:
        return None
    verdict = judge_phase(log, settings, running)
    return {"id": running.id, "champion": running.champion_version, "challenger": running.challenger_version,
            "started_at": running.started_at, "interleave_share": running.interleave_share, **verdict.as_dict()}


def _when(value: Any) -> str:
    return str(value)[:19] if value else "-"


def print_status(data: dict[str, Any], console: Console) -> None:
    """The human form of :func:`status_data`."""
    from rich.table import Table

    missing = {"qdrant": "no Qdrant folder", "registry": "no model registry", "feedback": "no feedback database"}
    console.print(f"home {data['home']}" + "".join(f"; {missing[m]} yet" for m in data["missing"]))
    for part, why in data["unread"].items():
        console.print(f"[bold]not read[/]: {part} ({why})", highlight=False)
    others = f"; aliases on this Qdrant: {', '.join(data['other_aliases'])}, pick one with --alias" if data["other_aliases"] else ""
    target = "(not read)" if "qdrant" in data["unread"] else f"(none yet{others})"
    console.print(f"alias [bold]{data['alias']}[/] -> {data['alias_target'] or target}")
    console.print(f"CURRENT model {data['current_version'] or '(none yet)'}; previous {data['previous_version'] or '-'}")
    table = Table("collection", "version", "points", "search")
    for row in data["collections"]:
        table.add_row(row["collection"], row["version"], str(row["points"]), row["index"])
    console.print(table)
    versions = Table("version", "status", "parent", "created", "dim", "indexed in")
    for row in data["versions"]:
        versions.add_row(row["version"], row["status"], row["parent"] or "-", _when(row["created_at"]),
                         str(row["embedding_dim"]), row["index_precision"] or "-")
    console.print(versions)
    challenger = data["challenger"]
    if challenger:
        console.print(
            f"challenger [bold]{challenger['challenger']}[/] vs champion {challenger['champion']} since "
            f"{_when(challenger['started_at'])} ({challenger['interleave_share']:.0%} of searches interleaved): "
            f"{counted(challenger['searches'], 'search', 'searches')}, {counted(challenger['wins'], 'win')}, "
            f"{counted(challenger['losses'], 'loss', 'losses')}, {counted(challenger['ties'], 'tie')}, "
            f"z {challenger['z']:+.2f} (boundary ±{challenger['interim_boundary']:.2f} "
            f"before the last look, {challenger['boundary']:.2f} at it); "
            f"{challenger['reason']}"
        )
    else:
        console.print("challenger: none running")
    window = data["feedback_window"]
    span = f"last {window['days']:g} days" if window["days"] else "all time"
    console.print(f"feedback window ({span}): {counted(window['impressions'], 'search', 'searches')}, "
                  f"{counted(window['clicks'], 'click')} "
                  f"on alias {data['alias']}")
    lock = data["lock"]
    console.print(f"lock: held by {lock['owner']} since {_when(lock['acquired_at'])} UTC (lease runs to "
                  f"{_when(lock['lease_expires_at'])} UTC, renewed while it works)" if lock else "lock: free")
    schedule = data["schedule"]
    if schedule["next_run_at"]:
        late = schedule["next_run_at"] < datetime.now(timezone.utc)
        console.print(f"next run: {_when(schedule['next_run_at'])} UTC ({schedule['trigger']})"
                      + ("; overdue: is `clicktune worker` or the app's loop running?" if late else ""))
    elif schedule["stored"]:
        console.print(f"next run: none, the stored job is paused ({schedule['trigger']})")
    else:
        console.print("next run: not scheduled (no `clicktune worker` or in-app loop has recorded one)")
    loops = data["control"]["loops"]
    console.print("requests from other shells: " + (f"served by {', '.join(b['owner'] for b in loops)}" if loops
                                                     else "no loop serves them (commands run in the shell)"))
    for request in data["control"]["requests"]:
        console.print(f"  #{request['id']} {request['command']:<18} {request['status']:<8} "
                      f"sent {_when(request['submitted_at'])}" + (f", run in {request['owner']}" if request["owner"] else ""))
    console.print(f"clicks: {data['clicks_total']} total, {data['clicks_since_last_run']} since the last run")
    for run in data["last_runs"]:
        console.print(f"  {_when(run['started_at'])}  {run['status']:<9} {run['candidate'] or '-':<6} {run['reason']}")
