"""``clicktune repair`` on the edge engine: a lost alias file is written again from the registry's CURRENT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clicktune.scheduler.cli import main


@pytest.fixture(autouse=True)
def _edge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKTUNE_EMBEDDED_ENGINE", "edge")


def _status(home: Path, capsys: pytest.CaptureFixture) -> dict:
    capsys.readouterr()
    assert main(["--home", str(home), "status", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_repair_writes_a_lost_alias_file_again_from_current(cli_home: Path, capsys: pytest.CaptureFixture,
                                                            damage: str) -> None:
    assert main(["--home", str(cli_home), "reindex", "--version", "v0002"]) == 0
    aliases = cli_home / "qdrant" / "aliases.json"
    if damage == "deleted":
        aliases.unlink()
    else:
        aliases.write_bytes(b"\x00{not json")
    capsys.readouterr()
    assert main(["--home", str(cli_home), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("clicktune: error: ") and str(aliases) in err and "clicktune repair" in err

    assert main(["--home", str(cli_home), "repair"]) == 0
    out = capsys.readouterr().out
    assert "alias rebuilt: docs -> docs__v0002 (from CURRENT)" in out
    assert ("kept as" in out) == (damage == "garbage")
    assert [kept.read_bytes() for kept in aliases.parent.glob("aliases.json.damaged-*")] == (
        [b"\x00{not json"] if damage == "garbage" else [])
    status = _status(cli_home, capsys)
    assert (status["alias_target"], status["current_version"]) == ("docs__v0002", "v0002")
    assert [c["points"] for c in status["collections"]] == [3, 3]
    assert main(["--home", str(cli_home), "rollback"]) == 0  # the rollback target is intact too
    assert _status(cli_home, capsys)["alias_target"] == "docs__v0001"
    assert main(["--home", str(cli_home), "repair"]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_a_damaged_old_collection_shows_in_status_and_the_live_one_serves(cli_home: Path,
                                                                          capsys: pytest.CaptureFixture) -> None:
    assert main(["--home", str(cli_home), "reindex", "--version", "v0002"]) == 0
    (segment,) = (cli_home / "qdrant" / "collections" / "docs__v0001" / "segments").glob("*/segment.json")
    segment.write_bytes(segment.read_bytes()[:10])
    status = _status(cli_home, capsys)
    assert status["alias_target"] == "docs__v0002"
    old, live = status["collections"]
    assert (live["collection"], live["points"]) == ("docs__v0002", 3)
    assert old["collection"] == "docs__v0001" and old["points"] is None
    assert old["index"].startswith("unavailable: edge collection docs__v0001 is damaged")
