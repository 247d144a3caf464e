"""Typed errors shared by every part of clicktune.

They live in ``adapters`` because both ``plugin`` and ``scheduler`` import from here and neither may
import the other. Every message is meant to tell the operator what to fix, not just what broke.
"""

from __future__ import annotations


class ClicktuneError(Exception):
    """Base class: catch this to handle anything clicktune raises on purpose."""


class ConfigurationError(ClicktuneError, ValueError):
    """A setting or argument cannot be used as given."""


class UnsupportedEmbeddingsError(ConfigurationError, TypeError):
    """The store was given an ``Embeddings`` that is not a ``ClicktuneEmbeddings``: it embeds with its
    registry's versions only (pass a ``ClicktuneEmbeddings``, or nothing to build one from the settings)."""


class VersionNotIndexedError(ClicktuneError, LookupError):
    """A search by vector named a model version with no collection under the alias (never indexed,
    or removed by retention): a vector is only comparable with the version that produced it."""


class VectorDimensionError(ClicktuneError, ValueError):
    """A search by vector got a vector whose length is not the dimension of the version searched."""


class ModelNotFoundError(ClicktuneError, LookupError):
    """A model name or path cannot be resolved to weights on this machine."""


class RegistryError(ClicktuneError):
    """Base class for model-registry problems."""


class VersionNotFoundError(RegistryError, LookupError):
    """A version name does not exist in the registry."""


class InvalidVersionError(RegistryError, ValueError):
    """A string is not a version name of the form ``v0001``."""


class CorruptRegistryError(RegistryError):
    """A registry file exists but cannot be read (bad JSON, missing model files, dangling pointer)."""


class NoLiveVersionError(RegistryError, LookupError):
    """The registry has no live version yet: ``bootstrap()`` makes ``v0001`` from the base model."""


class NothingToRollBackError(RegistryError):
    """Rollback was asked for but there is no previous version to go back to."""


class InvalidDocumentsError(ClicktuneError, ValueError):
    """``add_texts`` / ``add_documents`` got a text, a metadata or a count of ids it cannot index.

    The whole call is checked before anything is written, so nothing was (an unusable id raises
    :class:`MalformedIdError` instead, the same way).
    """


class FeedbackError(ClicktuneError, ValueError):
    """Base class: an impression or click cannot be stored as given (nothing was stored)."""


class MalformedIdError(FeedbackError):
    """A search id is not a UUID, a document id is empty or too long, a user or session id is too long,
    or any of them holds a NUL character or an unpaired surrogate (no backend can store those alike).

    ``add_texts`` raises it too, for a document id the click log could never hold (see ``adapters.limits``).
    """


class InvalidSearchError(ClicktuneError, ValueError, TypeError):
    """A search got an argument it cannot use: ``k`` or ``fetch_k`` that is not a positive integer, or a
    ``filter`` that is not a ``qdrant_client.models.Filter``. Nothing was searched or logged."""


class InvalidQueryError(InvalidSearchError, FeedbackError):
    """A search query is not a string, or holds what the click log cannot store (a NUL character, an
    unpaired surrogate): refused before the search, on every backend alike, logged or not."""


class MixedSearchesError(FeedbackError):
    """Documents handed to ``search_id_of`` came from more than one search: which one a click belongs to is ambiguous."""


class InvalidClickError(FeedbackError):
    """A click is not shaped like one: not a mapping, a required field missing, an unknown field, or a
    field given under both its current and its older name (``user_id``/``user``,
    ``dwell_seconds``/``dwell``).

    ``errors`` lists each problem as ``{"loc": [...], "msg": ...}`` (so the HTTP endpoint can answer
    with them); ``index`` is the click's position when it came in a batch.
    """

    def __init__(self, message: str, *, errors: list[dict] | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.errors: list[dict] = list(errors or [])
        self.index = index


class UnknownSearchError(FeedbackError, LookupError):
    """No impression was logged under this search id."""


class DocNotShownError(FeedbackError):
    """The clicked document was not among the results shown by that search."""


class InvalidDwellError(FeedbackError):
    """Dwell time is negative or not a finite number."""


class InvalidGradeError(FeedbackError):
    """An explicit grade is outside 0..max_grade."""


class ClickWindowExpiredError(FeedbackError):
    """The click arrives later than the click window allows after its search."""


class ChallengerError(ClicktuneError):
    """Base class: a challenger phase cannot be started, changed or ended as asked."""


class ChallengerRunningError(ChallengerError):
    """A challenger phase is running for this alias; end it (promote or drop) before this operation."""


class NoChallengerError(ChallengerError, LookupError):
    """No challenger phase is running for this alias."""


class LeaseLostError(ClicktuneError):
    """This process no longer holds the alias's retrain lease (a renewal was refused, or it expired
    while the feedback database could not be reached); another worker may hold it now. Nothing was
    swapped or promoted: the champion keeps serving, and the next run cleans up what this one built."""


class DiskFullError(ClicktuneError, OSError):
    """A write or a build was refused before it started: the disk holding an embedded folder has less
    free space than ``min_free_disk_mb`` (``CLICKTUNE_MIN_FREE_DISK_MB``) asks to keep, beyond what the
    build needs. Nothing was written; reads go on. Free space, or lower the floor knowingly: the edge
    engine writes through memory-mapped files, and a disk that fills under them kills the process
    (SIGBUS) instead of raising.
    """

    def __init__(self, message: str, *, folder: str, free_bytes: int, floor_bytes: int, need_bytes: int = 0) -> None:
        super().__init__(message)
        self.folder = folder
        self.free_bytes = free_bytes
        self.floor_bytes = floor_bytes
        self.need_bytes = need_bytes
