"""`clicktune` as an ops tool: a fast --help, a status that creates nothing and shows the loop's state,
an eval that says when there is nothing to score, and INFO progress without a TTY."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from clicktune.adapters import ClicktuneSettings
from clicktune.adapters.clicklog import ClickLog, Impression, ShownResult
from clicktune.adapters.qdrant import AliasedCollections, IndexHandle, VersionIndex, close_shared_clients
from clicktune.plugin import ClicktuneEmbeddings, ClicktuneVectorStore
from clicktune.scheduler.cli import main
from clicktune.scheduler.cli_progress import CopyProgress

pytestmark = pytest.mark.both_engines  # each embedded engine

HEAVY = ("torch", "sentence_transformers", "transformers", "qdrant_client", "langchain_core", "sqlalchemy",
         "apscheduler", "pydantic_settings")


@pytest.fixture(autouse=True)
def _restore_log_levels():
    """The CLI sets the root's and clicktune's levels (--debug: DEBUG); later tests get them back."""
    levels = {name: logging.getLogger(name).level for name in ("", "clicktune")}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _status(home: Path, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert main(["--home", str(home), "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _loaded_after(args: list[str]) -> list[str]:
    """The heavy libraries a fresh interpreter has imported after running ``clicktune *args``."""
    code = ("import sys; from clicktune.scheduler.cli import main; code = main(sys.argv[1:]); "
            f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules]); sys.exit(code)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKTUNE_")}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120,
                          env={**env, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.rsplit("LOADED ", 1)[1].replace("'", '"'))


def test_help_imports_no_heavy_library() -> None:
    assert _loaded_after(["--help"]) == []


def test_status_imports_neither_torch_nor_sentence_transformers_nor_langchain(cli_home: Path) -> None:
    loaded = _loaded_after(["--home", str(cli_home), "status"])
    assert not {"torch", "sentence_transformers", "transformers", "langchain_core", "langchain_qdrant"} & set(loaded)


def test_scheduler_package_names_still_import_from_the_package() -> None:
    import clicktune.scheduler as scheduler

    for name in scheduler.__all__:
        assert getattr(scheduler, name).__name__ == name
    with pytest.raises(AttributeError):
        scheduler.NoSuchThing  # noqa: B018


@pytest.mark.parametrize("exists", [False, True], ids=["misspelled-home", "empty-home"])
def test_status_on_a_home_with_nothing_creates_nothing_and_exits_1(
    tmp_path: Path, exists: bool, capsys: pytest.CaptureFixture
) -> None:
    home = tmp_path / "clicktnue"
    if exists:
        home.mkdir()
    before = _tree(tmp_path)
    for args in (["status"], ["status", "--json"], ["eval"]):
        capsys.readouterr()
        assert main(["--home", str(home), *args]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"clicktune: error: nothing at clicktune home {home}")
        assert captured.err.count("\n") == 1 and "--home or CLICKTUNE_HOME" in captured.err
    assert _tree(tmp_path) == before


def test_status_of_a_home_with_only_a_registry_shows_it_and_creates_no_qdrant_folder_or_database(
    home: Path, capsys: pytest.CaptureFixture
) -> None:
    before = _tree(home)
    status = _status(home, capsys)
    assert status["missing"] == ["qdrant", "feedback"]
    assert status["current_version"] == "v0001" and status["alias_target"] is None
    assert main(["--home", str(home), "status"]) == 0
    assert "no Qdrant folder yet; no feedback database yet" in capsys.readouterr().out
    assert _tree(home) == before


def test_status_shows_window_counts_lock_holder_next_run_and_challenger_tally(
    cli_home: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clicktune.scheduler.challenger import ChallengerPhase
    from clicktune.scheduler.jobs import start_background_loop
    from clicktune.scheduler.lock import lock_name
    from clicktune.scheduler.reindex import BlueGreenReindexer

    monkeypatch.setenv("CLICKTUNE_CHALLENGER_SETTLE_SECONDS", "0")  # count searches at once
    settings = ClicktuneSettings(home=cli_home, progress=False, interleave_share=1.0)
    feedback = ClickLog.from_settings(settings)
    handle = IndexHandle.from_settings(settings)
    phase = ChallengerPhase(handle, feedback)
    BlueGreenReindexer(handle).run("v0002", hand_off=lambda live, built, _: phase.start(live, built, {}))
    with ClicktuneEmbeddings(settings, watch=False) as emb:
        store = ClicktuneVectorStore(settings, embeddings=emb, client=handle.client)
        shown = store.similarity_search("alpha beta", k=3)
        search_id = shown[0].metadata["clicktune"]["search_id"]
        # Both models rank these three documents alike: all of it is their common prefix, so this
        # click credits neither and the search is a tie.
        assert all(r.shared for r in feedback.get_impression(search_id).results)
        store.record_click(search_id, shown[0].id)
        store.similarity_search("gamma", k=3)  # shown, not clicked: a tie
    # A search where the two rankings differed (as a serving process logs it) and the user chose the
    # challenger's document: a win.
    won = str(uuid.uuid4())
    feedback.log_impression(Impression(
        search_id=won, query="epsilon", model_version="v0001", collection="docs__v0001", alias="docs",
        challenge_id=phase.active().id,
        results=[ShownResult(doc_id="c", rank=1, model_version="v0002", shared=False),
                 ShownResult(doc_id="a", rank=2, model_version="v0001", shared=False)]))
    feedback.record_click(won, "c")
    close_shared_clients()
    taken = datetime.now(timezone.utc)
    assert feedback.acquire_lock(lock_name("docs"), "ops-host:4242:abcd", 600)
    assert feedback.acquire_lock(lock_name("docs"), "ops-host:4242:abcd", 600)  # the holder again: same "since"
    scheduler = start_background_loop(settings)
    scheduler.shutdown(wait=False)  # the job and its next run time stay stored, as a stopped worker leaves them

    status = _status(cli_home, capsys)
    assert {k: status["feedback_window"][k] for k in ("days", "impressions", "clicks")} == {
        "days": 90, "impressions": 3, "clicks": 2}
    assert status["lock"]["owner"] == "ops-host:4242:abcd"
    expires = datetime.fromisoformat(status["lock"]["lease_expires_at"])
    since = datetime.fromisoformat(status["lock"]["acquired_at"])
    assert abs(since - taken) < timedelta(seconds=5) and since < expires - timedelta(seconds=595)
    assert timedelta(seconds=540) < expires - datetime.now(timezone.utc) <= timedelta(seconds=600)
    assert status["schedule"]["stored"] and status["schedule"]["trigger"] == "every 60 min"
    next_run = datetime.fromisoformat(status["schedule"]["next_run_at"]) - datetime.now(timezone.utc)
    assert timedelta(minutes=58) < next_run <= timedelta(minutes=60)
    challenger = status["challenger"]
    assert (challenger["challenger"], challenger["champion"], challenger["decision"]) == ("v0002", "v0001", "continue")
    assert (challenger["searches"], challenger["wins"], challenger["losses"], challenger["ties"]) == (3, 1, 0, 2)
    assert challenger["z"] == 1.0

    assert main(["--home", str(cli_home), "status"]) == 0
    out = capsys.readouterr().out
    assert "feedback window (last 90 days): 3 searches, 2 clicks on alias docs" in out
    assert f"lock: held by ops-host:4242:abcd since {str(since)[:19]} UTC (lease runs to" in out
    assert "next run: " in out and "(every 60 min)" in out
    assert "challenger v0002 vs champion v0001" in out and "3 searches" in out and "2 ties" in out
    feedback.release_lock(lock_name("docs"), "ops-host:4242:abcd")
    feedback.close()


def test_status_says_the_lock_is_free_and_nothing_is_scheduled(cli_home: Path, capsys: pytest.CaptureFixture) -> None:
    ClickLog.from_settings(ClicktuneSettings(home=cli_home)).close()
    status = _status(cli_home, capsys)
    assert status["lock"] is None and status["challenger"] is None
    assert status["schedule"] == {"trigger": "every 60 min", "stored": False, "next_run_at": None}
    assert main(["--home", str(cli_home), "status"]) == 0
    out = capsys.readouterr().out
    assert "lock: free" in out and "next run: not scheduled" in out and "challenger: none running" in out


def test_status_of_a_misspelled_alias_names_the_aliases_there(cli_home: Path, capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["--home", str(cli_home), "--alias", "dcos", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["alias_target"], status["other_aliases"]) == (None, ["docs"])
    assert main(["--home", str(cli_home), "--alias", "dcos", "status"]) == 0
    assert "alias dcos -> (none yet; aliases on this Qdrant: docs, pick one with --alias)" in capsys.readouterr().out
    assert _status(cli_home, capsys)["other_aliases"] == []


def test_eval_without_heldout_queries_says_nothing_to_score_and_exits_1(
    cli_home: Path, capsys: pytest.CaptureFixture
) -> None:
    capsys.readouterr()
    assert main(["--home", str(cli_home), "eval"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "ndcg" not in captured.err
    assert captured.err.startswith("clicktune: error: nothing to score: no held-out click query in the last 90 days")
    assert captured.err.count("\n") == 1 and "--golden" in captured.err


def test_reindex_logs_progress_at_info_without_a_tty(
    cli_home: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--home", str(cli_home), "reindex", "--version", "v0002"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert "reindex docs__v0001 -> docs__v0002: copying 3 points" in lines
    assert any(line.startswith("reindex docs__v0001 -> docs__v0002: 3 points, 0 replayed") for line in lines)

    caplog.clear()
    monkeypatch.setenv("CLICKTUNE_LOG_LEVEL", "WARNING")  # the setting is applied...
    assert main(["--home", str(cli_home), "rollback"]) == 0
    assert main(["--home", str(cli_home), "reindex", "--version", "v0002"]) == 0
    assert [r for r in caplog.records if r.name.startswith("clicktune") and r.levelno < logging.WARNING] == []

    caplog.clear()
    assert main(["--home", str(cli_home), "--debug", "rollback"]) == 0  # ...and --debug wins over it
    assert logging.getLogger("clicktune").getEffectiveLevel() == logging.DEBUG
    assert any(r.name.startswith("clicktune") and r.levelno == logging.INFO for r in caplog.records)


def test_copy_progress_logs_the_target_count_against_the_source(caplog: pytest.LogCaptureFixture) -> None:
    client = QdrantClient(":memory:")
    params = models.VectorParams(size=2, distance=models.Distance.COSINE)
    for name, count in (("docs__v0001", 4), ("docs__v0002", 3)):
        client.create_collection(name, vectors_config=params)
        client.upsert(name, [models.PointStruct(id=i, vector=[1.0, float(i)]) for i in range(count)])
    caplog.set_level(logging.INFO, logger="clicktune")
    index = VersionIndex(client, AliasedCollections(client, "docs"))
    with CopyProgress(index, "v0001", "v0002", every=0.02):
        deadline = time.monotonic() + 5
        while not any("3 of 4 points (75%)" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.02)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "reindex docs__v0001 -> docs__v0002: copying 4 points"
    assert any("docs__v0002: 3 of 4 points (75%) after" in m for m in messages)
