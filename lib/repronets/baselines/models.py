"""Notebook 00's reference baselines: softmax regression and a one-hidden-layer ReLU MLP, by name in ``MODELS``."""

from __future__ import annotations

import math

from torch import nn

from ..core.registry import Registry

MODELS = Registry("baseline")


@MODELS.register("softmax")
def softmax(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Softmax regression: one linear layer on the flattened image."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


@MODELS.register("mlp")
def mlp(input_shape: tuple[int, ...], num_classes: int, hidden: int) -> nn.Module:
    """One hidden ReLU layer of width ``hidden``."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
    )
