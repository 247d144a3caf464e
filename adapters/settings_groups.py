"""The groups of :class:`~clicktune.adapters.settings.ClicktuneSettings`: one per part of the loop.

Each field also has a *flat name* (``training.epochs`` is ``train_epochs``): the keyword
``ClicktuneSettings(train_epochs=1)`` and the variable ``CLICKTUNE_TRAIN_EPOCHS`` use it, as they did
before the settings were grouped. It is written next to the field (``flat(...)``) so that a grep for
a variable's name lands on its field.

The offline check (``gate``) and the challenger phase (``challenger``) are two groups, not one: they
are two steps with their own code (``scheduler.gate`` / ``scheduler.challenger``), and a serving
process reads the challenger's settings (``interleave_share``, ``refresh_seconds``) but never the
gate's. ``seed`` is not in ``training``: it also seeds a serving process's interleaving draws.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

Precision = Literal["auto", "fp32", "bf16"]


def flat(name: str, default: Any, description: str, **constraints: Any) -> Any:
    """A group field that also answers to the flat ``name`` (keyword, and ``CLICKTUNE_<NAME>``)."""
    return Field(default=default, description=description, json_schema_extra={"flat": name}, **constraints)


def flat_name(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    assert isinstance(extra, dict) and isinstance(extra.get("flat"), str), "a group field needs flat(...)"
    return str(extra["flat"])


class SettingsGroup(BaseModel):
    """Frozen, so a shallow copy of the settings never shares a group anyone could change."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    #: The attribute of ``ClicktuneSettings`` that holds the group.
    attribute: ClassVar[str]


class TrainingSettings(SettingsGroup):
    """Fine-tuning a candidate (``scheduler.training.TrainingConfig.from_settings``)."""

    attribute: ClassVar[str] = "training"

    start_from: Literal["base", "champion"] = flat(
        "train_start_from", "base", "Fine-tune the base model on the whole window (no drift) or the champion."
    )
    epochs: float = flat(
        "train_epochs", 3.0, "Passes over the mined pairs; 3 beat 1, 2 and 5 in the recipe sweep (docs/RESULTS.md).", gt=0
    )
    batch_size: int = flat("train_batch_size", 32, "MNRL in-batch negatives grow with it.", ge=2)
    learning_rate: float = flat(
        "train_learning_rate", 2e-5, "AdamW peak learning rate (5e-5 did not help).", gt=0
    )
    warmup_ratio: float = flat(
        "train_warmup_ratio", 0.1, "Share of steps spent warming up the rate.", ge=0, lt=1
    )
    max_seq_length: int | None = flat(
        "train_max_seq_length", 128, "Token limit while training (serving keeps max_seq_length).", ge=8
    )
    loss: Literal["mnrl", "cached_mnrl", "matryoshka"] = flat(
        "train_loss", "mnrl", "sentence-transformers loss: MultipleNegativesRanking, its cached or Matryoshka form."
    )
    precision: Precision = flat(
        "train_precision", "auto",
        "bf16 mixed precision for training; auto = where the hardware runs it natively "
        "(x1.6 pairs/s at equal nDCG@10 on a 2-core AMD EPYC, docs/RESULTS.md), else fp32.",
    )
    min_pairs: int = flat("train_min_pairs", 32, "Fewer mined pairs than this: no training.", ge=1)
    max_rows: int | None = flat(
        "train_max_rows", 1024,
        "Rows an epoch at most: more mined pairs are resampled by weight to this many, so a tick's "
        "training time stays bounded as clicks pile up (docs/RESULTS.md). None: one row per pair.", ge=1,
    )


class GateSettings(SettingsGroup):
    """The offline check, a safety guard before the challenger phase (``scheduler.gate.OfflineCheck``)."""

    attribute: ClassVar[str] = "gate"

    metric: Literal["ndcg@10", "mrr@10", "recall@10"] = flat(
        "gate_metric", "ndcg@10", "The offline check's metric on held-out clicks and the golden set."
    )
    tolerance: float = flat(
        "gate_tolerance", 0.02, "Largest drop on held-out clicks a candidate may show and still be tried.", ge=0
    )
    alpha: float = flat(
        "gate_alpha", 0.05,
        "A held-out drop beyond gate_tolerance refuses a candidate only at this one-sided significance "
        "(paired t-test over queries); an unresolved drop is left to the challenger phase.", gt=0, lt=0.5,
    )
    min_queries: int = flat("gate_min_queries", 10, "Held-out queries needed to decide at all.", ge=1)
    heldout_fraction: float = flat(
        "heldout_fraction", 0.1,
        "Share of click queries (by a hash of their text) kept out of training for the offline check.", ge=0, lt=1,
    )
    golden_dir: Path | None = flat("golden_dir", None, "Optional BEIR folder of golden queries/qrels.")
    golden_tolerance: float = flat("golden_tolerance", 0.005, "Allowed drop on the golden set.", ge=0)


