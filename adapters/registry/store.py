"""A folder-backed model registry whose every visible state is complete.

Layout::

    <root>/models/v0001/        a saved SentenceTransformer + clicktune.json (immutable weights)
    <root>/CURRENT              JSON pointer {version, history}, replaced atomically
    <root>/.staging/<tmp>/      versions being written; renamed into models/ only when complete
    <root>/.lock                flock for number allocation, promotion and retention

A version appears only by ``os.rename`` of a finished staging folder, so a process killed mid-save
leaves at most a staging folder, which the next registry open removes once its writer is dead.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from clicktune.adapters.crashpoints import crash_point
from clicktune.adapters.durable import fsync_folder, write_atomically
from clicktune.adapters.errors import (
    CorruptRegistryError,
    InvalidVersionError,
    NoLiveVersionError,
    NothingToRollBackError,
    VersionNotFoundError,
)
from clicktune.adapters.models.loader import load_sentence_transformer
from clicktune.adapters.permissions import OWNER_ONLY, FileModes
from clicktune.adapters.registry.records import CurrentPointer, VersionInfo, VersionStatus, utcnow
from clicktune.adapters.settings import ClicktuneSettings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

_VERSION_RE = re.compile(r"v(\d{4,})")  # always fullmatch: `$` would take "v0002\n"
INFO_FILE = "clicktune.json"
CURRENT_FILE = "CURRENT"
_HISTORY_LIMIT = 50
_REPAIR_HINT = "run `clicktune repair` to rebuild it from the alias and the versions' metadata"


def parse_version(version: str) -> int:
    """``"v0003"`` -> 3, or :class:`InvalidVersionError` naming the expected form."""
    match = _VERSION_RE.fullmatch(version or "")
    if not match:
        raise InvalidVersionError(f"{version!r} is not a version name; expected the form v0001")
    return int(match.group(1))


def format_version(number: int) -> str:
    return f"v{number:04d}"


class ModelRegistry:
    """Versions of the embedding model, and which one is live. Safe across threads and processes
    (flock); across hosts on a shared volume it relies on flock and rename (NFSv4 has both)."""

    def __init__(
        self,
        root: str | Path,
        *,
        base_model: str = ClicktuneSettings.model_fields["base_model"].default,
        max_seq_length: int | None = 256,
        device: str | None = None,
        allow_download: bool = True,
        keep_last: int = 5,
        modes: FileModes = OWNER_ONLY,
    ) -> None:
        """``modes``: the permission bits of the folders and files this creates (adapters/permissions.py)."""
        if keep_last < 2:
            raise ValueError("keep_last must be >= 2: the live version and its predecessor are always kept")
        self.root = Path(root)
        self.base_model = base_model
        self.max_seq_length = max_seq_length
        self.device = device
        self.allow_download = allow_download
        self.keep_last = keep_last
        self.modes = modes
        self.models_dir = self.root / "models"
        self.staging_dir = self.root / ".staging"
        modes.make_folder(self.models_dir)
        modes.make_folder(self.staging_dir)
        self._thread_lock = threading.RLock()
        self._clean_dead_staging()

    @classmethod
    def from_settings(cls, settings: ClicktuneSettings) -> ModelRegistry:
        return cls(
            settings.resolved_registry_dir,
            base_model=settings.base_model,
            max_seq_length=settings.max_seq_length,
            device=settings.device,
            allow_download=settings.allow_download,
            keep_last=settings.keep_versions,
            modes=settings.file_modes,
        )

    # Locking -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._thread_lock, os.fdopen(self.modes.open_lock_file(self.root / ".lock"), "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _clean_dead_staging(self) -> None:
        """Remove staging folders whose writer (on this host) is no longer running."""
        host = socket.gethostname()
        for entry in self.staging_dir.iterdir():
            parts = entry.name.split("~")
            if len(parts) < 3 or parts[0] != host:
                continue
            try:
                pid = int(parts[1])
                os.kill(pid, 0)
            except ProcessLookupError:
                log.info("removing leftover staging folder %s (writer %s is gone)", entry, parts[1])
                shutil.rmtree(entry, ignore_errors=True)
            except (ValueError, PermissionError):
                continue

    # Reading -----------------------------------------------------------------------------------
    def versions(self) -> list[str]:
        """Every complete version, oldest first."""
        found = [p.name for p in self.models_dir.iterdir() if _VERSION_RE.fullmatch(p.name) and p.is_dir()]
        return sorted(found, key=parse_version)

    def path(self, version: str) -> Path:
        parse_version(version)
        folder = self.models_dir / version
        if not folder.is_dir():
            raise VersionNotFoundError(
                f"model version {version} is not in the registry at {self.root}; known: {self.versions() or 'none'}"
            )
        return folder

    def get(self, version: str) -> VersionInfo:
        folder = self.path(version)
        info_path = folder / INFO_FILE
        try:
            return VersionInfo.model_validate_json(info_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise CorruptRegistryError(f"{info_path} is missing: version {version} is damaged") from exc
        except (ValidationError, ValueError) as exc:
            raise CorruptRegistryError(f"{info_path} cannot be read: {exc}") from exc

    def pointer(self) -> CurrentPointer | None:
        """The CURRENT pointer, or None before anything was promoted."""
        path = self.root / CURRENT_FILE
        try:
            raw = path.read_bytes()  # bytes: a file that is not UTF-8 is corrupt, not a crash
        except FileNotFoundError:
            return None
        try:
            pointer = CurrentPointer.model_validate_json(raw)
            parse_version(pointer.version)
        except (ValidationError, ValueError, InvalidVersionError) as exc:
            reason = "; ".join(e["msg"] for e in exc.errors()) if isinstance(exc, ValidationError) else str(exc)
            raise CorruptRegistryError(f"{path} cannot be read ({reason}); {_REPAIR_HINT}") from exc
        if not (self.models_dir / pointer.version).is_dir():
            raise CorruptRegistryError(
                f"{path} points at {pointer.version}, which is not in {self.models_dir}; {_REPAIR_HINT}"
            )
        return pointer

    def current(self) -> str:
        """The live version; never writes (none yet: ``NoLiveVersionError``; ``bootstrap()`` makes v0001)."""
        pointer = self.pointer()
        if pointer is None:
            raise NoLiveVersionError(f"model registry {self.root} has no live version yet: bootstrap() makes v0001 "
                                     "from the base model (the first ClicktuneEmbeddings or store does it)")
        return pointer.version

    def previous(self) -> str | None:
        pointer = self.pointer()
        return pointer.previous if pointer else None

    def load_model(self, version: str) -> SentenceTransformer:
        folder = self.path(version)
        info = self.get(version)
        return load_sentence_transformer(
            str(folder), device=self.device, max_seq_length=info.max_seq_length, allow_download=False
        )

    # Writing -----------------------------------------------------------------------------------
    def bootstrap(self) -> str:
        """The live version; with none yet, make ``v0001`` from the base model and promote it (idempotent)."""
        pointer = self.pointer()
        if pointer is not None:
            return pointer.version
        with self._locked():
            pointer = self.pointer()
            if pointer is not None:
                return pointer.version
            existing = self.versions()
            if existing:
                # An earlier bootstrap registered v0001 but died before promoting: finish its job.
                version = existing[0]
            else:
                model = load_sentence_transformer(
                    self.base_model,
                    device=self.device,
                    max_seq_length=self.max_seq_length,
                    allow_download=self.allow_download,
                )
                version = self._register_locked(model, {"training": {"kind": "bootstrap"}}, parent=None, status="live")
            self._write_pointer(CurrentPointer(version=version, history=[]))
            self._set_status(version, "live", promoted_at=utcnow(), promoted_history=[])
            log.info("registry %s bootstrapped with %s from %s", self.root, version, self.base_model)
            return version

    def register(
        self,
        model: SentenceTransformer,
        info: dict[str, Any] | None = None,
        *,
        parent: str | None = None,
        status: VersionStatus = "candidate",
    ) -> str:
        """Save ``model`` as the next version; it becomes visible only once complete."""
        with self._locked():
            return self._register_locked(model, info or {}, parent=parent, status=status)

    def _register_locked(
        self, model: SentenceTransformer, info: dict[str, Any], *, parent: str | None, status: VersionStatus
    ) -> str:
        info = dict(info)
        if parent is not None:
            self.path(parent)
        existing = self.versions()
        number = parse_version(existing[-1]) + 1 if existing else 1
        version = format_version(number)
        staging = Path(
            tempfile.mkdtemp(prefix=f"{socket.gethostname()}~{os.getpid()}~{version}~", dir=self.staging_dir)
        )
        try:
            crash_point("registry.staging_created")
            model.save(str(staging))
            crash_point("registry.model_saved")
            fields = {
                "base_model": info.pop("base_model", None) or self.base_model,
                "embedding_dim": model.get_embedding_dimension(),
                "max_seq_length": model.max_seq_length,
                **info,
            }
            record = VersionInfo(version=version, parent=parent, status=status, **fields)
            (staging / INFO_FILE).write_text(record.model_dump_json(indent=2), encoding="utf-8")
            self.modes.restrict(staging)  # mkdtemp made it 0700; the model's files follow the umask
            for file in staging.rglob("*"):
                self.modes.restrict(file)
                if file.is_file():
                    with open(file, "rb") as handle:
                        os.fsync(handle.fileno())
            crash_point("registry.before_rename")
            os.rename(staging, self.models_dir / version)
            fsync_folder(self.models_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        log.info("registered model %s (parent %s, status %s)", version, parent, status)
        return version

    def update_info(self, version: str, **changes: Any) -> VersionInfo:
        """Rewrite a version's metadata (status, metrics, decisions) atomically; weights never change."""
        with self._locked():
            record = self.get(version).model_copy(update=changes)
            record = VersionInfo.model_validate(record.model_dump())
            write_atomically(self.path(version) / INFO_FILE, record.model_dump_json(indent=2), mode=self.modes.file)
            return record

    def _write_pointer(self, pointer: CurrentPointer) -> None:
        crash_point("registry.before_pointer")
        write_atomically(self.root / CURRENT_FILE, pointer.model_dump_json(indent=2), mode=self.modes.file)

    def promote(self, version: str) -> str:
        """Make ``version`` live: one atomic replace of CURRENT; the old live one goes on the history."""
        with self._locked():
            self.get(version)
            pointer = self.pointer()
            if pointer is not None and pointer.version == version:
                return version
            history = [] if pointer is None else [*pointer.history, pointer.version][-_HISTORY_LIMIT:]
            self._write_pointer(CurrentPointer(version=version, history=history))
            self._set_status(version, "live", promoted_at=utcnow(), promoted_history=list(history),
                             live_by_rollback=False)
            if pointer is not None:
                self._set_status(pointer.version, "retired")
            log.info("promoted %s (was %s)", version, pointer.version if pointer else None)
            return version

    def rollback(self) -> str:
        """Go back to the version that was live before the current one; returns it."""
        with self._locked():
            pointer = self.pointer()
            if pointer is None or not pointer.history:
                raise NothingToRollBackError(f"registry {self.root} has no earlier live version to roll back to")
            history = [v for v in pointer.history if (self.models_dir / v).is_dir()]
            if not history:
                raise NothingToRollBackError(
                    f"every earlier live version of {self.root} was removed by retention; promote one explicitly"
                )
            target = history[-1]
            self._write_pointer(CurrentPointer(version=target, history=history[:-1], rollback_ready=False))
            self._set_status(target, "live", promoted_at=utcnow(), promoted_history=list(history[:-1]),
                             live_by_rollback=True)
            self._set_status(pointer.version, "retired")
            log.info("rolled back %s -> %s", pointer.version, target)
            return target

    def repair(self, live: str | None) -> tuple[CurrentPointer, Path | None] | None:
        """Rebuild an unreadable or dangling CURRENT (see :func:`~.repair.repair_current`)."""
        from clicktune.adapters.registry.repair import repair_current

        return repair_current(self, live)

    def _set_status(self, version: str, status: VersionStatus, **extra: Any) -> None:
        """A version's status; going live also records when and CURRENT's history then (what
        :meth:`repair` rebuilds from)."""
        with contextlib.suppress(CorruptRegistryError):
            record = self.get(version).model_copy(update={"status": status, **extra})
            write_atomically(self.path(version) / INFO_FILE, record.model_dump_json(indent=2), mode=self.modes.file)

    def apply_retention(self, keep_last: int | None = None, *, protect: set[str] | None = None) -> list[str]:
        """Delete the oldest versions beyond ``keep_last``; CURRENT, its predecessor and ``protect`` always stay.

        ``protect`` names the versions collections still use (a running challenger's, another alias's):
        the scheduler's retention passes them, after the collections' own retention.
        """
        keep = keep_last or self.keep_last
        if keep < 2:
            raise ValueError("keep_last must be >= 2")
        removed: list[str] = []
        with self._locked():
            pointer = self.pointer()
            kept = set(protect or ())
            if pointer is not None:
                kept.add(pointer.version)
                if pointer.previous:
                    kept.add(pointer.previous)
            versions = self.versions()
            excess = len(versions) - keep
            for version in versions:
                if excess <= 0:
                    break
                if version in kept:
                    continue
                # Rename out of models/ first so a half-deleted folder is never listed as a version.
                trash = self.staging_dir / f"{socket.gethostname()}~{os.getpid()}~trash-{version}"
                os.rename(self.models_dir / version, trash)
                shutil.rmtree(trash, ignore_errors=True)
                removed.append(version)
                excess -= 1
        if removed:
            log.info("retention removed %s", ", ".join(removed))
        return removed

    def describe(self) -> list[dict[str, Any]]:
        """Every version's metadata as plain dicts, for status tables."""
        rows = []
        for version in self.versions():
            try:
                rows.append(json.loads(self.get(version).model_dump_json()))
            except CorruptRegistryError as exc:
                rows.append({"version": version, "status": "corrupt", "error": str(exc)})
        return rows
