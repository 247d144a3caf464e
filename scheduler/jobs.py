"""Running the loop on a schedule with APScheduler 3: in the app (embedded) or as `clicktune worker`.

The job is stored in the feedback database (SQLAlchemyJobStore), so a restarted worker keeps its
schedule and its next run time. APScheduler prevents overlapping runs inside one scheduler
(``max_instances=1``) and collapses missed runs (``coalesce``); the lease lock in the feedback store
prevents them across processes and machines.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from apscheduler.events import EVENT_SCHEDULER_SHUTDOWN
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from clicktune.adapters.errors import ConfigurationError
from clicktune.adapters.settings import ClicktuneSettings

if TYPE_CHECKING:
    from clicktune.scheduler.control import RequestServer

log = logging.getLogger(__name__)

JOB_ID = "clicktune-retrain"
JOBS_TABLE = "clicktune_scheduler_jobs"


def build_trigger(settings: ClicktuneSettings) -> CronTrigger | IntervalTrigger:
    """A cron expression wins over the interval; a bad expression is a configuration error."""
    schedule = settings.schedule
    if schedule.cron:
        try:
            return CronTrigger.from_crontab(schedule.cron, timezone="UTC")
        except ValueError as exc:
            raise ConfigurationError(f"schedule_cron {schedule.cron!r} is not a crontab expression: {exc}") from exc
    if not schedule.interval_minutes:
        raise ConfigurationError("set schedule_interval_minutes or schedule_cron to schedule the loop")
    return IntervalTrigger(minutes=schedule.interval_minutes, timezone="UTC")


def _portable(settings: ClicktuneSettings) -> dict[str, Any]:
    """Settings as plain JSON for the persisted job, with paths made absolute (the worker's cwd may differ)."""
    data = settings.model_dump(mode="json", exclude_none=True)
    data["home"] = str(settings.home.resolve())
    if settings.registry_dir:
        data["registry_dir"] = str(settings.registry_dir.resolve())
    data["feedback_url"] = settings.resolved_feedback_url
    if settings.qdrant_api_key:
        data["qdrant_api_key"] = settings.qdrant_api_key.get_secret_value()
    return data


def scheduled_retrain(settings: dict[str, Any]) -> dict[str, Any]:
    """The stored job's target: run the loop once, unless too few clicks arrived since the last run."""
    from clicktune.scheduler.loop import RetrainLoop

    outcome = RetrainLoop(ClicktuneSettings(**settings)).tick(force=False)
    log.info("scheduled retrain: %s (%s)", outcome.status, outcome.reason)
    return outcome.as_dict()


def configure(scheduler: BaseScheduler, settings: ClicktuneSettings) -> BaseScheduler:
    scheduler.add_jobstore(
        SQLAlchemyJobStore(url=settings.resolved_feedback_url, tablename=JOBS_TABLE), alias="default"
    )
    scheduler.add_job(
        scheduled_retrain,
        trigger=build_trigger(settings),
        kwargs={"settings": _portable(settings)},
        id=JOB_ID,
        name="clicktune retrain",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=settings.schedule.misfire_grace_seconds,
    )
    return scheduler


def serve_requests(scheduler: BaseScheduler, settings: ClicktuneSettings) -> RequestServer:
    """Serve commands sent from other shells (``clicktune.scheduler.control``) while ``scheduler`` runs:
    the server starts now and stops when the scheduler shuts down."""
    from clicktune.scheduler.control import RequestServer

    server = RequestServer(settings).start()
    scheduler.add_listener(lambda _event: server.stop(), EVENT_SCHEDULER_SHUTDOWN)
    return server


def start_background_loop(settings: ClicktuneSettings | None = None) -> BackgroundScheduler:
    """Embedded mode: run the loop inside the app's process (embedded Qdrant admits one process), and
    serve the commands an operator sends from another shell (`clicktune retrain`, `rollback`, ...)."""
    settings = settings or ClicktuneSettings()
    scheduler = BackgroundScheduler(timezone="UTC")
    configure(scheduler, settings)
    scheduler.start()
    serve_requests(scheduler, settings)
    log.info("clicktune loop scheduled in-process: %s", scheduler.get_job(JOB_ID).trigger)
    return scheduler


def run_worker(settings: ClicktuneSettings | None = None) -> None:
    """Server mode: block and run the schedule in this process (`clicktune worker`), serving requests too."""
    settings = settings or ClicktuneSettings()
    scheduler = BlockingScheduler(timezone="UTC")
    configure(scheduler, settings)
    log.info("clicktune worker started: %s", scheduler.get_job(JOB_ID).trigger)
    server = serve_requests(scheduler, settings)
    try:
        scheduler.start()
    finally:
        server.stop()
