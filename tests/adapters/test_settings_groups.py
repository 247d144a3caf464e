"""The grouped settings: each group field is read from its flat variable, flat keyword or nested form."""

from __future__ import annotations

from pathlib import Path

import pytest

from clicktune.adapters import ClicktuneSettings, ConfigurationError, load_settings
from clicktune.adapters.settings import ENV_NAMES
from clicktune.adapters.settings_groups import (
    FLAT_NAMES,
    GROUPS,
    ScheduleSettings,
    TrainingSettings,
    flat_name,
)


@pytest.fixture(autouse=True)
def _no_dotenv_here(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Each test in an empty folder: no ``.env`` but the one it writes."""
    monkeypatch.chdir(tmp_path)


def test_a_flat_environment_variable_sets_its_group_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKTUNE_TRAIN_EPOCHS", "5")
    monkeypatch.setenv("CLICKTUNE_GATE_TOLERANCE", "0.1")
    monkeypatch.setenv("CLICKTUNE_HELDOUT_FRACTION", "0.25")
    monkeypatch.setenv("CLICKTUNE_CHALLENGER_FIRST_LOOK", "20")
    monkeypatch.setenv("CLICKTUNE_SCHEDULE_CRON", "0 3 * * *")
    monkeypatch.setenv("CLICKTUNE_FEEDBACK_WINDOW_DAYS", "30")
    monkeypatch.setenv("clicktune_log_impressions", "false")  # case-insensitive, as every variable
    s = ClicktuneSettings()
    assert s.training.epochs == 5.0 and s.training.batch_size == 32
    assert (s.gate.tolerance, s.gate.heldout_fraction) == (0.1, 0.25)
    assert s.challenger.first_look == 20
    assert s.schedule.cron == "0 3 * * *"
    assert s.feedback.window_days == 30 and s.feedback.log_impressions is False


def test_a_flat_variable_in_a_dotenv_file_sets_its_group_field(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OTHER_APP_KEY=1\nCLICKTUNE_TRAIN_BATCH_SIZE=8\nCLICKTUNE_MIN_NEW_CLICKS=7\n")
    s = ClicktuneSettings()
    assert (s.training.batch_size, s.schedule.min_new_clicks) == (8, 7)
    assert ClicktuneSettings(_env_file=None).training.batch_size == 32  # type: ignore[call-arg]


def test_the_environment_wins_over_dotenv_field_by_field(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("CLICKTUNE_TRAIN_EPOCHS=4\nCLICKTUNE_TRAIN_BATCH_SIZE=8\n")
    monkeypatch.setenv("CLICKTUNE_TRAIN_EPOCHS", "2")
    s = ClicktuneSettings()
    assert (s.training.epochs, s.training.batch_size) == (2.0, 8)


def test_flat_and_nested_keywords_set_the_same_field(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ClicktuneSettings(train_epochs=1).training.epochs == 1.0
    assert ClicktuneSettings(training={"epochs": 1}).training.epochs == 1.0
    assert ClicktuneSettings(training=TrainingSettings(epochs=1)).training.epochs == 1.0
    assert ClicktuneSettings(lock_lease_seconds=30).schedule == ScheduleSettings(lock_lease_seconds=30)
    assert ClicktuneSettings.model_validate({"gate_tolerance": 0.5}).gate.tolerance == 0.5
    # Agreeing forms together are fine (3 and "3.0" are one number of epochs).
    assert ClicktuneSettings(train_epochs=3, training={"epochs": "3.0"}).training.epochs == 3.0


def test_a_keyword_overrides_a_variable_only_for_its_own_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLICKTUNE_TRAIN_EPOCHS", "5")
    monkeypatch.setenv("CLICKTUNE_TRAIN_BATCH_SIZE", "8")
    for s in (ClicktuneSettings(train_epochs=1), ClicktuneSettings(training={"epochs": 1})):
        assert (s.training.epochs, s.training.batch_size) == (1.0, 8)
    # A group object is whole: its defaults are given too.
    assert ClicktuneSettings(training=TrainingSettings(epochs=1)).training.batch_size == 32


def test_a_flat_keyword_that_disagrees_with_its_nested_form_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"train_epochs=1 and training.epochs=2 disagree"):
        ClicktuneSettings(train_epochs=1, training={"epochs": 2})
    with pytest.raises(ConfigurationError, match=r"gate_tolerance=0.5 and gate.tolerance=0.02 disagree"):
        ClicktuneSettings(gate_tolerance=0.5, gate=ClicktuneSettings().gate)
    with pytest.raises(ConfigurationError, match="disagree"):
        load_settings(lock_lease_seconds=30, schedule={"lock_lease_seconds": 60})


def test_misspelled_names_are_refused_with_a_did_you_mean(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match=r"'train_epoch' \(did you mean 'train_epochs'"):
        ClicktuneSettings(train_epoch=1)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=r"'training.epoch' \(did you mean 'training.epochs'"):
        ClicktuneSettings(training={"epoch": 1})
    monkeypatch.setenv("CLICKTUNE_GATE_TOLERANSE", "0.1")
    with pytest.raises(ConfigurationError, match="CLICKTUNE_GATE_TOLERANSE .*did you mean 'CLICKTUNE_GATE_TOLERANCE'"):
        ClicktuneSettings()
    monkeypatch.delenv("CLICKTUNE_GATE_TOLERANSE")
    # The group's own name is not a variable: pydantic-settings would read it as JSON, clicktune refuses.
    monkeypatch.setenv("CLICKTUNE_TRAINING__EPOCHS", "2")
    with pytest.raises(ConfigurationError, match="CLICKTUNE_TRAINING__EPOCHS .*did you mean 'CLICKTUNE_TRAIN_EPOCHS'"):
        ClicktuneSettings()


def test_a_bad_value_in_a_group_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="epochs"):
        load_settings(train_epochs=0)
    with pytest.raises(ConfigurationError, match="challenger_last_look must be >= challenger_first_look"):
        load_settings(challenger_first_look=200, challenger_last_look=100)
    monkeypatch.setenv("CLICKTUNE_MIN_NEW_CLICKS", "many")
    with pytest.raises(ConfigurationError, match="min_new_clicks"):
        load_settings()


def test_overrides_of_existing_settings_win_field_by_field(tmp_path: Path) -> None:
    base = ClicktuneSettings(home=tmp_path, train_epochs=2, train_batch_size=8)
    s = load_settings(base, train_epochs=1)
    assert (s.training.epochs, s.training.batch_size, s.home) == (1.0, 8, tmp_path)
    assert load_settings(base, training={"batch_size": 4}).training.epochs == 2.0
    assert base.training.epochs == 2.0


def test_model_copy_routes_flat_names_and_group_dicts_into_a_copy_of_the_group() -> None:
    base = ClicktuneSettings(lock_lease_seconds=600)
    copy = base.model_copy(update={"lock_lease_seconds": 2, "challenger": {"refresh_seconds": 0.0}, "batch_size": 8})
    assert (copy.schedule.lock_lease_seconds, copy.challenger.refresh_seconds, copy.batch_size) == (2, 0.0, 8)
    assert copy.schedule.min_new_clicks == base.schedule.min_new_clicks
    assert (base.schedule.lock_lease_seconds, base.challenger.refresh_seconds) == (600, 2.0)
    with pytest.raises(ConfigurationError, match="did you mean 'lock_lease_seconds'"):
        base.model_copy(update={"lock_lease_second": 2})


def test_a_dumped_settings_object_round_trips_and_old_flat_dumps_still_load(tmp_path: Path) -> None:
    s = ClicktuneSettings(home=tmp_path, train_epochs=1, gate_tolerance=0.5, schedule_cron="0 3 * * *")
    assert ClicktuneSettings(**s.model_dump(mode="json")) == s
    # Flat settings written before the groups (a dump, a script's keywords) still build the same settings.
    old = {"home": str(tmp_path), "train_epochs": 1.0, "gate_tolerance": 0.5, "schedule_cron": "0 3 * * *"}
    assert ClicktuneSettings(**old) == s


def test_every_group_field_has_a_flat_name_read_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert set(GROUPS) <= set(ClicktuneSettings.model_fields)
    for group, model in GROUPS.items():
        for name, field in model.model_fields.items():
            flat = flat_name(field)
            assert FLAT_NAMES[flat] == (group, name) and f"CLICKTUNE_{flat.upper()}" in ENV_NAMES
    # One variable per group, read end to end.
    values = {"training": ("train_min_pairs", "7"), "gate": ("gate_min_queries", "3"),
              "challenger": ("challenger_max_hours", "2"), "schedule": ("misfire_grace_seconds", "9"),
              "feedback": ("max_grade", "5")}
    for flat, value in values.values():
        monkeypatch.setenv(f"CLICKTUNE_{flat.upper()}", value)
    s = ClicktuneSettings()
    for group, (flat, value) in values.items():
        assert float(getattr(getattr(s, group), FLAT_NAMES[flat][1])) == float(value)


def test_a_bad_value_is_named_by_the_flat_name_and_variable_the_user_set(monkeypatch: pytest.MonkeyPatch) -> None:
    """``training.epochs`` is no name a user types: the error says ``train_epochs`` / ``CLICKTUNE_TRAIN_EPOCHS``."""
    with pytest.raises(ConfigurationError, match=r"train_epochs='abc' \(CLICKTUNE_TRAIN_EPOCHS\): Input should be"):
        load_settings(train_epochs="abc")
    monkeypatch.setenv("CLICKTUNE_INTERLEAVE_SHARE", "1.5")
    with pytest.raises(ConfigurationError, match=r"interleave_share='1.5' \(CLICKTUNE_INTERLEAVE_SHARE\)"):
        load_settings(batch_size=8)
    monkeypatch.delenv("CLICKTUNE_INTERLEAVE_SHARE")
    with pytest.raises(ConfigurationError, match=r"challenger_first_look=500, challenger_last_look=100 "
                                                 r"\(CLICKTUNE_CHALLENGER_FIRST_LOOK, CLICKTUNE_CHALLENGER_LAST_LOOK\)"):
        load_settings(challenger_first_look=500, challenger_last_look=100)
