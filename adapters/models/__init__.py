"""Turning a model name into loaded sentence-transformers weights, offline first."""

from clicktune.adapters.models.cache import EncoderCache
from clicktune.adapters.models.encoder import VersionEncoder, encoder_for_version
from clicktune.adapters.models.loader import (
    PACKAGED_MODELS,
    load_sentence_transformer,
    resolve_model_source,
)
from clicktune.adapters.models.precision import (
    Precision,
    PrecisionSetting,
    autocast,
    cpu_has_native_bf16,
    native_bf16_available,
    resolve_precision,
)

__all__ = [
    "PACKAGED_MODELS",
    "EncoderCache",
    "Precision",
    "PrecisionSetting",
    "VersionEncoder",
    "autocast",
    "cpu_has_native_bf16",
    "encoder_for_version",
    "load_sentence_transformer",
    "native_bf16_available",
    "resolve_model_source",
    "resolve_precision",
]

