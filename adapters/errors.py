"""Typed errors shared by every part of clicktune.

They live in ``adapters`` because both ``plugin`` and ``scheduler`` import from here and neither may
import the other. Every message is meant to tell the operator what to fix, not just what broke.
"""

from __future__ import annotations


class ClicktuneError(Exception):
    """Base class: catch this to handle anything clicktune raises on purpose."""


class ConfigurationError(ClicktuneError, ValueError):
    """A setting or argument cannot be used as given."""


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


class NothingToRollBackError(RegistryError):
    """Rollback was asked for but there is no previous version to go back to."""
