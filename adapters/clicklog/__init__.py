"""The click log: impressions, clicks, the cross-process retrain lock and run history (SQLAlchemy)."""

from clicktune.adapters.clicklog.logger import ImpressionLogger
from clicktune.adapters.clicklog.records import Click, FeedbackEvent, Impression, ShownResult
from clicktune.adapters.clicklog.store import ClickLog

__all__ = ["Click", "ClickLog", "FeedbackEvent", "Impression", "ImpressionLogger", "ShownResult"]
