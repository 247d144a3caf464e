"""The systems at clicktune's edges: settings, model loading, the model registry."""

from clicktune.adapters.errors import (
    ClicktuneError,
    ConfigurationError,
    CorruptRegistryError,
    InvalidVersionError,
    ModelNotFoundError,
    NoLiveVersionError,
    NothingToRollBackError,
    RegistryError,
    VersionNotFoundError,
)
from clicktune.adapters.models import load_sentence_transformer, resolve_model_source
from clicktune.adapters.registry import ModelRegistry, RegistryWatcher, VersionInfo
from clicktune.adapters.settings import ClicktuneSettings, load_settings

__all__ = [
    "ClicktuneError",
    "ClicktuneSettings",
    "ConfigurationError",
    "CorruptRegistryError",
    "InvalidVersionError",
    "ModelNotFoundError",
    "ModelRegistry",
    "NoLiveVersionError",
    "NothingToRollBackError",
    "RegistryError",
    "RegistryWatcher",
    "VersionInfo",
    "VersionNotFoundError",
    "load_sentence_transformer",
    "load_settings",
    "resolve_model_source",
]
