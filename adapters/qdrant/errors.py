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
