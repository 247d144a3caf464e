"""One settings object for the whole library, read from arguments, ``CLICKTUNE_*`` variables or ``.env``.

The defaults are the embedded mode: everything under ``./.clicktune/`` so a newcomer runs with no server.
Server mode is the same code with ``qdrant_url`` and ``feedback_url`` pointed elsewhere.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clicktune.adapters.errors import ConfigurationError

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
    """Where things live and how the model is run.

    Paths left unset derive from ``home`` so that moving one variable moves the whole embedded setup.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore")

    def __init__(self, **values: Any) -> None:
        """Refuse unknown names, as arguments or as ``CLICKTUNE_*`` variables (environment or ``.env``):
        a misspelled setting silently left at its default is worse than an error."""
        fields = type(self).model_fields
        for name in values:
            if not name.startswith("_") and name not in fields:
                raise ConfigurationError(f"unknown clicktune setting {name!r}{closest(name, fields)}")
        env_file = values.get("_env_file", self.model_config.get("env_file"))
        _check_variables(dict(os.environ), "environment variable", fields)
        if isinstance(env_file, (str, Path)) and Path(env_file).is_file():
            from dotenv import dotenv_values

            _check_variables(dotenv_values(env_file), f"variable in {env_file}", fields)
        super().__init__(**values)

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
    watch_polling: bool = Field(
        default=False, description="Poll the registry instead of inotify (needed on NFS and other shared volumes)."
    )

    qdrant_url: str | None = Field(default=None, description="Qdrant server URL; unset = embedded.")
    qdrant_api_key: SecretStr | None = Field(default=None, description="API key for a Qdrant server.")
    qdrant_path: str | None = Field(
        default=None, description="Embedded Qdrant folder (default: home/qdrant), or ':memory:'."
    )
    collection_alias: str = Field(default="docs", description="Alias the app searches; versions sit behind it.")

    feedback_url: str | None = Field(
        default=None, description="SQLAlchemy URL of the feedback store (default: SQLite file home/feedback.db)."
    )

    # Training (the loop) ---------------------------------------------------------------------------
    train_start_from: Literal["base", "champion"] = Field(
        default="base", description="Fine-tune the base model on the whole window (no drift) or the champion."
    )
    train_epochs: float = Field(
        default=3.0, gt=0, description="Passes over the mined pairs; 3 beat 1, 2 and 5 in the recipe sweep (README)."
    )
    train_batch_size: int = Field(default=32, ge=2, description="MNRL in-batch negatives grow with it.")
    train_learning_rate: float = Field(default=2e-5, gt=0, description="AdamW peak learning rate (5e-5 did not help).")
    train_warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Share of steps spent warming up the rate.")
    train_max_seq_length: int | None = Field(
        default=128, ge=8, description="Token limit while training (serving keeps max_seq_length)."
    )
    train_loss: Literal["mnrl", "cached_mnrl", "matryoshka"] = Field(
        default="mnrl", description="sentence-transformers loss: MultipleNegativesRanking, its cached or Matryoshka form."
    )
    train_precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="bf16 mixed precision for training; auto = where the hardware runs it natively "
        "(x1.6 pairs/s at equal nDCG@10 on this project's CPU, benchmarks/precision.py), else fp32.",
    )
    train_min_pairs: int = Field(default=32, ge=1, description="Fewer mined pairs than this: no training.")
    seed: int = Field(default=42, description="Seeds training: data order, dropout and the resampling of weighted pairs.")

    # The offline check (a safety guard before the challenger phase) -------------------------------
    gate_metric: Literal["ndcg@10", "mrr@10", "recall@10"] = Field(
        default="ndcg@10", description="The offline check's metric on held-out clicks and the golden set."
    )
    gate_tolerance: float = Field(
        default=0.02, ge=0, description="Largest drop on held-out clicks a candidate may show and still be tried."
    )
    gate_min_queries: int = Field(default=10, ge=1, description="Held-out queries needed to decide at all.")
    heldout_fraction: float = Field(
        default=0.1, ge=0, lt=1,
        description="Share of click queries (by a hash of their text) kept out of training for the offline check.",
    )
    golden_dir: Path | None = Field(default=None, description="Optional BEIR folder of golden queries/qrels.")
    golden_tolerance: float = Field(default=0.005, ge=0, description="Allowed drop on the golden set.")

    # The challenger phase (online team-draft interleaving) ----------------------------------------
    interleave_share: float = Field(
        default=0.5, gt=0, le=1, description="Share of searches served interleaved while a challenger runs."
    )
    challenger_alpha: float = Field(
        default=0.05, gt=0, lt=0.5, description="Chance of promoting a challenger that is no better (one-sided)."
    )
    challenger_first_look: int = Field(
        default=100, ge=10, description="Decided searches (a click difference) before the first decision."
    )
    challenger_last_look: int = Field(
        default=1600, ge=10, description="Decided searches at the last look; looks double from the first."
    )
    challenger_max_hours: float = Field(
        default=168.0, gt=0, description="A phase still undecided after this long drops its challenger."
    )
    challenger_settle_seconds: float = Field(
        default=600.0, ge=0, description="A search counts once its clicks have had this long to arrive."
    )
    challenger_refresh_seconds: float = Field(
        default=2.0, ge=0, description="How often a serving process re-reads the challenger state."
    )

    # Scheduling ------------------------------------------------------------------------------------
    schedule_interval_minutes: float | None = Field(default=60.0, gt=0, description="Minutes between loop ticks.")
    schedule_cron: str | None = Field(default=None, description="Crontab expression; overrides the interval.")
    min_new_clicks: int = Field(default=100, ge=0, description="Clicks since the last run needed to retrain.")
    misfire_grace_seconds: int = Field(
        default=300, ge=1, description="APScheduler: a tick missed by up to this long still runs (once)."
    )
    lock_lease_seconds: int = Field(default=600, ge=10, description="Retrain lock lease; renewed while alive.")

    # Feedback -----------------------------------------------------------------------------------
    log_impressions: bool = Field(default=True, description="Log every search as an impression.")
    click_window_seconds: float = Field(default=7 * 24 * 3600, gt=0, description="Latest click after a search.")
    max_grade: int = Field(default=3, ge=1, description="Explicit grades go from 0 to this.")
    feedback_window_days: float | None = Field(default=90, gt=0, description="Clicks older than this are not mined.")

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
        if self.challenger_last_look < self.challenger_first_look:
            raise ValueError("challenger_last_look must be >= challenger_first_look")
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

    def show_progress(self) -> bool:
        """Progress bars only where a person is watching, unless forced either way."""
        import sys

        if self.progress is not None:
            return self.progress
        return sys.stderr.isatty()


def _check_variables(variables: dict[str, Any], where: str, fields: Any) -> None:
    names = {ENV_PREFIX + f.upper() for f in fields}
    for key in variables:
        upper = key.upper()
        if upper.startswith(ENV_PREFIX) and upper not in names and upper not in OTHER_VARIABLES:
            raise ConfigurationError(
                f"unknown {where} {key}{closest(upper, names)}: every {ENV_PREFIX}* variable is read as a "
                "clicktune setting; fix its name or unset it")


def load_settings(settings: ClicktuneSettings | None = None, **overrides: object) -> ClicktuneSettings:
    """Settings from the environment, with keyword overrides, turning validation errors into ours."""
    from pydantic import ValidationError

    if settings is not None and not overrides:
        return settings
    try:
        if settings is not None:
            return ClicktuneSettings(**{**settings.model_dump(), **overrides})  # type: ignore[arg-type]
        return ClicktuneSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise ConfigurationError(f"invalid clicktune settings: {exc}") from exc
