"""Precision: auto picks bf16 only where native; both precisions give the same vectors (cosine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clicktune.adapters import ClicktuneSettings, ModelRegistry
from clicktune.adapters.models import VersionEncoder, resolve_precision
from clicktune.scheduler.beir import BUNDLED_SCIFACT, BeirDataset


def test_auto_follows_the_capability_check() -> None:
    assert resolve_precision("auto", bf16_supported=lambda device: False) == "fp32"
    assert resolve_precision("auto", bf16_supported=lambda device: True) == "bf16"
    assert resolve_precision("fp32", bf16_supported=lambda device: True) == "fp32"
    assert resolve_precision("bf16", bf16_supported=lambda device: False) == "bf16"  # explicit wins
    with pytest.raises(ValueError, match="auto, fp32 or bf16"):
        resolve_precision("int8")  # type: ignore[arg-type]


def test_fp32_and_bf16_vectors_agree(template_home: Path) -> None:
    model = ModelRegistry.from_settings(ClicktuneSettings(home=template_home)).load_model("v0001")
    texts = [d.content for d in list(BeirDataset.load(BUNDLED_SCIFACT).corpus.values())[:48]]
    fp32 = VersionEncoder("v0001", model, precision="fp32", query_precision="fp32")
    bf16 = VersionEncoder("v0001", model, precision="bf16", query_precision="bf16")
    a, b = fp32.encode(texts), bf16.encode(texts)
    assert a.dtype == b.dtype == np.float32
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(1).min() >= 0.999
    assert float(fp32.encode_query(texts[0]) @ bf16.encode_query(texts[0])) >= 0.999
    assert not np.array_equal(a, b)  # bf16 really ran
