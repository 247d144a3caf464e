"""The operator's loop: mining clicks, training, the offline check, the challenger phase, blue-green
re-indexing, scheduling.

The names below are imported on first use (PEP 562), not with the package: ``clicktune`` (the CLI)
lives in this package, and importing every module here up front (Qdrant client, LangChain,
APScheduler, SQLAlchemy) made ``clicktune --help`` take seconds. ``from clicktune.scheduler import
RetrainLoop`` works as before.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from clicktune.scheduler.challenger import ChallengerPhase, SequentialSignTest, Verdict
    from clicktune.scheduler.gate import OfflineCheck, OfflineCheckResult
    from clicktune.scheduler.jobs import run_worker, start_background_loop
    from clicktune.scheduler.loop import RetrainLoop, RetrainOutcome
    from clicktune.scheduler.miner import MinedFeedback, MiningConfig, mine_events, mine_feedback
    from clicktune.scheduler.reindex import BlueGreenReindexer, ReindexReport, rollback
    from clicktune.scheduler.simulator import (
        ClickModel,
        ClickSimulator,
        DependentClickModel,
        PositionBasedModel,
        SimulationConfig,
    )
    from clicktune.scheduler.training import ClickTrainer, TrainingConfig

#: Public name -> the module that defines it.
_WHERE = {
    "ChallengerPhase": "challenger", "SequentialSignTest": "challenger", "Verdict": "challenger",
    "OfflineCheck": "gate", "OfflineCheckResult": "gate",
    "run_worker": "jobs", "start_background_loop": "jobs",
    "RetrainLoop": "loop", "RetrainOutcome": "loop",
    "MinedFeedback": "miner", "MiningConfig": "miner", "mine_events": "miner", "mine_feedback": "miner",
    "BlueGreenReindexer": "reindex", "ReindexReport": "reindex", "rollback": "reindex",
    "ClickModel": "simulator", "ClickSimulator": "simulator", "SimulationConfig": "simulator",
    "DependentClickModel": "simulator", "PositionBasedModel": "simulator",
    "ClickTrainer": "training", "TrainingConfig": "training",
}

__all__ = [
    "BlueGreenReindexer",
    "ChallengerPhase",
    "ClickModel",
    "ClickSimulator",
    "ClickTrainer",
    "DependentClickModel",
    "MinedFeedback",
    "MiningConfig",
    "OfflineCheck",
    "OfflineCheckResult",
    "PositionBasedModel",
    "ReindexReport",
    "RetrainLoop",
    "RetrainOutcome",
    "SequentialSignTest",
    "SimulationConfig",
    "TrainingConfig",
    "Verdict",
    "mine_events",
    "mine_feedback",
    "rollback",
    "run_worker",
    "start_background_loop",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
