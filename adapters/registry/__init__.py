"""The model registry: a folder of immutable versions and an atomically replaced CURRENT pointer."""

from clicktune.adapters.registry.records import CurrentPointer, VersionInfo, VersionStatus
from clicktune.adapters.registry.store import ModelRegistry, format_version, parse_version
from clicktune.adapters.registry.watcher import RegistryWatcher

__all__ = [
    "CurrentPointer",
    "ModelRegistry",
    "RegistryWatcher",
    "VersionInfo",
    "VersionStatus",
    "format_version",
    "parse_version",
]
