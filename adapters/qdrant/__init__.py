"""Qdrant: versioned collections behind an alias, caller ids kept, writes coordinated with reindexing."""

from clicktune.adapters.qdrant.adoption import ImportReport, import_collection
from clicktune.adapters.qdrant.client import close_shared_clients, qdrant_client_from_settings
from clicktune.adapters.qdrant.collections import AliasedCollections, CollectionVersion
from clicktune.adapters.qdrant.coordination import WriteCoordinator, coordinator_for
from clicktune.adapters.qdrant.documents import (
    ANNOTATIONS_KEY,
    DOC_ID_KEY,
    CollectionDocumentStore,
    document_from_payload,
    point_id,
    validate_documents,
)
from clicktune.adapters.qdrant.errors import (
    AliasIsCollectionError,
    AliasNotFoundError,
    CollectionLayoutError,
    CollectionNotFoundError,
    ForeignCollectionError,
    ImportVerificationError,
    NothingToReindexError,
    ReindexVerificationError,
    VersionAlreadyLiveError,
    VersionKeptForRollbackError,
)
from clicktune.adapters.qdrant.handle import IndexHandle

__all__ = [
    "ANNOTATIONS_KEY",
    "DOC_ID_KEY",
    "AliasIsCollectionError",
    "AliasNotFoundError",
    "CollectionLayoutError",
    "CollectionNotFoundError",
    "ForeignCollectionError",
    "ImportReport",
    "ImportVerificationError",
    "IndexHandle",
    "CollectionVersion",
    "NothingToReindexError",
    "ReindexVerificationError",
    "VersionAlreadyLiveError",
    "VersionKeptForRollbackError",
    "CollectionDocumentStore",
    "AliasedCollections",
    "WriteCoordinator",
    "close_shared_clients",
    "coordinator_for",
    "import_collection",
    "document_from_payload",
    "point_id",
    "qdrant_client_from_settings",
    "validate_documents",
]
