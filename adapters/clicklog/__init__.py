"""The click log: impressions, clicks, the cross-process retrain lock and run history (SQLAlchemy)."""

from clicktune.adapters.clicklog.challengers import ChallengerLog
from clicktune.adapters.clicklog.clicks import ClickInput, parse_click, parse_clicks
from clicktune.adapters.clicklog.logger import ImpressionLogger
from clicktune.adapters.clicklog.records import (
    Challenger,
    Click,
    FeedbackEvent,
    Impression,
    InterleavedSearch,
    ShownResult,
)
from clicktune.adapters.clicklog.requests import ControlRequest, LoopBeat, RequestLog
from clicktune.adapters.clicklog.schedules import ScheduledRun, ScheduleLog
from clicktune.adapters.clicklog.store import ClickLog

__all__ = [
    "Challenger", "ChallengerLog", "Click", "ClickInput", "ClickLog", "ControlRequest", "FeedbackEvent", "Impression",
    "ImpressionLogger", "InterleavedSearch", "LoopBeat", "RequestLog", "ScheduleLog", "ScheduledRun", "ShownResult",
    "parse_click", "parse_clicks",
]
