"""One settings object for the whole library, read from arguments, ``CLICKTUNE_*`` variables or ``.env``.

The defaults are the embedded mode: everything under ``./.clicktune/`` so a newcomer runs with no server.
Server mode is the same code with ``qdrant_url`` and ``feedback_url`` pointed elsewhere.

Where things live and how the model runs are top-level (``settings.base_model``); each step of the loop
has a group (``settings.training.epochs``, adapters/settings_groups.py). A group's field keeps its flat
name as keyword and variable: ``ClicktuneSettings(train_epochs=1)`` and ``CLICKTUNE_TRAIN_EPOCHS=1``
both set ``training.epochs``; so does ``ClicktuneSettings(training={"epochs": 1})``.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources import PydanticBaseEnvSettingsSource

from clicktune.adapters.errors import ConfigurationError
from clicktune.adapters.permissions import FileAccess, FileModes
from clicktune.adapters.settings_groups import (
    FLAT_NAMES,
    GROUPS,
    ChallengerSettings,
    FeedbackSettings,
    GateSettings,
    ScheduleSettings,
    SettingsGroup,
    TrainingSettings,
    flat_name,
)

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ENV_PREFIX = "CLICKTUNE_"
#: ``CLICKTUNE_*`` variables that are not settings, read on purpose elsewhere (failure injection in
#: ``adapters.crashpoints``, the CLI's ``--debug``, the test suite's PostgreSQL); any other raises.
OTHER_VARIABLES = frozenset({"CLICKTUNE_CRASH_AT", "CLICKTUNE_FAIL_AT", "CLICKTUNE_DEBUG", "CLICKTUNE_TEST_PG_URL"})


def closest(name: str, candidates: Any) -> str:
    """`` (did you mean 'x'?)`` for the candidate nearest ``name``, or nothing when none is near."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


