"""ContinuousNet, WideContinuousNet and the original's baselines (docs/papers/continuousnet.md §1, §5.4).

Named factories give the README table's rows: ``continuousnet(pieces=2)`` is "2-2-2" (273,210 parameters),
``continuousnet(pieces=8)`` is "8-8-8" (857,850), ``wide_continuousnet(pieces=8)`` the CIFAR-100 model (13,630,676),
``resnet_v2(20)`` / ``resnet_v2(56)`` (272,474 / 855,770) and ``wide_resnet(58, 4)`` (13,631,108).
Each factory is registered in :data:`MODELS` under its own name: ``MODELS.create("continuousnet", pieces=8)``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch.nn.functional as F
from torch import nn

from ..core.registry import Registry
from .blocks import ODEBlock, ResidualFunction, Stitch

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def _init_convs(model: nn.Module) -> None:
    """The original's init: every nn.Conv2d weight ~ N(0, 2/(k·k·out)); BN γ = 1, β = 0; biases keep their default."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class ContinuousNet(nn.Module):
    """Stem (conv3×3-BN-ReLU) → 3 × [stitch, ODE block] at widths α, 2α, 4α → average pool → linear.

    ``epsilon`` is the depth-time T of every ODE block (default: ``pieces``, so that with one Euler step per piece
    each step is exactly a ResNet unit). The stitches' ε_s = T/(pieces·steps_per_piece), fixed at construction.
    ``preact``: the pre-activation units and stitches; the wide model sets it and adds a final BN.
    """

    def __init__(
        self,
        num_classes: int = 10,
        alpha: int = 16,
        pieces: int = 2,
        scheme: str = "euler",
        steps_per_piece: int = 1,
        epsilon: float | None = None,
        in_channels: int = 3,
        preact: bool = False,
        skipinit: bool = False,
        legacy: bool = False,
        widths: tuple[int, int, int] | None = None,
        final_bn_momentum: float | None = None,
    ):
        super().__init__()
        epsilon = float(pieces if epsilon is None else epsilon)
        stitch_epsilon = epsilon / (pieces * steps_per_piece)
        widths = widths or (alpha, 2 * alpha, 4 * alpha)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 16 if preact else alpha, 3, padding=1, bias=False),
            nn.BatchNorm2d(16 if preact else alpha),
            nn.ReLU(),
        )
        layers, previous = [], 16 if preact else alpha
        for i, width in enumerate(widths):
            if not (preact and i == 0 and previous == width):  # the wide model skips an identity first stitch
                layers.append(Stitch(previous, width, 1 if i == 0 else 2, stitch_epsilon, preact, skipinit))
            layers.append(
                ODEBlock(ResidualFunction(width, pieces, preact, skipinit), epsilon, scheme, steps_per_piece, legacy)
            )
            previous = width
        self.stages = nn.Sequential(*layers)
        # The wide model's final BN uses momentum 0.9 in the original (running stats ≈ the last batch: a Keras-style
        # value read with PyTorch's convention); kept as the default there, 0.1 is PyTorch's usual value.
        self.final_bn = nn.BatchNorm2d(previous, momentum=final_bn_momentum) if final_bn_momentum else None
        self.classifier = nn.Linear(previous, num_classes)
        _init_convs(self)

    def forward(self, x):
        x = self.stages(self.stem(x))
        if self.final_bn is not None:
            x = self.final_bn(x)  # no ReLU after it, as in the original
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("continuousnet")
def continuousnet(pieces: int = 2, scheme: str = "euler", num_classes: int = 10, **kw) -> ContinuousNet:
    """The CIFAR-10 ContinuousNet "d-d-d" (post-activation, α = 16)."""
    return ContinuousNet(num_classes=num_classes, pieces=pieces, scheme=scheme, **kw)


@MODELS.register("wide_continuousnet")
def wide_continuousnet(
    pieces: int = 8,
    scheme: str = "euler",
    num_classes: int = 100,
    widen_factor: int = 4,
    final_bn_momentum: float = 0.9,
    **kw,
) -> ContinuousNet:
    """The CIFAR-100 WideContinuousNet: pre-activation, widths 64/128/256 for k = 4, a final BN."""
    k = widen_factor
    return ContinuousNet(
        num_classes=num_classes,
        pieces=pieces,
        scheme=scheme,
        preact=True,
        widths=(16 * k, 32 * k, 64 * k),
        final_bn_momentum=final_bn_momentum,
        **kw,
    )


# ---------------------------------------------------------------- baselines


class _BasicBlockV2(nn.Module):
    """The original's "ResNet v2" unit: conv → ReLU → BN → conv → ReLU → BN, plus a shortcut (1×1 conv + BN when
    the shape changes). Not He et al.'s pre-activation v2, despite the name."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x):
        h = self.bn2(F.relu(self.conv2(self.bn1(F.relu(self.conv1(x))))))
        return self.shortcut(x) + h


class ResNetV2(nn.Module):
    """The original's baseline: depth 6n+2, n units per stage at widths 16/32/64."""

    def __init__(self, depth: int = 20, num_classes: int = 10, in_channels: int = 3, alpha: int = 16):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNet depth {depth} is not 6n+2 (the original asserts it; 'ResNet-52' cannot be built)")
        n = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, alpha, 3, padding=1, bias=False), nn.BatchNorm2d(alpha), nn.ReLU()
        )
        layers, previous = [], alpha
        for i, width in enumerate((alpha, 2 * alpha, 4 * alpha)):
            for j in range(n):
                layers.append(_BasicBlockV2(previous, width, 2 if (i > 0 and j == 0) else 1))
                previous = width
        self.stages = nn.Sequential(*layers)
        self.classifier = nn.Linear(previous, num_classes)
        _init_convs(self)

    def forward(self, x):
        return self.classifier(F.adaptive_avg_pool2d(self.stages(self.stem(x)), 1).flatten(1))


class _WideBasic(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride, padding=1)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride)

    def forward(self, x):
        h = self.conv2(F.relu(self.bn2(self.dropout(self.conv1(F.relu(self.bn1(x)))))))
        return h + self.shortcut(x)


class WideResNet(nn.Module):
    """The original's WideResNet: depth 6n+4, widen factor k, biased convs, final BN (momentum 0.9) → ReLU → pool.
    As in the original, ``conv_init`` is never applied: PyTorch's default initialisation."""

    def __init__(
        self,
        depth: int = 58,
        widen_factor: int = 4,
        num_classes: int = 100,
        in_channels: int = 3,
        dropout: float = 0.0,
        final_bn_momentum: float = 0.9,
    ):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth {depth} is not 6n+4")
        n, k = (depth - 4) // 6, widen_factor
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1)
        layers, previous = [], 16
        for i, width in enumerate((16 * k, 32 * k, 64 * k)):
            for j in range(n):
                layers.append(_WideBasic(previous, width, 2 if (i > 0 and j == 0) else 1, dropout))
                previous = width
        self.stages = nn.Sequential(*layers)
        self.final_bn = nn.BatchNorm2d(previous, momentum=final_bn_momentum)
        self.classifier = nn.Linear(previous, num_classes)

    def forward(self, x):
        x = F.relu(self.final_bn(self.stages(self.stem(x))))
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


@MODELS.register("resnet_v2")
def resnet_v2(depth: int = 20, num_classes: int = 10, **kw) -> ResNetV2:
    return ResNetV2(depth, num_classes, **kw)


@MODELS.register("wide_resnet")
def wide_resnet(depth: int = 58, widen_factor: int = 4, num_classes: int = 100, **kw) -> WideResNet:
    return WideResNet(depth, widen_factor, num_classes, **kw)
