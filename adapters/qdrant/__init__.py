"""Qdrant: versioned collections behind an alias, caller ids kept, writes coordinated with reindexing.

The names below load on first use (PEP 562): `clicktune status` needs the client and the collections,
not LangChain, and the CLI should not pay for importing what it does not call.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "ImportReport": "adoption",
    "import_collection": "adoption",
    "close_shared_clients": "client",
    "qdrant_client_from_settings": "client",
    "AliasedCollections": "collections",
    "CollectionVersion": "collections",
    "WriteCoordinator": "coordination",
    "coordinator_for": "coordination",
    "ANNOTATIONS_KEY": "documents",
    "CollectionDocumentStore": "documents",
    "DOC_ID_KEY": "layout",
    "document_from_payload": "documents",
    "point_id": "layout",
    "validate_documents": "documents",
    "AliasIsCollectionError": "errors",
    "AliasNotFoundError": "errors",
    "CollectionLayoutError": "errors",
    "CollectionNotFoundError": "errors",
    "EmbeddedFolderInUseError": "errors",
    "ForeignCollectionError": "errors",
    "ImportVerificationError": "errors",
    "EngineMigrationError": "errors",
    "EngineMigrationReport": "migration",
    "migrate_to_edge": "migration",
    "NothingToReindexError": "errors",
    "ReindexVerificationError": "errors",
    "VersionAlreadyLiveError": "errors",
    "VersionKeptForRollbackError": "errors",
    "PartialWriteError": "errors",
    "MirroredWrite": "writes",
    "WriteTarget": "writes",
    "check_filter": "documents",
    "IndexHandle": "handle",
    "VersionIndex": "index",
}

__all__ = [
    "ANNOTATIONS_KEY",
    "AliasIsCollectionError",
    "AliasNotFoundError",
    "AliasedCollections",
    "CollectionDocumentStore",
    "CollectionLayoutError",
    "CollectionNotFoundError",
    "CollectionVersion",
    "DOC_ID_KEY",
    "EmbeddedFolderInUseError",
    "EngineMigrationError",
    "EngineMigrationReport",
    "ForeignCollectionError",
    "ImportReport",
    "ImportVerificationError",
    "IndexHandle",
    "MirroredWrite",
    "NothingToReindexError",
    "PartialWriteError",
    "ReindexVerificationError",
    "VersionAlreadyLiveError",
    "VersionIndex",
    "VersionKeptForRollbackError",
    "WriteCoordinator",
    "WriteTarget",
    "check_filter",
    "close_shared_clients",
    "coordinator_for",
    "document_from_payload",
    "import_collection",
    "migrate_to_edge",
    "point_id",
    "qdrant_client_from_settings",
    "validate_documents",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from clicktune.adapters.qdrant.adoption import ImportReport, import_collection
    from clicktune.adapters.qdrant.client import close_shared_clients, qdrant_client_from_settings
    from clicktune.adapters.qdrant.collections import AliasedCollections, CollectionVersion
    from clicktune.adapters.qdrant.coordination import WriteCoordinator, coordinator_for
    from clicktune.adapters.qdrant.documents import (
        ANNOTATIONS_KEY,
        CollectionDocumentStore,
        check_filter,
        document_from_payload,
        validate_documents,
    )
    from clicktune.adapters.qdrant.errors import (
        AliasIsCollectionError,
        AliasNotFoundError,
        CollectionLayoutError,
        CollectionNotFoundError,
        EmbeddedFolderInUseError,
        ForeignCollectionError,
        ImportVerificationError,
        NothingToReindexError,
        PartialWriteError,
        ReindexVerificationError,
        VersionAlreadyLiveError,
        VersionKeptForRollbackError,
    )
    from clicktune.adapters.qdrant.handle import IndexHandle
    from clicktune.adapters.qdrant.index import VersionIndex
    from clicktune.adapters.qdrant.layout import DOC_ID_KEY, point_id
    from clicktune.adapters.qdrant.writes import MirroredWrite, WriteTarget
