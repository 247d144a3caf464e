"""Making a second, different model without training one: the registry and the stores only care that
its vectors differ from the base model's, so a seeded perturbation of the token embeddings will do."""

from __future__ import annotations

import copy

import torch


def perturbed_copy(model, *, seed: int, scale: float = 0.02):
    clone = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weights = clone[0].auto_model.embeddings.word_embeddings.weight
        weights.add_(torch.randn(weights.shape, generator=generator) * scale)
    return clone
