"""Who may read what clicktune writes to disk: one rule for the feedback database, Qdrant and the registry.

The feedback database holds every query and click, the registry the models trained on them, so what
clicktune creates is owner-only by default: files 0600, folders 0700 (``file_access="owner"``). An
operator who shares a registry (or a home) between two users of one group sets
``CLICKTUNE_FILE_ACCESS=group``: files 0660, folders 0770.

The mode is set explicitly (``chmod`` after creating), so the process umask neither widens nor
narrows it. It applies to what clicktune creates; a folder or file that already exists keeps its mode
(the operator's choice). Files that Qdrant's engines write inside their folder follow the process
umask: the folder's own mode is what keeps them private (docs/ARCHITECTURE.md invariant 21).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

FileAccess = Literal["owner", "group"]


@dataclass(frozen=True)
class FileModes:
    """The permission bits of a file and of a folder clicktune creates."""

    file: int
    folder: int

    @classmethod
    def of(cls, access: FileAccess) -> FileModes:
        """``owner`` -> 0600 / 0700; ``group`` -> 0660 / 0770."""
        return GROUP_SHARED if access == "group" else OWNER_ONLY

    def make_folder(self, path: Path) -> None:
        """Create ``path`` and its missing parents with the folder mode; existing ones keep theirs."""
        path = Path(path).expanduser()
        missing: list[Path] = []
        for folder in (path, *path.parents):
            if folder.exists():
                break
            missing.append(folder)
        for folder in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another process made it meanwhile: keep its mode
                folder.mkdir(mode=self.folder)
                os.chmod(folder, self.folder)  # mkdir's mode is masked by the umask
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)  # raises the clear error (a file in the way)

    def create_file(self, path: Path) -> bool:
        """Create an empty ``path`` with the file mode unless it exists; True if this call created it."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file)
        except FileExistsError:
            return False
        try:
            os.fchmod(fd, self.file)
        finally:
            os.close(fd)
        return True

    def open_lock_file(self, path: Path) -> int:
        """A read-write descriptor on ``path`` (for flock), created with the file mode if missing."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, self.file)
        except FileExistsError:
            return os.open(path, os.O_RDWR)
        os.fchmod(fd, self.file)
        return fd

    def restrict(self, path: Path) -> None:
        """Give a file (or folder) that clicktune has just written the rule's mode."""
        os.chmod(path, self.folder if Path(path).is_dir() else self.file)

OWNER_ONLY = FileModes(file=0o600, folder=0o700)
GROUP_SHARED = FileModes(file=0o660, folder=0o770)
