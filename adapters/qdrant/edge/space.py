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


#: Filesystems that allocate a page when a hole of a shared file mapping is read, not only written.
_ALLOCATE_ON_READ = frozenset({"tmpfs", "ramfs", "shm"})


def allocates_on_read(folder: Path) -> bool:
    """Is ``folder`` on tmpfs (``/dev/shm``, a container's tmpfs), where loading a shard fills its sparse
    vector files? qdrant_edge maps them populated when it loads a shard: on a disk filesystem reading
    a hole allocates nothing, on tmpfs it allocates the whole file (measured: a 32 MB ``chunk_0.mmap``
    holding 264 vectors went from 0.4 to 32 MB allocated at the next load). Linux's mount table; False
    elsewhere."""
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    resolved, best, kind = str(folder.resolve()), "", ""
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind in _ALLOCATE_ON_READ


def load_reserve_bytes(folder: Path) -> int:
    """What loading the collection in ``folder`` may allocate on tmpfs: the holes of its vector files."""
    total = 0
    for path in folder.glob("segments/*/vector_storage/*/chunk_*.mmap"):
        try:
            stat = path.stat()
        except OSError:  # replaced meanwhile by an optimize
            continue
        total += max(0, stat.st_size - stat.st_blocks * 512)
    return total


def _mb(count: int) -> str:
    return f"{count / MB:.1f} MB"


@dataclass(frozen=True)
class DiskFloor:
    """The free space the disk under ``folder`` must keep; ``floor_bytes == 0`` checks nothing."""

    folder: Path
    floor_bytes: int
    #: On tmpfs a write also keeps room for what the next load of its collection allocates.
    on_tmpfs: bool = False

    @classmethod
    def of(cls, folder: Path, min_free_mb: float) -> DiskFloor:
        if min_free_mb < 0:
            raise ValueError(f"min_free_disk_mb must be 0 or more, not {min_free_mb}")
        return cls(folder, int(min_free_mb * MB), allocates_on_read(folder))

    def load_reserve(self, collection_folder: Path) -> int:
        """Room a write must leave for the collection's next load (tmpfs only; else 0)."""
        return load_reserve_bytes(collection_folder) if self.on_tmpfs else 0

    def check_load(self, collection_folder: Path) -> None:
        """Raise :class:`DiskFullError` rather than load a collection whose load would fill the disk (tmpfs:
        the load allocates its vector files; a full disk would end the process with SIGBUS)."""
        need = self.load_reserve(collection_folder)
        free = self.free_bytes()
        if need > free:
            raise DiskFullError(
                f"refused to load collection {collection_folder.name}: it is on tmpfs, where loading allocates its "
                f"vector files ({_mb(need)}), and {self.folder} has {_mb(free)} free. The other collections "
                "serve; free space on that disk and reopen", folder=str(self.folder), free_bytes=free,
                floor_bytes=self.floor_bytes, need_bytes=need)

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
