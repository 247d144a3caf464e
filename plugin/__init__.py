"""What a LangChain app imports: embeddings and a vector store that follow the model registry, clicks,
the click input model, and the errors an app may catch (all subclasses of ``ClicktuneError``)."""

from clicktune.adapters.clicklog import ClickInput
from clicktune.adapters.errors import (
    ClicktuneError,
    ClickWindowExpiredError,
    ConfigurationError,
    DocNotShownError,
    FeedbackError,
    InvalidClickError,
    InvalidDocumentsError,
    InvalidDwellError,
    InvalidGradeError,
    InvalidVersionError,
    MalformedIdError,
    MixedSearchesError,
    ModelNotFoundError,
    RegistryError,
    UnknownSearchError,
    UnsupportedEmbeddingsError,
    VectorDimensionError,
    VersionNotFoundError,
    VersionNotIndexedError,
)
from clicktune.adapters.qdrant import ANNOTATIONS_KEY
from clicktune.adapters.qdrant.errors import AliasIsCollectionError, CollectionLayoutError
from clicktune.plugin.clicks import (
    arecord_click,
    arecord_clicks,
    record_click,
    record_clicks,
    search_id_of,
    set_default_click_log,
)
from clicktune.plugin.embeddings import ClicktuneEmbeddings, ModelVersionSwitchWarning
from clicktune.plugin.vectorstore import ClicktuneVectorStore

__all__ = [
    "ANNOTATIONS_KEY",
    "AliasIsCollectionError",
    "ClickInput",
    "ClickWindowExpiredError",
    "ClicktuneEmbeddings",
    "ClicktuneError",
    "ClicktuneVectorStore",
    "CollectionLayoutError",
    "ConfigurationError",
    "DocNotShownError",
    "FeedbackError",
    "InvalidClickError",
    "InvalidDocumentsError",
    "InvalidDwellError",
    "InvalidGradeError",
    "InvalidVersionError",
    "MalformedIdError",
    "MixedSearchesError",
    "ModelNotFoundError",
    "ModelVersionSwitchWarning",
    "RegistryError",
    "UnknownSearchError",
    "UnsupportedEmbeddingsError",
    "VectorDimensionError",
    "VersionNotFoundError",
    "VersionNotIndexedError",
    "arecord_click",
    "arecord_clicks",
    "record_click",
    "record_clicks",
    "search_id_of",
    "set_default_click_log",
]
