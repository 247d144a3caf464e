"""Move an embedded home from qdrant-client's local mode to the edge engine, crash-safe.

``auto`` keeps a folder local mode already holds on local mode (so an existing home opens as it
always did); this moves one on purpose (``clicktune migrate-engine``). Local mode holds its folder
exclusively, so the app must be stopped meanwhile: a running one makes the first step fail with the
folder-in-use error and nothing is touched. Steps (each a crash point, tested with SIGKILLs):

1. ``<path>.edge-migration`` is emptied and the edge engine opened there;
2. every collection is copied page by page, vectors and payloads as they are (nothing re-encoded),
   then indexed once, as a version collection is built (``AliasedCollections``); aliases follow;
3. verified: point counts per collection, and the payload and vector of a sample of points;
4. ``MIGRATED`` is written in the staging folder (fsynced): from here on the copy is complete;
5. ``<path>`` is renamed to ``<path>.local-backup``, then the staging folder to ``<path>``.

A crash before 4 leaves the home as it was; the next run starts over. A crash between the two renames
leaves no ``<path>``: the next clicktune process to open the home (or the next run) finishes the
rename (:func:`finish_interrupted_migration`). The local-mode folder is kept as the backup: delete it
when satisfied, or rename it back to return to local mode.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clicktune.adapters.crashpoints import crash_point
from clicktune.adapters.durable import fsync_folder, write_atomically

log = logging.getLogger(__name__)

STAGING_SUFFIX = ".edge-migration"
BACKUP_SUFFIX = ".local-backup"
COMPLETE_MARKER = "MIGRATED"
PAGE = 256
#: One point in this many (and the first of every collection) is compared after the copy.
SAMPLE_EVERY = 50


@dataclass(frozen=True)
class EngineMigrationReport:
    """What ``migrate_to_edge`` did: ``status`` "migrated" or "already" (the folder is not local mode)."""

    status: str
    path: str
    collections: int = 0
    points: int = 0
    aliases: int = 0
    backup: str | None = None


def finish_interrupted_migration(path: Path) -> bool:
    """If a migration died between its two renames (no ``path``, a complete staging folder), finish it."""
    staging = path.with_name(path.name + STAGING_SUFFIX)
    if path.exists() or not (staging / COMPLETE_MARKER).is_file():
        return False
    staging.rename(path)
    fsync_folder(path.parent)
    log.info("finished an interrupted migration: %s is on the edge engine now", path)
    return True


def migrate_to_edge(path: str | Path, *, hnsw_from_documents: int, show_progress: bool = False) -> EngineMigrationReport:
    """Move the local-mode folder ``path`` to the edge engine (see the module docstring)."""
    from qdrant_client import QdrantClient

    from clicktune.adapters.errors import ConfigurationError
    from clicktune.adapters.qdrant.client import LOCAL_MODE_MARKER
    from clicktune.adapters.qdrant.edge import edge_client

    path = Path(path).expanduser().resolve()
    finish_interrupted_migration(path)
    if not (path / LOCAL_MODE_MARKER).is_file():
        if path.is_dir():
            return EngineMigrationReport(status="already", path=str(path))
        raise ConfigurationError(f"no embedded Qdrant folder at {path}: pass the home your app uses (--home)")
    staging = path.with_name(path.name + STAGING_SUFFIX)
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if backup.exists():
        raise ConfigurationError(f"{backup} exists (an earlier migration's backup, moved back?): remove or rename "
                                 "it, then run this again")
    local = QdrantClient(path=str(path))  # holds the folder: a running app makes this fail, touching nothing
    try:
        shutil.rmtree(staging, ignore_errors=True)  # an attempt that did not complete
        staging.mkdir(mode=0o700)
        os.chmod(staging, stat.S_IMODE(path.stat().st_mode))  # the moved folder keeps the mode it had
        edge = edge_client(staging)
        try:
            counts, aliases = _copy_everything(local, edge, hnsw_from_documents, show_progress)
        finally:
            edge.close()
    finally:
        local.close()
    write_atomically(staging / COMPLETE_MARKER,
                     json.dumps({"from": str(path), "collections": counts, "aliases": aliases}))
    crash_point("migrate.marked")
    path.rename(backup)
    crash_point("migrate.moved_aside")
    staging.rename(path)
    fsync_folder(path.parent)
    return EngineMigrationReport(status="migrated", path=str(path), collections=len(counts),
                                 points=sum(counts.values()), aliases=len(aliases), backup=str(backup))


def _copy_everything(local: Any, edge: Any, hnsw_from_documents: int,
                     show_progress: bool) -> tuple[dict[str, int], dict[str, str]]:
    from qdrant_client import models

    from clicktune.adapters.progress import PointsProgress
    from clicktune.adapters.qdrant.errors import EngineMigrationError

    names = sorted(c.name for c in local.get_collections().collections)
    counts = {name: local.count(name, exact=True).count for name in names}
    with PointsProgress("migrate to the edge engine", sum(counts.values()), show_bar=show_progress, log=log) as progress:
        for name in names:
            sample = _copy_collection(local, edge, name, hnsw_from_documents, progress.update)
            crash_point("migrate.copied_collection")
            copied = edge.count(name, exact=True).count
            if copied != counts[name]:
                raise EngineMigrationError(f"{name}: {copied} points on the edge engine, {counts[name]} in local "
                                           "mode; nothing was changed, run again")
            _verify_sample(local, edge, name, sample)
    aliases = {a.alias_name: a.collection_name for a in local.get_aliases().aliases}
    if aliases:
        edge.update_collection_aliases(change_aliases_operations=[
            models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=target, alias_name=alias))
            for alias, target in aliases.items()])
    return counts, aliases


def _copy_collection(local: Any, edge: Any, name: str, hnsw_from_documents: int,
                     on_copied: Callable[[int], None]) -> list[Any]:
    """Create ``name`` on the edge engine as a version collection is built, copy its points page by page,
    index it once; returns the ids to verify (the first point and one in :data:`SAMPLE_EVERY`)."""
    from qdrant_client import models

    from clicktune.adapters.qdrant.collections import create_version_collection, index_once
    from clicktune.adapters.qdrant.errors import EdgeUnsupportedError

    config = local.get_collection(name).config
    if config.params.sparse_vectors:
        raise EdgeUnsupportedError(f"{name} has sparse vectors, which the edge engine does not support: keep this "
                                   "home on local mode (embedded_engine=local)")
    create_version_collection(edge, name, config.params.vectors, bulk_load=True, metadata=config.metadata)
    offset, copied, sample = None, 0, []
    while True:
        points, offset = local.scroll(name, limit=PAGE, offset=offset, with_payload=True, with_vectors=True)
        if points:
            edge.upsert(name, points=[models.PointStruct(id=p.id, vector=p.vector, payload=p.payload) for p in points])
            sample += [p.id for i, p in enumerate(points, start=copied) if i % SAMPLE_EVERY == 0]
            copied += len(points)
            on_copied(len(points))
        if offset is None:
            break
    index_once(edge, name, copied, hnsw_from_documents)
    return sample


def _verify_sample(local: Any, edge: Any, name: str, sample: list[Any]) -> None:
    """The sampled points have the same payload and vector on both engines."""
    from clicktune.adapters.qdrant.errors import EngineMigrationError

    for start in range(0, len(sample), PAGE):
        ids = sample[start : start + PAGE]
        before = {p.id: p for p in local.retrieve(name, ids, with_payload=True, with_vectors=True)}
        after = {p.id: p for p in edge.retrieve(name, ids, with_payload=True, with_vectors=True)}
        for point_id, point in before.items():
            copy = after.get(point_id)
            if copy is None or copy.payload != point.payload or not _same_vectors(point.vector, copy.vector):
                raise EngineMigrationError(f"{name}: point {point_id} differs after the copy; nothing was "
                                           "changed, run again")


def _same_vectors(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same_vectors(a[k], b[k]) for k in a)
    return np.allclose(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32), atol=1e-5)
