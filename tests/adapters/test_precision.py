"""Precision: ``auto`` picks bf16 only where native; fp32 and bf16 give the same vectors (by cosine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.adapters.models import VersionEncoder, encoder_for_version, resolve_precision
from clicktune.adapters.models import precision as precision_module
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset


def _no_bf16(device: str | None) -> bool:
    return False


def _bf16(device: str | None) -> bool:
    return True


def test_auto_follows_the_capability_check() -> None:
    assert resolve_precision("auto", bf16_supported=_no_bf16) == "fp32"
    assert resolve_precision("auto", bf16_supported=_bf16) == "bf16"


def test_explicit_choices_are_honoured() -> None:
    assert resolve_precision("fp32", bf16_supported=_bf16) == "fp32"
    assert resolve_precision("bf16", bf16_supported=_no_bf16) == "bf16"  # slow, but asked for
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        resolve_precision("int8")


def test_training_precision_follows_the_capability_check(monkeypatch: pytest.MonkeyPatch) -> None:
    from clicktune.scheduler.training import TrainingConfig

    monkeypatch.setattr(precision_module, "native_bf16_available", _no_bf16)
    assert TrainingConfig.from_settings(ClicktuneSettings()).bf16 is False
    assert TrainingConfig.from_settings(ClicktuneSettings(train_precision="bf16")).bf16 is True
    monkeypatch.setattr(precision_module, "native_bf16_available", _bf16)
    assert TrainingConfig.from_settings(ClicktuneSettings()).bf16 is True
    assert TrainingConfig.from_settings(ClicktuneSettings(train_precision="fp32")).bf16 is False


@pytest.fixture(scope="module")
def model(template_home: Path):
    return ModelRegistry.from_settings(ClicktuneSettings(home=template_home)).load_model("v0001")


def test_encoders_resolve_auto_through_the_capability_check(
    model, template_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The library's own encoders (built with settings precision=auto) fall back to fp32 without bf16."""
    monkeypatch.setattr(precision_module, "native_bf16_available", _no_bf16)
    encoder = VersionEncoder(version="v0001", model=model)
    assert (encoder.precision, encoder.query_precision) == ("fp32", "fp32")
    settings = ClicktuneSettings(home=template_home)
    assert settings.precision == "auto"
    built = encoder_for_version(ModelRegistry.from_settings(settings), "v0001", settings)
    assert (built.precision, built.query_precision) == ("fp32", "fp32")

    monkeypatch.setattr(precision_module, "native_bf16_available", _bf16)
    encoder = VersionEncoder(version="v0001", model=model)
    assert (encoder.precision, encoder.query_precision) == ("bf16", "bf16")
    mixed = VersionEncoder(version="v0001", model=model, precision="bf16", query_precision="fp32")
    assert (mixed.precision, mixed.query_precision) == ("bf16", "fp32")


def test_fp32_and_bf16_vectors_agree(model) -> None:
    texts = [d.content for d in list(BeirDataset.load(BUNDLED_SCIFACT).corpus.values())[:16]]
    fp32 = VersionEncoder("v0001", model, precision="fp32")
    bf16 = VersionEncoder("v0001", model, precision="bf16")
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert a.dtype == b.dtype == np.float32
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(1).min()) >= 0.999
    assert not np.array_equal(a, b)  # bf16 really ran
    qa, qb = fp32.encode_query(texts[0][:200]), bf16.encode_query(texts[0][:200])
    assert qb.dtype == np.float32 and float(qa @ qb) >= 0.999
    assert not np.array_equal(qa, qb)