class ClicktuneSettings(BaseSettings):
    """Where things live and how the model is run; the loop's steps in groups (``settings.training``).

    Paths left unset derive from ``home`` so that moving one variable moves the whole embedded setup.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    def __init__(self, **values: Any) -> None:
        """Refuse unknown names, as arguments or as ``CLICKTUNE_*`` variables (environment or ``.env``):
        a misspelled setting silently left at its default is worse than an error.

        Flat names go into their groups here, before the sources merge: an argument then overrides a
        variable field by field, whichever form either is given in."""
        values = nest(values)
        env_file = values.get("_env_file", self.model_config.get("env_file"))
        _check_variables(dict(os.environ), "environment variable")
        if isinstance(env_file, (str, Path)) and Path(env_file).is_file():
            from dotenv import dotenv_values

            _check_variables(dotenv_values(env_file), f"variable in {env_file}")
        super().__init__(**values)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """pydantic-settings' own sources and order; the environment and ``.env`` also read flat names."""
        assert isinstance(env_settings, PydanticBaseEnvSettingsSource)
        assert isinstance(dotenv_settings, PydanticBaseEnvSettingsSource)
        return init_settings, _FlatVariables(env_settings), _FlatVariables(dotenv_settings), file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _flat_names_into_groups(cls, data: Any) -> Any:
        """``model_validate({"train_epochs": 1})`` as ``{"training": {"epochs": 1}}`` (``__init__`` already did)."""
        return nest(data) if isinstance(data, Mapping) else data

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> ClicktuneSettings:
        """pydantic's copy (unvalidated, as ever), with a flat name or a group's dict updating a copy of
        its group: ``model_copy(update={"lock_lease_seconds": 2})`` sets ``schedule.lock_lease_seconds``."""
        routed = {
            name: getattr(self, name).model_copy(update=value) if name in GROUPS and isinstance(value, dict) else value
            for name, value in nest(update or {}).items()
        }
        return super().model_copy(update=routed, deep=deep)

    home: Path = Field(default=Path(".clicktune"), description="Root folder of the embedded defaults.")
    registry_dir: Path | None = Field(default=None, description="Model registry folder (default: home/registry).")
    base_model: str = Field(default=DEFAULT_BASE_MODEL, description="Hub name or local path of the base model.")
    max_seq_length: int | None = Field(default=256, ge=8, description="Token limit per text; None keeps the model's.")
    device: str | None = Field(default=None, description="torch device; None lets sentence-transformers pick.")
    batch_size: int = Field(default=32, ge=1, description="Texts per forward pass when encoding.")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto", description="auto = bf16 where the hardware runs it natively (AVX512-BF16/AMX, CUDA), else fp32."
    )
    allow_download: bool = Field(
        default=True, description="May a hub name missing from the local cache be downloaded? Off = fail at once."
    )
    model_cache_size: int = Field(default=3, ge=1, description="Model versions kept loaded per process (LRU).")
    keep_versions: int = Field(default=5, ge=2, description="Registry retention: versions kept on disk.")
    watch_registry: bool = Field(default=True, description="Hot-reload promotions made by other processes.")
    file_access: FileAccess = Field(
        default="owner", description="Who may read the files and folders clicktune creates (feedback database, "
        "Qdrant folder, registry): owner = files 0600, folders 0700; group = 0660 / 0770, for a registry shared "
        "between users of one group.",
    )
    watch_polling: bool = Field(
        default=False, description="Poll the registry instead of inotify (needed on NFS and other shared volumes)."
    )

    qdrant_url: str | None = Field(default=None, description="Qdrant server URL; unset = embedded.")
    qdrant_api_key: SecretStr | None = Field(default=None, description="API key for a Qdrant server.")
    qdrant_path: str | None = Field(
        default=None, description="Embedded Qdrant folder (default: home/qdrant), or ':memory:'."
    )
    embedded_engine: Literal["auto", "edge", "local"] = Field(
        default="auto",
        description="Embedded Qdrant engine: edge (Qdrant's own, in Rust) or local (qdrant-client's local mode); "
        "auto = edge, except a folder local mode already holds.",
    )
    hnsw_from_documents: int = Field(
        default=250_000, ge=0,
        description="Collections built with this many documents get an HNSW graph; smaller ones are searched by "
        "a full scan of int8 vectors rescored in float32 (exact recall, ~1.9 ms per 100,000 on 2 cores). 0 = always HNSW.",
    )
    min_free_disk_mb: float = Field(
        default=100, ge=0,
        description="Edge engine: writes, builds and background indexing are refused (DiskFullError) while the "
        "embedded Qdrant folder's disk has less free space than this (plus a build's estimated size); reads go "
        "on. Its memory-mapped files would otherwise die with SIGBUS on a full disk. 0 = no check.",
    )
    collection_alias: str = Field(default="docs", description="Alias the app searches; versions sit behind it.")

    feedback_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the feedback store (default: SQLite file home/feedback.db)."
    )

    # The loop's steps, grouped (adapters/settings_groups.py) -----------------------------------------
    seed: int = Field(
        default=42, description="Seeds training (data order, dropout, the resampling of weighted pairs) and a "
        "serving process's interleaving draws.",
    )
    training: TrainingSettings = Field(default_factory=TrainingSettings, description="Fine-tuning a candidate.")
    gate: GateSettings = Field(default_factory=GateSettings, description="The offline check.")
    challenger: ChallengerSettings = Field(default_factory=ChallengerSettings, description="The challenger phase.")
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings, description="When the loop runs.")
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings, description="The click log.")

    # Operations -------------------------------------------------------------------------------------
    progress: bool | None = Field(default=None, description="Progress bars: None = only on a TTY.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Level of clicktune's logs (the CLI's progress lines are INFO)."
    )

    @field_validator("collection_alias")
    @classmethod
    def _alias_is_plain(cls, value: str) -> str:
        if not value or "__" in value or "/" in value:
            raise ValueError(
                "collection_alias must be non-empty and contain neither '__' (reserved for <alias>__<version>)"
                " nor '/'"
            )
        return value

    @model_validator(mode="after")
    def _one_qdrant_target(self) -> ClicktuneSettings:
        if self.qdrant_url and self.qdrant_path:
            raise ValueError("set either qdrant_url (server) or qdrant_path (embedded), not both")
        return self

    # Derived locations -------------------------------------------------------------------------
    @property
    def resolved_registry_dir(self) -> Path:
        return Path(self.registry_dir) if self.registry_dir else self.home / "registry"

    @property
    def resolved_qdrant_path(self) -> str | None:
        if self.qdrant_url:
            return None
        return self.qdrant_path or str(self.home / "qdrant")

    @property
    def resolved_feedback_url(self) -> str:
        return self.feedback_url or f"sqlite:///{(self.home / 'feedback.db').as_posix()}"

    @property
    def file_modes(self) -> FileModes:
        """The modes of what clicktune creates on disk (``file_access``: adapters/permissions.py)."""
        return FileModes.of(self.file_access)

    def show_progress(self) -> bool:
        """Progress bars only where a person is watching, unless forced either way."""
        import sys

        if self.progress is not None:
            return self.progress
        return sys.stderr.isatty()


