"""``clicktune report --html FILE`` and ``clicktune worker --metrics-port``: the dashboard and the metrics of
a process that serves no app. Real registry (the packaged model), real SQLite, a real worker process."""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clicktune.adapters.clicklog import ClickLog, Impression, ShownResult
from clicktune.adapters.clicklog.records import utcnow
from clicktune.scheduler.cli import main


def searched_home(home: Path) -> Path:
    """The home's feedback database with two searches (one clicked) and one recorded run."""
    log = ClickLog(f"sqlite:///{home / 'feedback.db'}")
    for search_id, clicked in ((str(uuid.uuid4()), True), (str(uuid.uuid4()), False)):
        log.log_impression(Impression(search_id=search_id, query="q", model_version="v0001",
                                      collection="docs__v0001", alias="docs",
                                      results=[ShownResult(doc_id=f"d{r}", rank=r) for r in (1, 2, 3)]))
        if clicked:
            log.record_click(search_id, "d2")
    log.record_run(utcnow() - timedelta(minutes=3), {"status": "rejected", "steps": {"train": 42.0, "build": 7.0}})
    log.close()
    return home


def test_report_writes_the_dashboard_to_an_owner_only_file(home: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("altair", reason="the dashboard needs the ops extra")
    out = tmp_path / "report.html"
    assert main(["--home", str(searched_home(home)), "report", "--html", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)  # the answer, and only it, on stdout
    page = out.read_text(encoding="utf-8")
    assert "id=live-version>v0001<" in page and page.count("<svg") == 2 and "<script" not in page
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_report_refuses_a_home_with_nothing_in_it_and_a_missing_folder(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    assert main(["--home", str(tmp_path / "typo"), "report", "--html", str(tmp_path / "r.html")]) == 1
    assert "nothing at clicktune home" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists() and not (tmp_path / "r.html").exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_worker_serves_metrics_on_its_port(home: Path) -> None:
    port = free_port()
    env = {**os.environ, "CLICKTUNE_SCHEDULE_INTERVAL_MINUTES": "600"}  # no tick while the test runs
    worker = subprocess.Popen(
        [sys.executable, "-m", "clicktune.scheduler.cli", "--home", str(searched_home(home)), "worker",
         "--metrics-port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                    text = response.read().decode()
                break
            except OSError:
                assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else "worker exited"
                assert time.monotonic() < deadline, "the worker's /metrics never answered"
                time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    samples = {(s.name, frozenset(s.labels.items())): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    ctr = {"alias": "docs", "model_version": "v0001"}
    assert samples[("clicktune_click_through_searches", frozenset(ctr.items()))] == 2
    assert samples[("clicktune_click_through_ratio", frozenset({**ctr, "at": "3"}.items()))] == 0.5
    assert samples[("clicktune_step_duration_seconds_sum", frozenset({"step": "train"}.items()))] == 42.0
    assert samples[("clicktune_runs_total", frozenset({"status": "rejected"}.items()))] == 1
    assert samples[("clicktune_live_version_info", frozenset({"alias": "docs", "version": "v0001"}.items()))] == 1


def test_a_taken_metrics_port_is_a_one_line_error(home: Path, capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--home", str(home), "worker", "--metrics-port", str(port)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"clicktune: error: cannot serve /metrics on 127.0.0.1:{port}") and "\n" not in err
