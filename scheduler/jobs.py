"""Running the loop on a schedule with APScheduler 3: in the app (embedded) or as `clicktune worker`.

The job lives in APScheduler's MemoryJobStore and is re-created at every start; nothing about it is
unpickled from, nor any setting written to, the feedback database. A persistent job store would do
both: APScheduler's SQLAlchemy store pickles each job, with its arguments (every setting, secrets
included), and unpickles every row of its table at start, so whoever could write the database could
run code on the worker. What outlives the process is the next run time, per alias, in
``clicktune_schedules`` (a time and the trigger's description, read by `clicktune status` and by the
next start, which keeps an earlier next run time of the same trigger instead of waiting a whole
interval). The table of the old job store is dropped when the feedback database is opened
(``RETIRED_TABLES`` in adapters/clicklog/schema.py).

APScheduler prevents overlapping runs inside one scheduler (``max_instances=1``) and collapses
missed runs (``coalesce``); the lease lock in the feedback store prevents them across processes and
machines, so two workers for one alias still run one loop.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MISSED,
    EVENT_SCHEDULER_SHUTDOWN,
    EVENT_SCHEDULER_STARTED,
    SchedulerEvent,
)
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from clicktune.adapters.clicklog import ClickLog
from clicktune.adapters.errors import ConfigurationError
from clicktune.adapters.settings import ClicktuneSettings

if TYPE_CHECKING:
    from clicktune.scheduler.control import RequestServer

log = logging.getLogger(__name__)

JOB_ID = "clicktune-retrain"


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


def scheduled_retrain(settings: ClicktuneSettings) -> dict[str, Any]:
    """The job's target: run the loop once, unless too few clicks arrived since the last run."""
    from clicktune.scheduler.loop import RetrainLoop

    outcome = RetrainLoop(settings).tick(force=False)
    log.info("scheduled retrain: %s (%s)", outcome.status, outcome.reason)
    return outcome.as_dict()


def configure(scheduler: BaseScheduler, settings: ClicktuneSettings) -> BaseScheduler:
    """Add the loop's job (in memory) to ``scheduler`` and record its next run time as it moves."""
    feedback = ClickLog.from_settings(settings)
    alias = settings.collection_alias
    trigger = build_trigger(settings)
    first_run = _first_run(feedback, alias, trigger)
    scheduler.add_jobstore(MemoryJobStore(), alias="default")
    scheduler.add_job(
        scheduled_retrain,
        trigger=trigger,
        kwargs={"settings": settings},
        id=JOB_ID,
        name="clicktune retrain",
        replace_existing=True,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=settings.schedule.misfire_grace_seconds,
        **({"next_run_time": first_run} if first_run else {}),
    )

    def record_next_run(_event: SchedulerEvent) -> None:
        job = scheduler.get_job(JOB_ID)
        if job is None:
            return
        try:
            feedback.schedules.record(alias, str(job.trigger), job.next_run_time)
        except Exception as exc:  # noqa: BLE001 - status loses a time; the schedule itself runs on
            log.warning("could not record the next run time of alias %r (%s: %s)", alias, type(exc).__name__, exc)

    scheduler.add_listener(record_next_run,
                           EVENT_SCHEDULER_STARTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    return scheduler


def _first_run(feedback: ClickLog, alias: str, trigger: CronTrigger | IntervalTrigger) -> datetime | None:
    """The recorded next run time of the same trigger when it comes before the trigger's own first
    one (a restart then keeps the run it was due, within ``misfire_grace_seconds``); else None."""
    stored = feedback.schedules.get(alias)
    if stored is None or stored.next_run_at is None or stored.trigger != str(trigger):
        return None
    now = datetime.now(timezone.utc)
    own = trigger.get_next_fire_time(None, now)
    return stored.next_run_at if own is None or stored.next_run_at < own else None


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
