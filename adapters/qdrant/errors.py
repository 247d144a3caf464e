"""Errors of the Qdrant layer: each says which collection or alias is wrong and what to do."""

from __future__ import annotations

from clicktune.adapters.errors import ClicktuneError


class CollectionLayoutError(ClicktuneError):
    """Base class: the alias/collection layout is not what clicktune expects."""


class AliasNotFoundError(CollectionLayoutError, LookupError):
    """The alias names no collection yet (nothing was indexed)."""


class AliasIsCollectionError(CollectionLayoutError):
    """A real collection carries the name clicktune wants to use as an alias."""


class NothingToReindexError(CollectionLayoutError):
    """There is no live collection, or it is empty, so a reindex has nothing to copy."""


class VersionAlreadyLiveError(CollectionLayoutError):
    """The version asked for is the one the alias already points at."""


class VersionKeptForRollbackError(CollectionLayoutError):
    """The version asked for is the one kept for rollback: rebuilding its collection would drop it."""


class ReindexVerificationError(CollectionLayoutError):
    """A freshly built collection failed verification; the alias was not touched."""


class CollectionNotFoundError(CollectionLayoutError, LookupError):
    """The collection to import is not on this Qdrant (a misspelled name, or the wrong Qdrant)."""


class ForeignCollectionError(CollectionLayoutError):
    """A collection to import cannot be read as langchain-qdrant's (payload keys, vector name)."""


class ImportVerificationError(CollectionLayoutError):
    """An imported copy failed verification; the collection it came from was left as it was."""


class EngineMigrationError(CollectionLayoutError):
    """A copy to the edge engine failed verification; the local-mode folder was left as it was."""


class EdgeUnsupportedError(ClicktuneError, NotImplementedError):
    """The embedded edge engine (``adapters/qdrant/edge``) does not support this call or parameter."""


class EdgeUnsupportedFilterError(EdgeUnsupportedError, ValueError):
    """A filter condition the edge engine cannot evaluate (geo conditions, for one)."""


class EdgeStorageError(ClicktuneError):
    """Base class: a file of the edge engine's folder is missing or unreadable. ``path`` names it; the
    message says what repairs it. Only what depends on that file fails: other collections serve."""

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class EdgeAliasFileError(EdgeStorageError):
    """``aliases.json`` is missing or cannot be read: no alias can be resolved until it is repaired
    (``clicktune repair`` writes it again from the registry's CURRENT, alias by alias)."""


class EdgeCollectionDamagedError(EdgeStorageError):
    """A collection's folder lacks a file the engine needs (``segments/``, the WAL, its settings) or
    Qdrant's engine refused to load it; that collection alone is unavailable."""


class EmbeddedFolderInUseError(ClicktuneError):
    """Another process (an app, a worker, a command) holds the embedded Qdrant folder: embedded Qdrant
    admits one process. ``path`` is the folder; the clicktune command then sends its work to the loop
    running in that process, if one serves requests (``clicktune.scheduler.control``)."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def is_embedded_lock(exc: BaseException) -> bool:
    """Whether ``exc`` is an embedded engine refusing a folder another process holds (edge engine's
    RuntimeError, local mode's portalocker error)."""
    if isinstance(exc, RuntimeError) and "already accessed by another instance" in str(exc):
        return True
    return any(cls.__module__.split(".")[0] == "portalocker" for cls in type(exc).__mro__)


class PartialWriteError(ClicktuneError):
    """A write failed in one collection after others were written, and putting them back failed too.

    ``written`` names the collections that may hold part of the write, ``restored`` those put back as
    they were, ``ids`` the documents concerned: writing the same documents again makes them agree.
    """

    def __init__(self, message: str, *, written: list[str], restored: list[str], ids: list[str]) -> None:
        super().__init__(message)
        self.written = written
        self.restored = restored
        self.ids = ids
