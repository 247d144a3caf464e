"""Rebuilding CURRENT when it cannot be read (``clicktune repair``).

CURRENT is written atomically, so a torn file means a disk or a hand went wrong. Everything needed to
rebuild it survives elsewhere: the alias names the live version (it is the commit point of every swap)
and each version's metadata records when it went live and CURRENT's history then.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from clicktune.adapters.errors import CorruptRegistryError
from clicktune.adapters.registry.records import CurrentPointer, VersionInfo, utcnow
from clicktune.adapters.registry.store import _HISTORY_LIMIT, CURRENT_FILE, parse_version

if TYPE_CHECKING:
    from clicktune.adapters.registry.store import ModelRegistry

log = logging.getLogger(__name__)


def _last_marked_live(records: dict[str, VersionInfo], current: Path) -> str:
    marked = [r for r in records.values() if r.status == "live"]
    if not marked:
        raise CorruptRegistryError(
            f"cannot rebuild {current}: there is no alias to follow and no version's metadata says it is live"
        )
    latest = max(marked, key=lambda r: (r.promoted_at is not None, r.promoted_at or r.created_at,
                                        parse_version(r.version)))
    return latest.version


def rebuilt_pointer(records: dict[str, VersionInfo], live: str) -> CurrentPointer:
    """``live`` with the history recorded when it went live, or else every earlier once-live version."""
    if live not in records:
        raise CorruptRegistryError(f"cannot rebuild CURRENT: the metadata of {live} is missing or unreadable")
    recorded = records[live].promoted_history
    if recorded is not None:
        history = [v for v in recorded if v in records]
    else:  # went live before the history was recorded: versions go live in the order they are made
        history = [v for v, r in sorted(records.items(), key=lambda item: parse_version(item[0]))
                   if r.status in ("live", "retired") and parse_version(v) < parse_version(live)]
    return CurrentPointer(version=live, history=history[-_HISTORY_LIMIT:], rollback_ready=not records[live].live_by_rollback)


def repair_current(registry: ModelRegistry, live: str | None) -> tuple[CurrentPointer, Path | None] | None:
    """Rebuild an unreadable or dangling CURRENT (or a missing one, given ``live``); None if it reads.

    ``live`` is the version the alias serves; without one, the version whose metadata says it went live
    last. The bad file is kept aside as ``CURRENT.corrupt-<UTC time>``; returns the new pointer and that
    path (None when there was no file).
    """
    with registry._locked():
        try:
            if registry.pointer() is not None or live is None:
                return None
        except CorruptRegistryError:
            pass
        records: dict[str, VersionInfo] = {}
        for version in registry.versions():
            with contextlib.suppress(CorruptRegistryError):
                records[version] = registry.get(version)
        current = registry.root / CURRENT_FILE
        live = live or _last_marked_live(records, current)
        registry.path(live)  # a version missing from the registry gets its own, clearer error
        pointer = rebuilt_pointer(records, live)
        kept = None
        if current.exists():
            kept = current.with_name(f"{CURRENT_FILE}.corrupt-{utcnow().strftime('%Y%m%dT%H%M%S.%fZ')}")
            shutil.copy2(current, kept)
        registry._write_pointer(pointer)
        registry._set_status(pointer.version, "live")
        for version in pointer.history:
            if records[version].status == "live":
                registry._set_status(version, "retired")
        log.warning("rebuilt %s: %s live, history %s (the bad file is kept as %s)", current, pointer.version,
                    pointer.history, kept)
        return pointer, kept
