"""Turning a model name into loaded sentence-transformers weights, offline first."""

from clicktune.adapters.models.cache import EncoderCache
from clicktune.adapters.models.encoder import VersionEncoder
from clicktune.adapters.models.loader import (
    PACKAGED_MODELS,
    load_sentence_transformer,
    resolve_model_source,
)

__all__ = ["PACKAGED_MODELS", "EncoderCache", "VersionEncoder", "load_sentence_transformer", "resolve_model_source"]
