"""The metrics (adapters/observability): what a scrape says about a feedback database and a registry,
read back with prometheus-client's own parser; and the process counters the click log and the impression
logger keep. Real SQLite and PostgreSQL (``db_url``), a real registry (the packaged model, live v0001).
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.adapters.clicklog import ClickLog, Impression, ImpressionLogger, ShownResult
from clicktune.adapters.clicklog.records import utcnow
from clicktune.adapters.errors import DocNotShownError
from clicktune.adapters.observability.metrics import metrics_registry
from clicktune.adapters.observability.state import StateReader

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(reader: StateReader) -> Samples:
    """One scrape, parsed by prometheus-client's own parser: (sample name, labels) -> value."""
    text = generate_latest(metrics_registry(reader, cache_seconds=0)).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def log_search(log: ClickLog, alias: str, version: str, clicked_ranks: list[int], *,
               challenge_id: int | None = None, credit: list[str] | None = None) -> str:
    """One search showing d0..d9 (ranks 1..10) and the clicks at ``clicked_ranks``; returns its id."""
    impression = Impression(
        search_id=str(uuid.uuid4()),
        query="q", model_version=version, collection=f"{alias}__{version}", alias=alias, challenge_id=challenge_id,
        results=[ShownResult(doc_id=f"d{r}", rank=r, model_version=credit[r - 1] if credit else None,
                             shared=False if credit else None) for r in range(1, 11)])
    log.log_impression(impression)
    for rank in clicked_ranks:
        log.record_click(impression.search_id, f"d{rank}")
    return impression.search_id


@pytest.fixture
def state(db_url: str, home: Path) -> tuple[ClickLog, StateReader, ClicktuneSettings]:
    settings = ClicktuneSettings(home=home, feedback_url=db_url, challenger_first_look=10, challenger_last_look=40)
    log = ClickLog(db_url)
    yield log, StateReader(log, ModelRegistry.from_settings(settings), settings), settings
    log.close()


def test_a_scrape_reports_click_through_by_version_the_phase_the_runs_and_the_live_version(state) -> None:
    log, reader, settings = state
    alias = settings.collection_alias
    for ranks in ([1], [3], [7], []):  # v0001: clicked within 1 / 3 / 10 by 1 / 2 / 3 of 4 searches
        log_search(log, alias, "v0001", ranks)
    for ranks in ([2, 5], []):  # v0002: best click at rank 2 on 1 of 2
        log_search(log, alias, "v0002", ranks)
    log_search(log, "other-alias", "v0001", [1])  # another alias's searches never count

    challenger = log.challengers.start(alias=alias, champion_version="v0001", challenger_version="v0002",
                                       champion_collection=f"{alias}__v0001", challenger_collection=f"{alias}__v0002",
                                       interleave_share=0.5, offline={})
    # ranks 1, 3, 5... from the challenger, 2, 4, 6... from the champion: a click at rank 1 is a win
    credit = ["v0002" if r % 2 else "v0001" for r in range(1, 11)]
    for ranks in [[1]] * 11 + [[2]] + [[]] * 2:  # 11 wins, then a loss, then 2 ties
        log_search(log, alias, "v0001", ranks, challenge_id=challenger.id, credit=credit)

    started = utcnow() - timedelta(minutes=5)
    log.record_run(started, {"status": "promoted", "steps": {"train": 12.0, "build": 3.0, "decide": 0.5}})
    log.record_run(started, {"status": "rejected", "steps": {"train": 100.0}})
    log.record_run(started, {"status": "locked", "steps": {}})

    s = scrape(reader)
    for at, expected in (("1", 1 / 4), ("3", 2 / 4), ("10", 3 / 4)):
        assert value(s, "clicktune_click_through_ratio", alias=alias, model_version="v0001", at=at) == expected
    for at, expected in (("1", 0.0), ("3", 0.5), ("10", 0.5)):
        assert value(s, "clicktune_click_through_ratio", alias=alias, model_version="v0002", at=at) == expected
    assert value(s, "clicktune_click_through_searches", alias=alias, model_version="v0001") == 4  # not interleaved

    phase = {"alias": alias, "champion": "v0001", "challenger": "v0002"}
    assert value(s, "clicktune_phase_running", alias=alias) == 1
    assert (value(s, "clicktune_phase_wins", **phase), value(s, "clicktune_phase_losses", **phase),
            value(s, "clicktune_phase_ties", **phase)) == (11, 1, 2)
    assert value(s, "clicktune_phase_z", **phase) == pytest.approx(10 / math.sqrt(12), abs=1e-4)
    # looks at 10, 20, 40 decided searches: the first is reached, with the first 10 (all wins)
    assert value(s, "clicktune_phase_looks", **phase) == 1
    assert value(s, "clicktune_phase_next_look_decided", **phase) == 20
    assert value(s, "clicktune_phase_look_z", **phase, look="10") == pytest.approx(math.sqrt(10), abs=1e-4)
    assert value(s, "clicktune_phase_look_boundary", **phase, look="10") == settings.challenger.interim_z
    assert 1.5 < value(s, "clicktune_phase_look_boundary", **phase, look="40") < 2.5  # the last look's own

    assert value(s, "clicktune_runs_total", status="promoted") == 1
    assert value(s, "clicktune_runs_total", status="locked") == 1
    assert value(s, "clicktune_step_duration_seconds_count", step="train") == 2
    assert value(s, "clicktune_step_duration_seconds_sum", step="train") == 112.0
    assert value(s, "clicktune_step_duration_seconds_bucket", step="train", le="15.0") == 1
    assert value(s, "clicktune_step_duration_seconds_count", step="decide") == 1
    assert value(s, "clicktune_last_run_timestamp_seconds", status="rejected") > started.timestamp()

    pointer = reader.registry.pointer()
    assert value(s, "clicktune_live_version_info", alias=alias, version="v0001") == 1
    assert value(s, "clicktune_live_promoted_timestamp_seconds", alias=alias) == pointer.promoted_at.timestamp()


