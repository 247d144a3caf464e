"""The operator's loop: mining clicks, training, the offline check, the challenger phase, blue-green
re-indexing, scheduling."""

from clicktune.scheduler.challenger import ChallengerPhase, SequentialSignTest, Verdict
from clicktune.scheduler.gate import OfflineCheck, OfflineCheckResult
from clicktune.scheduler.jobs import run_worker, start_background_loop
from clicktune.scheduler.loop import RetrainLoop, RetrainOutcome
from clicktune.scheduler.miner import MinedFeedback, MiningConfig, mine_events, mine_feedback
from clicktune.scheduler.reindex import BlueGreenReindexer, ReindexReport, rollback
from clicktune.scheduler.simulator import ClickModel, ClickSimulator, SimulationConfig
from clicktune.scheduler.training import ClickTrainer, TrainingConfig

__all__ = [
    "BlueGreenReindexer",
    "ClickModel",
    "ClickSimulator",
    "ClickTrainer",
    "ChallengerPhase",
    "MinedFeedback",
    "MiningConfig",
    "OfflineCheck",
    "OfflineCheckResult",
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
