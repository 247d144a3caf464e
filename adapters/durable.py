"""Crash-safe file writes, shared by the registry, the edge engine and the engine migration.

A rename is atomic but not durable until its folder is fsynced; a file is not durable until it is.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_folder(path: Path) -> None:
    """Make the renames and creations inside ``path`` survive a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, text: str, *, mode: int = 0o600) -> None:
    """Write-temp-fsync-replace, then fsync the folder: readers (and a restart after a crash) see the old
    content or the new one, never a torn file. The file gets ``mode`` (mkstemp's own is 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if mode != 0o600:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_folder(path.parent)
