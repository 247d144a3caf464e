"""APScheduler wiring: triggers from settings, the job in memory (nothing unpickled, no secret stored),
the recorded next run time, the click threshold."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Column, Float, LargeBinary, MetaData, Table, Unicode, create_engine, inspect, select
from sqlalchemy.engine import make_url

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


class _Payload:
    """Unpickling this creates ``marker``: a stand-in for the ``os.system`` call of a forged job row."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_a_pickled_row_in_the_old_job_table_is_never_unpickled(db_url: str, tmp_path: Path) -> None:
    """Whoever can write the feedback database must not get code run on the worker: a forged row in the
    job table of earlier releases (APScheduler's SQLAlchemy store unpickled every row at start) is
    never read, and the table is dropped when the database is opened."""
    marker = tmp_path / "unpickled"
    engine = create_engine(db_url)
    jobs = Table("clicktune_scheduler_jobs", MetaData(), Column("id", Unicode(191), primary_key=True),
                 Column("next_run_time", Float(25), index=True), Column("job_state", LargeBinary, nullable=False))
    jobs.create(engine)
    with engine.begin() as conn:
        conn.execute(jobs.insert().values(id="forged", next_run_time=0.0, job_state=pickle.dumps(_Payload(marker))))
    engine.dispose()

    scheduler = start_background_loop(ClicktuneSettings(home=tmp_path, feedback_url=db_url,
                                                        schedule_interval_minutes=60))
    try:
        assert [job.id for job in scheduler.get_jobs()] == [JOB_ID]
    finally:
        scheduler.shutdown(wait=True)
    assert not marker.exists()
    engine = create_engine(db_url)
    assert not inspect(engine).has_table("clicktune_scheduler_jobs")
    engine.dispose()
    # On SQLite the dropped rows' bytes (an old job's settings, secrets included) leave the file too.
    assert [f.name for f in tmp_path.glob("feedback.db*") if str(marker).encode() in f.read_bytes()] == []


def _stored_text(url: str) -> str:
    """Every value of every table of the feedback database, as text (bytes decoded as latin-1)."""
    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    values: list[str] = []
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                values += [v.decode("latin-1") if isinstance(v, bytes) else repr(v) for v in row]
    engine.dispose()
    return "\n".join(values)


def test_no_secret_is_persisted_in_the_feedback_database(db_url: str, tmp_path: Path) -> None:
    """A scheduled loop keeps its settings in memory: neither the Qdrant API key nor the feedback
    database's password reaches any table (nor, on SQLite, the file's bytes)."""
    api_key, password = "qk-" + uuid.uuid4().hex, "pw-" + uuid.uuid4().hex
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":  # the test server trusts local connections: any password
        url = url.set(password=password)
    settings = ClicktuneSettings(home=tmp_path, feedback_url=url.render_as_string(hide_password=False),
                                 qdrant_url="http://127.0.0.1:6333", qdrant_api_key=api_key,
                                 schedule_interval_minutes=60)
    scheduler = start_background_loop(settings)
    scheduler.shutdown(wait=True)
    stored = _stored_text(settings.resolved_feedback_url)
    assert api_key not in stored and password not in stored
    assert "interval[1:00:00]" in stored  # the scan does read what the loop recorded
    for file in tmp_path.glob("feedback.db*"):
        assert api_key.encode() not in file.read_bytes()


def test_the_next_run_time_is_recorded_and_a_restart_keeps_it(tmp_path: Path) -> None:
    settings = ClicktuneSettings(home=tmp_path, schedule_interval_minutes=30, misfire_grace_seconds=120)
    scheduler = configure(BackgroundScheduler(timezone="UTC"), settings)
    scheduler.start(paused=True)
    job = scheduler.get_job(JOB_ID)
    assert job.max_instances == 1 and job.coalesce is True and job.misfire_grace_time == 120
    assert job.kwargs["settings"] is settings  # in memory: nothing pickled, nothing stored
    due = job.next_run_time
    scheduler.shutdown(wait=False)
    stored = ClickLog.from_settings(settings).schedules.get("docs")
    assert stored.next_run_at == due and stored.trigger == str(job.trigger)

    # A new scheduler keeps the run it was due instead of waiting a whole interval from its start;
    # another trigger starts afresh, and another alias has a schedule of its own.
    restarted = configure(BackgroundScheduler(timezone="UTC"), settings)
    restarted.start(paused=True)
    assert restarted.get_job(JOB_ID).next_run_time == due
    restarted.shutdown(wait=False)
    for other in (settings.model_copy(update={"schedule_interval_minutes": 45}),
                  settings.model_copy(update={"collection_alias": "faq"})):
        fresh = configure(BackgroundScheduler(timezone="UTC"), other)
        fresh.start(paused=True)
        assert fresh.get_job(JOB_ID).next_run_time > due
        fresh.shutdown(wait=False)


def test_scheduled_run_waits_for_enough_clicks(settings: ClicktuneSettings) -> None:
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        ClicktuneVectorStore(settings, embeddings=emb).add_texts(["a doc"], ids=["a"])
        outcome = scheduled_retrain(settings.model_copy(update={"min_new_clicks": 5}))
    assert outcome["status"] == "skipped" and "0 new clicks < min_new_clicks=5" in outcome["reason"]


def test_background_loop_starts_and_stops(tmp_path: Path) -> None:
    scheduler = start_background_loop(ClicktuneSettings(home=tmp_path, schedule_interval_minutes=60))
    try:
        assert scheduler.running and scheduler.get_job(JOB_ID).next_run_time is not None
    finally:
        scheduler.shutdown(wait=False)