class ChallengerSettings(SettingsGroup):
    """The challenger phase: online team-draft interleaving and its sequential test (``scheduler.challenger``)."""

    attribute: ClassVar[str] = "challenger"

    interleave_share: float = flat(
        "interleave_share", 0.5, "Share of searches served interleaved while a challenger runs.", gt=0, le=1
    )
    alpha: float = flat(
        "challenger_alpha", 0.05, "Chance of promoting a challenger that is no better (one-sided).", gt=0, lt=0.5
    )
    first_look: int = flat(
        "challenger_first_look", 100, "Decided searches (a click difference) before the first decision.", ge=10
    )
    last_look: int = flat(
        "challenger_last_look", 3200, "Decided searches at the last look; looks double from the first.", ge=10
    )
    interim_z: float = flat(
        "challenger_interim_z", 3.0,
        "Boundary at every look before the last (Haybittle-Peto): promote at z >= it, drop at z <= -it.",
        ge=2.0,
    )
    max_hours: float = flat(
        "challenger_max_hours", 168.0, "A phase still undecided after this long drops its challenger.", gt=0
    )
    settle_seconds: float = flat(
        "challenger_settle_seconds", 600.0, "A search counts once its clicks have had this long to arrive.", ge=0
    )
    refresh_seconds: float = flat(
        "challenger_refresh_seconds", 2.0, "How often a serving process re-reads the challenger state.", ge=0
    )

    @model_validator(mode="after")
    def _looks_in_order(self) -> ChallengerSettings:
        if self.last_look < self.first_look:
            raise ValueError("challenger_last_look must be >= challenger_first_look")
        return self


class ScheduleSettings(SettingsGroup):
    """When the loop runs (``scheduler.jobs``) and the lock it runs under (``scheduler.loop``)."""

    attribute: ClassVar[str] = "schedule"

    interval_minutes: float | None = flat(
        "schedule_interval_minutes", 60.0, "Minutes between loop ticks.", gt=0
    )
    cron: str | None = flat("schedule_cron", None, "Crontab expression; overrides the interval.")
    min_new_clicks: int = flat("min_new_clicks", 100, "Clicks since the last run needed to retrain.", ge=0)
    misfire_grace_seconds: int = flat(
        "misfire_grace_seconds", 300, "APScheduler: a tick missed by up to this long still runs (once).", ge=1
    )
    lock_lease_seconds: int = flat("lock_lease_seconds", 600, "Retrain lock lease; renewed while alive.", ge=10)
    request_poll_seconds: float = flat(
        "request_poll_seconds", 1.0,
        "How often the app's loop looks for commands sent from another shell (clicktune retrain, rollback, ...).",
        gt=0, le=60,
    )


class FeedbackSettings(SettingsGroup):
    """What the click log records and which of it the miner reads (``adapters.clicklog``, ``scheduler.miner``)."""

    attribute: ClassVar[str] = "feedback"

    log_impressions: bool = flat("log_impressions", True, "Log every search as an impression.")
    click_window_seconds: float = flat(
        "click_window_seconds", 7 * 24 * 3600, "Latest click after a search.", gt=0
    )
    max_grade: int = flat("max_grade", 3, "Explicit grades go from 0 to this.", ge=1)
    window_days: float | None = flat(
        "feedback_window_days", 90, "Clicks older than this are not mined.", gt=0
    )
    max_clicks_per_user: int | None = flat(
        "max_clicks_per_user", 200,
        "Clicks mined per user (the search's user, else its session), its newest; None: no cap.", ge=1,
    )
    max_anonymous_clicks_per_query: int | None = flat(
        "max_anonymous_clicks_per_query", 200,
        "Clicks mined per query from searches logged without a user, the newest; None: no cap.", ge=1,
    )
    max_pair_weight_ratio: float | None = flat(
        "max_pair_weight_ratio", 10.0,
        "No (query, document) pair's training weight exceeds this many median pairs': a robustness bound "
        "on what one source of clicks can weigh, however many identities it uses; None: no cap.", ge=1,
    )


GROUPS: dict[str, type[SettingsGroup]] = {
    g.attribute: g for g in (TrainingSettings, GateSettings, ChallengerSettings, ScheduleSettings, FeedbackSettings)
}
#: flat name -> (group attribute, field): ``"train_epochs" -> ("training", "epochs")``.
FLAT_NAMES: dict[str, tuple[str, str]] = {
    flat_name(field): (group, name) for group, cls in GROUPS.items() for name, field in cls.model_fields.items()
}
assert len(FLAT_NAMES) == sum(len(cls.model_fields) for cls in GROUPS.values()), "two fields share a flat name"
