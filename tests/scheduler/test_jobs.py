"""APScheduler wiring: triggers from settings, the persistent job store, the click threshold."""

from __future__ import annotations

from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from clicktune.adapters import ClicktuneSettings, ConfigurationError
from clicktune.adapters.clicklog import ClickLog
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.jobs import (
    JOB_ID,
    build_trigger,
    configure,
    scheduled_retrain,
    start_background_loop,
)


def test_triggers_from_settings(tmp_path: Path) -> None:
    assert isinstance(build_trigger(ClicktuneSettings(home=tmp_path, schedule_interval_minutes=15)), IntervalTrigger)
    cron = build_trigger(ClicktuneSettings(home=tmp_path, schedule_cron="0 3 * * *"))
    assert isinstance(cron, CronTrigger) and "hour='3'" in str(cron)
    with pytest.raises(ConfigurationError, match="crontab"):
        build_trigger(ClicktuneSettings(home=tmp_path, schedule_cron="every day"))


def test_job_is_persisted_in_the_feedback_database(tmp_path: Path) -> None:
    settings = ClicktuneSettings(home=tmp_path, schedule_interval_minutes=30, misfire_grace_seconds=120)
    ClickLog.from_settings(settings)
    scheduler = configure(BackgroundScheduler(timezone="UTC"), settings)
    scheduler.start(paused=True)
    job = scheduler.get_job(JOB_ID)
    assert job.max_instances == 1 and job.coalesce is True and job.misfire_grace_time == 120
    assert job.kwargs["settings"]["home"] == str(tmp_path.resolve())
    scheduler.shutdown(wait=False)

    # A new scheduler on the same database finds the job (and its next run time) again.
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore

    restarted = BackgroundScheduler(timezone="UTC")
    restarted.add_jobstore(SQLAlchemyJobStore(url=settings.resolved_feedback_url, tablename="clicktune_scheduler_jobs"))
    restarted.start(paused=True)
    assert restarted.get_job(JOB_ID) is not None
    restarted.shutdown(wait=False)


def test_scheduled_run_waits_for_enough_clicks(settings: ClicktuneSettings) -> None:
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        ClicktuneVectorStore(settings, embeddings=emb).add_texts(["a doc"], ids=["a"])
        data = settings.model_dump(mode="json", exclude_none=True)
        data["schedule"]["min_new_clicks"] = 5
        outcome = scheduled_retrain(data)
    assert outcome["status"] == "skipped" and "0 new clicks < min_new_clicks=5" in outcome["reason"]


def test_background_loop_starts_and_stops(tmp_path: Path) -> None:
    scheduler = start_background_loop(ClicktuneSettings(home=tmp_path, schedule_interval_minutes=60))
    try:
        assert scheduler.running and scheduler.get_job(JOB_ID).next_run_time is not None
    finally:
        scheduler.shutdown(wait=False)