def test_a_scrape_without_a_phase_says_none_runs(state) -> None:
    _log, reader, settings = state
    s = scrape(reader)
    assert value(s, "clicktune_phase_running", alias=settings.collection_alias) == 0
    assert not [k for k in s if k[0] == "clicktune_phase_wins"]


def test_the_state_is_read_once_per_cache_period(state) -> None:
    log, reader, settings = state
    registry = metrics_registry(reader, cache_seconds=3600)
    before = generate_latest(registry).decode()
    log_search(log, settings.collection_alias, "v0001", [1])
    assert "clicktune_click_through_searches{" not in before
    assert "clicktune_click_through_searches{" not in generate_latest(registry).decode()  # cached
    assert "clicktune_click_through_searches{" in generate_latest(metrics_registry(reader)).decode()


def test_the_click_log_counts_stored_duplicate_refused_and_failed_clicks(db_url: str) -> None:
    log = ClickLog(db_url)
    try:
        def count(result: str) -> float:
            return REGISTRY.get_sample_value("clicktune_clicks_total", {"result": result}) or 0.0

        before = {r: count(r) for r in ("stored", "duplicate", "refused")}
        search_id = log_search(log, "docs", "v0001", [1, 2])  # two stored
        log.record_click(search_id, "d1")  # a duplicate
        with pytest.raises(DocNotShownError):
            log.record_click(search_id, "not-shown")
        assert {r: count(r) - before[r] for r in before} == {"stored": 2, "duplicate": 1, "refused": 1}
        failed = count("failed")
        with log.engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE clicktune_clicks")
        with pytest.raises(Exception, match="clicktune_clicks"):
            log.record_click(search_id, "d3")
        assert count("failed") == failed + 1 and count("refused") == before["refused"] + 1
    finally:
        log.close()


def test_an_impression_that_cannot_be_logged_is_counted(tmp_path: Path) -> None:
    log = ClickLog(f"sqlite:///{tmp_path / 'feedback.db'}")
    logger = ImpressionLogger(log)
    before = REGISTRY.get_sample_value("clicktune_impression_log_failures_total") or 0.0
    with log.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE clicktune_impression_results")
    shown = [ShownResult(doc_id="d1", rank=1)]
    assert not logger.log(Impression(search_id=str(uuid.uuid4()), query="q", model_version="v0001",
                                     collection="docs__v0001", results=shown))
    assert REGISTRY.get_sample_value("clicktune_impression_log_failures_total") == before + 1
    log.close()