#: Top-level settings (where things live, how the model runs): not groups.
TOP_LEVEL: tuple[str, ...] = tuple(n for n in ClicktuneSettings.model_fields if n not in GROUPS)
#: Every keyword ``ClicktuneSettings`` takes: a top-level name, a group's name or a group field's flat name.
SETTING_NAMES: tuple[str, ...] = (*TOP_LEVEL, *GROUPS, *FLAT_NAMES)
#: Every variable read as a setting: ``CLICKTUNE_`` and a top-level or a flat name.
ENV_NAMES: tuple[str, ...] = tuple(ENV_PREFIX + n.upper() for n in (*TOP_LEVEL, *FLAT_NAMES))
assert not set(TOP_LEVEL) & set(FLAT_NAMES), "a flat name is also a top-level setting"


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with each flat name moved into its group's dict (``train_epochs`` -> ``training``).

    Raises :class:`ConfigurationError` on an unknown name (in a group's dict too) and on a flat name
    given with its group's value for the same field, where the two differ.
    """
    nested: dict[str, Any] = {}
    flats: list[tuple[str, Any]] = []
    for name, value in values.items():
        if name in FLAT_NAMES:
            flats.append((name, value))
        elif name.startswith("_") or name in TOP_LEVEL:
            nested[name] = value
        elif name in GROUPS:
            nested[name] = _checked_group(name, value)
        else:
            raise ConfigurationError(f"unknown clicktune setting {name!r}{closest(name, SETTING_NAMES)}")
    for name, value in flats:
        group, field = FLAT_NAMES[name]
        given = nested.get(group, {})
        if isinstance(given, SettingsGroup):
            given = given.model_dump()  # a group object is whole: its defaults count as given
        if not isinstance(given, dict):
            raise ConfigurationError(f"{group} is a {GROUPS[group].__name__} or a dict, not {type(given).__name__}")
        if field in given and not _same(group, field, given[field], value):
            raise ConfigurationError(f"{name}={value!r} and {group}.{field}={given[field]!r} disagree: pass one")
        nested[group] = {**given, field: value}
    return nested


def _checked_group(group: str, value: Any) -> Any:
    if not isinstance(value, Mapping):
        return value
    fields = GROUPS[group].model_fields
    for key in value:
        if key not in fields:
            raise ConfigurationError(f"unknown clicktune setting {group + '.' + key!r}"
                                     f"{closest(f'{group}.{key}', [f'{group}.{f}' for f in fields])}")
    return dict(value)


@cache
def _adapter(group: str, field: str) -> TypeAdapter[Any]:
    return TypeAdapter(GROUPS[group].model_fields[field].annotation)


def _same(group: str, field: str, a: Any, b: Any) -> bool:
    """Equal as the field reads them (``"3"``, ``3`` and ``3.0`` are one number of epochs)."""
    if a == b:
        return True
    try:
        return _adapter(group, field).validate_python(a) == _adapter(group, field).validate_python(b)
    except ValidationError:
        return False


class _FlatVariables(PydanticBaseSettingsSource):
    """The environment or a ``.env`` file as clicktune reads it: a top-level setting by its name, a
    group's field by its flat name (``CLICKTUNE_TRAIN_EPOCHS`` -> ``training.epochs``), and nothing
    else (pydantic-settings passes a ``.env`` file's other lines on; they are not settings)."""

    def __init__(self, source: PydanticBaseEnvSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self.source = source

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads the variables itself

    def __call__(self) -> dict[str, Any]:
        data: dict[str, Any] = {k: v for k, v in self.source().items() if k in TOP_LEVEL}
        prefix = ENV_PREFIX.lower()
        for key, value in self.source.env_vars.items():
            name = key.lower()[len(prefix):] if key.lower().startswith(prefix) else ""
            if name in FLAT_NAMES and value is not None:
                group, field = FLAT_NAMES[name]
                data.setdefault(group, {})[field] = value
        return data


def _check_variables(variables: Mapping[str, Any], where: str) -> None:
    for key in variables:
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and upper not in ENV_NAMES and upper not in OTHER_VARIABLES:
            raise ConfigurationError(
                f"unknown {where} {key}{closest(upper, ENV_NAMES)}: every {ENV_PREFIX}* variable is read as a "
                "clicktune setting; fix its name or unset it")


@dataclass(frozen=True)
class SettingProblem:
    """One problem of a validation error, named as the user gives the setting: its flat name
    (``train_epochs``, the keyword) or ``CLICKTUNE_TRAIN_EPOCHS`` (the variable), never the group's
    path (``training.epochs``), which no user types."""

    #: (flat name, value as given): one pair for a field, every field given for a check across a group.
    settings: tuple[tuple[str, Any], ...]
    message: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.settings)

    def as_variables(self) -> str:
        """``CLICKTUNE_TRAIN_EPOCHS='abc'`` (several joined by commas)."""
        return ", ".join(f"{ENV_PREFIX}{name.upper()}={value!r}" for name, value in self.settings)

    def as_keywords(self) -> str:
        """``train_epochs='abc' (CLICKTUNE_TRAIN_EPOCHS): <message>``."""
        if not self.settings:
            return self.message
        given = ", ".join(f"{name}={value!r}" for name, value in self.settings)
        variables = ", ".join(ENV_PREFIX + name.upper() for name in self.names)
        return f"{given} ({variables}): {self.message}"


def setting_problems(exc: ValidationError) -> list[SettingProblem]:
    """``exc``'s problems, each named by the flat setting the user set.

    A group's field is read from its flat name (``("training", "epochs")`` -> ``train_epochs``,
    ``CLICKTUNE_TRAIN_EPOCHS``); a check across a group's fields (``("challenger",)``) names every
    field of the group that was given.
    """
    problems = []
    for error in exc.errors(include_url=False):
        message = " ".join(str(error["msg"]).split()).removeprefix("Value error, ")
        loc = tuple(str(part) for part in error["loc"])
        value = error.get("input")
        group = GROUPS.get(loc[0]) if loc else None
        settings: tuple[tuple[str, Any], ...]
        if not loc:
            settings = ()
        elif group is None:
            settings = ((loc[0], value),)
        elif len(loc) > 1 and loc[1] in group.model_fields:
            settings = ((flat_name(group.model_fields[loc[1]]), value),)
        else:
            given = value if isinstance(value, Mapping) else {}
            settings = tuple((flat_name(group.model_fields[f]), v) for f, v in given.items() if f in group.model_fields)
        problems.append(SettingProblem(settings, message))
    return problems


def load_settings(settings: ClicktuneSettings | None = None, **overrides: object) -> ClicktuneSettings:
    """Settings from the environment, with keyword overrides, turning validation errors into ours.

    Overrides of an existing ``settings`` win field by field, in either form (``train_epochs=1`` or
    ``training={"epochs": 1}``).
    """
    if settings is not None and not overrides:
        return settings
    try:
        if settings is None:
            return ClicktuneSettings(**overrides)
        merged = settings.model_dump()
        for name, value in nest(overrides).items():
            merged[name] = {**merged[name], **value} if name in GROUPS and isinstance(value, dict) else value
        return ClicktuneSettings(**merged)
    except ValidationError as exc:
        problems = "; ".join(p.as_keywords() for p in setting_problems(exc))
        raise ConfigurationError(f"invalid clicktune settings: {problems}") from exc
