"""The benchmark models of paper 3 (docs/papers/sss.md §2–3): two hidden layers of width h, of which only the
h × h hidden-to-hidden matrix is structured (dense, SSS with state dimension s, or rank 1); the input and output
layers are dense ``nn.Linear`` with PyTorch's default initialisation. Image data goes through a small convolutional
feature extractor first (10 features for 28×28 and 32×32 inputs), trained end to end.

Model keys are the original's: ``standard_nn``, ``ss_<s>_dim``, ``rank_1``; ``HIDDEN_LAYERS`` maps each to the
factory of its hidden layer, and ``build(key, …)`` makes the whole model.

The original's models end in a softmax and their output is fed to ``CrossEntropyLoss``, which applies a log-softmax
again (the "double softmax": the loss cannot go below log(1 + (K−1)/e) and gradients are damped; argmax accuracy is
unaffected). ``output="softmax"`` keeps that (faithful); ``output="logits"`` ends in the linear layer, so the same
loss is the ordinary cross-entropy (corrected).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..core.registry import Registry
from .layer import SSSLinear

OUTPUTS = ("softmax", "logits")
STATE_DIMS = range(1, 9)


def model_keys(state_dims=range(1, 6)) -> tuple[str, ...]:
    """The original's model keys, in its training order."""
    return ("standard_nn", *(f"ss_{s}_dim" for s in state_dims), "rank_1")


def state_dim(key: str) -> int | None:
    """s of an ``ss_<s>_dim`` key, None for the other models."""
    match = re.fullmatch(r"ss_(\d+)_dim", key)
    return int(match.group(1)) if match else None


def _glorot(rng: np.random.Generator, shape, fan_sum: int) -> torch.Tensor:
    limit = math.sqrt(6.0 / fan_sum)
    return torch.as_tensor(rng.uniform(-limit, limit, shape), dtype=torch.float32)


class Rank1Linear(nn.Module):
    """y = (x·v₁)·v₂ + b: a rank-1 h × h matrix W = v₁v₂ (x·W convention), 3h parameters, initialised as the
    original: Glorot-uniform v₁ (h × 1) and v₂ (1 × h) with limit √(6/(h+1)), bias with √(6/h)."""

    def __init__(self, features: int, generator: np.random.Generator | None = None):
        super().__init__()
        rng = generator or np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
        self.v1 = nn.Parameter(_glorot(rng, (features, 1), features + 1))
        self.v2 = nn.Parameter(_glorot(rng, (1, features), features + 1))
        self.bias = nn.Parameter(_glorot(rng, (features,), features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x @ self.v1) @ self.v2 + self.bias

    def dense(self) -> torch.Tensor:
        """The matrix in nn.Linear's convention (y = x·Wᵀ + b)."""
        return (self.v1 @ self.v2).T


# The hidden h × h layer of each model key, as a factory (width, numpy generator) → module, registered in the
# original's training order. The original ran s = 1 … 5; the registry holds s up to 8.
HIDDEN_LAYERS: Registry[Callable[[int, np.random.Generator], nn.Module]] = Registry("model")


@HIDDEN_LAYERS.register("standard_nn")
def dense(width: int, generator: np.random.Generator) -> nn.Module:
    """A dense ``nn.Linear(h, h)``, PyTorch's initialisation (drawn from torch's RNG; ``generator`` unused)."""
    return nn.Linear(width, width)


def sss(width: int, generator: np.random.Generator, state_dim: int) -> nn.Module:
    """An ``SSSLinear(h, state_dim=s)`` with m = 1, Hankel-SVD initialised from ``generator``."""
    return SSSLinear(width, state_dim=state_dim, generator=generator)


for state in STATE_DIMS:
    HIDDEN_LAYERS.register(f"ss_{state}_dim", functools.partial(sss, state_dim=state))


@HIDDEN_LAYERS.register("rank_1")
def rank_1(width: int, generator: np.random.Generator) -> nn.Module:
    """A ``Rank1Linear(h)``, initialised from ``generator``."""
    return Rank1Linear(width, generator)


class TwoHiddenLayerNet(nn.Module):
    """Linear(in, h) → ReLU → hidden (h × h) → ReLU → Linear(h, out) [→ Softmax]: the original's
    StandardTHLFFNN, TwoHiddenLayeredSSNet and Rank1THLFFNN, by the choice of the hidden layer."""

    def __init__(self, in_features: int, num_classes: int, width: int, hidden: nn.Module, output: str = "softmax"):
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.input = nn.Linear(in_features, width)
        self.hidden = hidden
        self.output = nn.Linear(width, num_classes)
        self.softmax = output == "softmax"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.hidden(torch.relu(self.input(x.flatten(1)))))
        x = self.output(x)
        return torch.softmax(x, dim=1) if self.softmax else x


class ConvFeatures(nn.Module):
    """Conv(C→5, 5×5, stride 2) → ReLU → AvgPool 2 → Conv(5→10, 5×5) → ReLU → AvgPool 2 → flatten, no padding
    (the original's ConvFeatureExtractorBase); ``out_features`` from a dummy forward, as there."""

    def __init__(self, input_shape: tuple[int, int, int]):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(input_shape[0], 5, 5, stride=2),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Conv2d(5, 10, 5),
            nn.ReLU(),
            nn.AvgPool2d(2),
            nn.Flatten(),
        )
        with torch.no_grad():
            self.out_features = self.layers(torch.zeros(1, *input_shape)).shape[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class ConvNet(nn.Module):
    """The convolutional variants: ConvFeatures, then a TwoHiddenLayerNet on its features."""

    def __init__(self, features: ConvFeatures, head: TwoHiddenLayerNet):
        super().__init__()
        self.features, self.head = features, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def uses_conv(input_shape: tuple[int, ...]) -> bool:
    """The original used the convolutional models for its image sets (MNIST, CIFAR-10); here any input of at least
    28 × 28 pixels. Smaller inputs (the embedded 8 × 8 digits) and feature vectors go to the dense models."""
    return len(input_shape) == 3 and min(input_shape[1:]) >= 28


def build(
    key: str, input_shape: tuple[int, ...], num_classes: int, width: int = 50, output: str = "softmax", seed: int = 0
) -> nn.Module:
    """Model ``key`` for inputs of ``input_shape``; torch's and numpy's initialisations both seeded by ``seed``
    (the original seeded neither)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    features = ConvFeatures(input_shape) if uses_conv(input_shape) else None
    in_features = features.out_features if features else math.prod(input_shape)
    net = TwoHiddenLayerNet(in_features, num_classes, width, HIDDEN_LAYERS.create(key, width, rng), output)
    return ConvNet(features, net) if features else net


def hankel_ranks(matrix: torch.Tensor, stages: int, tol: float = 1e-5) -> tuple[int, int]:
    """The largest numerical rank over the strictly lower and strictly upper Hankel cuts T[k·m:, :k·m] and
    T[:k·m, k·m:]: at most s for an SSS matrix, before and after training."""
    T = matrix.detach().double().cpu()
    mo, mi = T.shape[0] // stages, T.shape[1] // stages
    lower = upper = 0
    for k in range(1, stages):
        lower = max(lower, int(torch.linalg.matrix_rank(T[k * mo :, : k * mi], rtol=tol)))
        upper = max(upper, int(torch.linalg.matrix_rank(T[: k * mo, k * mi :], rtol=tol)))
    return lower, upper
