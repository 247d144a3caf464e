"""Free disk space for the edge engine: refuse a write or a build while the disk is below a floor.

qdrant_edge writes vectors, payloads and its WAL through memory-mapped, sparse files: a page is only
allocated on disk when it is first written. On a full disk that first write cannot fail with an error;
the kernel kills the process with SIGBUS, inside ``EdgeShard.update`` or while a restarted process
replays its WAL. So free space is checked (``shutil.disk_usage``) before each write batch, each
build and each background optimize, and the call is refused with :class:`DiskFullError` while the
disk has less than the floor (``min_free_disk_mb``) beyond what the call needs. Reads never check:
they allocate nothing, so a store on a full disk keeps serving.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from clicktune.adapters.errors import DiskFullError
from clicktune.adapters.settings import ClicktuneSettings

MB = 1024 * 1024
#: The floor when none is given: the setting's default (see its description).
DEFAULT_MIN_FREE_DISK_MB: int = ClicktuneSettings.model_fields["min_free_disk_mb"].default
#: How the floor is set, for messages.
SETTING = "min_free_disk_mb (CLICKTUNE_MIN_FREE_DISK_MB)"


def allocated_bytes(folder: Path) -> int:
    """Bytes ``folder``'s files occupy on disk (blocks, not sizes: the engine's files are sparse)."""
    total = 0
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:  # removed meanwhile (a background optimize replaces segments)
                continue
    return total


def _mb(count: int) -> str:
    return f"{count / MB:.1f} MB"


@dataclass(frozen=True)
class DiskFloor:
    """The free space the disk under ``folder`` must keep; ``floor_bytes == 0`` checks nothing."""

    folder: Path
    floor_bytes: int

    @classmethod
    def of(cls, folder: Path, min_free_mb: float) -> DiskFloor:
        if min_free_mb < 0:
            raise ValueError(f"min_free_disk_mb must be 0 or more, not {min_free_mb}")
        return cls(folder, int(min_free_mb * MB))

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.folder).free

    def allows(self, need_bytes: int = 0) -> bool:
        """Would a call needing ``need_bytes`` leave the floor free? (Always, with no floor.)"""
        return self.floor_bytes == 0 or self.free_bytes() - need_bytes >= self.floor_bytes

    def require(self, what: str, need_bytes: int = 0) -> None:
        """Raise :class:`DiskFullError` unless ``need_bytes`` more leave the floor free; writes nothing."""
        if self.floor_bytes == 0:
            return
        free = self.free_bytes()
        if free - need_bytes >= self.floor_bytes:
            return
        needs = f" plus the {_mb(need_bytes)} it needs" if need_bytes else ""
        raise DiskFullError(
            f"refused {what}: the disk of {self.folder} has {_mb(free)} free, and {SETTING} asks to keep "
            f"{_mb(self.floor_bytes)}{needs}. Nothing was written and searches go on; free space on that disk "
            "(or move the folder to a bigger one) and retry",
            folder=str(self.folder), free_bytes=free, floor_bytes=self.floor_bytes, need_bytes=need_bytes)
