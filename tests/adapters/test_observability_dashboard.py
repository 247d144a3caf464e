"""The dashboard page (adapters/observability/dashboard.py) over a real feedback database (SQLite and
PostgreSQL) and a real registry: what it says, and that its charts are inline SVG drawn by Vega."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

pytest.importorskip("altair", reason="the dashboard needs the ops extra (altair, vl-convert-python)")

from test_observability_metrics import log_search  # noqa: E402

from clicktune.adapters import ClicktuneSettings, ModelRegistry, VersionInfo  # noqa: E402
from clicktune.adapters.clicklog import ClickLog  # noqa: E402
from clicktune.adapters.clicklog.records import utcnow  # noqa: E402
from clicktune.adapters.observability.dashboard import DashboardData, render_dashboard  # noqa: E402
from clicktune.adapters.observability.state import LiveVersion, Look, PhaseState, StateReader  # noqa: E402


def reader_for(db_url: str, home: Path) -> tuple[ClickLog, StateReader, ClicktuneSettings]:
    settings = ClicktuneSettings(home=home, feedback_url=db_url, challenger_first_look=10, challenger_last_look=40)
    log = ClickLog(db_url)
    return log, StateReader(log, ModelRegistry.from_settings(settings), settings), settings


def test_the_dashboard_shows_the_live_version_candidates_phase_and_daily_charts(db_url: str, home: Path) -> None:
    log, reader, settings = reader_for(db_url, home)
    alias = settings.collection_alias
    try:
        for ranks in ([1], [3], []):
            log_search(log, alias, "v0001", ranks)
        challenger = log.challengers.start(
            alias=alias, champion_version="v0001", challenger_version="v0002", champion_collection=f"{alias}__v0001",
            challenger_collection=f"{alias}__v0002", interleave_share=0.5, offline={})
        credit = ["v0002" if r % 2 else "v0001" for r in range(1, 11)]
        for ranks in [[1]] * 6 + [[2]] * 5:
            log_search(log, alias, "v0001", ranks, challenge_id=challenger.id, credit=credit)

        data = DashboardData.read(reader)
        today = utcnow().strftime("%Y-%m-%d")
        # interleaved searches count in the traffic, not in a version's click-through
        assert data.per_day == [(today, 14, 13)]
        assert [(day, ct.model_version, ct.searches, ct.clicked_within) for day, ct in data.click_through_by_day] \
            == [(today, "v0001", 3, (1, 2, 2))]
        assert data.phase is not None and (data.phase.wins, data.phase.losses) == (6, 5)
        # the first look (10 decided: 6 wins, 4 losses) is reached; the next is at 20
        assert data.phase.reached == [Look(10, round(2 / 10 ** 0.5, 4))] and data.phase.next_look == 20

        page = render_dashboard(data)
        assert "id=live-version>v0001<" in page
        assert "<td class=live>v0001</td>" in page  # the candidates table lists the base version
        assert "6 wins, 5 losses, 0 ties" in page
        assert page.count("<svg") == 3  # the phase's looks, click-through, traffic: each drawn by Vega
        assert "<script" not in page  # nothing to run, nothing to fetch
        assert "http://" not in page.replace("http://www.w3.org/", "") and "https://" not in page
    finally:
        log.close()


def test_an_empty_home_gets_a_page_that_says_there_is_nothing_yet(db_url: str, home: Path) -> None:
    log, reader, _settings = reader_for(db_url, home)
    try:
        page = render_dashboard(DashboardData.read(reader))
    finally:
        log.close()
    assert "No challenger phase yet" in page and "No searches logged" in page and "<svg" not in page


def test_days_older_than_the_window_are_left_out(db_url: str, home: Path) -> None:
    log, reader, settings = reader_for(db_url, home)
    try:
        log_search(log, settings.collection_alias, "v0001", [])
        assert len(reader.per_day(utcnow() - timedelta(days=1))) == 1
        assert reader.per_day(utcnow() + timedelta(seconds=1)) == []
    finally:
        log.close()


def test_candidates_show_their_offline_check_and_phase_verdict_and_the_lineage() -> None:
    """Rendering alone, from records as the registry and the loop write them."""
    now = utcnow()
    offline = {"kind": "offline", "passed": True, "reason": "heldout ndcg@10 0.61 vs 0.58"}
    versions = [
        VersionInfo(version="v0001", base_model="m", status="retired"),
        VersionInfo(version="v0002", parent="v0001", base_model="m", status="rejected",
                    decisions=[{"kind": "offline", "passed": False, "reason": "heldout ndcg@10 dropped 0.05"}]),
        VersionInfo(version="v0003", parent="v0001", base_model="m", status="live", decisions=[
            offline, {"kind": "challenger", "outcome": "promoted", "reason": "z 3.20 >= 3.00 after 100 decided"}]),
        VersionInfo(version="v0004", parent="v0003", base_model="m", status="challenger", decisions=[offline]),
    ]
    phase = PhaseState(7, "v0003", "v0004", "running", now, 60, 50, 30, 0.95, "110 of 200 decided searches",
                       [Look(100, 0.8)], [(100, 3.0), (200, 1.7)])
    page = render_dashboard(DashboardData("docs", now, LiveVersion("v0003", now, ["v0001"]), versions, phase, [], []))
    rows = {row.split("</td>")[0].rsplit(">", 1)[-1]: row for row in page.split("<tr>")[2:]}
    assert "<span class=bad>failed</span> heldout ndcg@10 dropped 0.05" in rows["v0002"]
    assert "<span class=good>passed</span>" in rows["v0003"] and "<span class=good>promoted</span> z 3.20" in rows["v0003"]
    assert "running: z 0.95 (110 of 200 decided searches)" in rows["v0004"]
    assert "none (base model)" in rows["v0001"]
    assert "<span class=old>v0001</span> &rarr; <span class=live>v0003</span>" in page  # the lineage
    assert "Challenger phase: v0004 vs v0003 (running)" in page and page.count("<svg") == 1
