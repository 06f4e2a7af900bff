"""ODE blocks whose residual function has weights piecewise constant over depth-time.

Reference: docs/papers/continuousnet.md §1.

An :class:`ODEBlock` integrates dx/dt = ε·R(x; θ(t)) over t ∈ [0, 1], θ(t) piecewise constant with ``pieces`` pieces,
in ``pieces × steps_per_piece`` steps of a scheme from :mod:`repronets.continuous.integrators`. With ε = T = pieces and
one Euler step per piece, each step is exactly a residual unit x ← x + R_k(x).

Each piece has its own convolution weights and biases and its own BatchNorm (affine parameters and running
statistics). :meth:`ODEBlock.refine` splits every piece in two (copies, so θ(t) is unchanged) and doubles the steps.
"""

from __future__ import annotations

import contextlib
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from .integrators import SCHEMES, odeint


class PiecewiseConv2d(nn.Module):
    """3×3 convolutions, one per piece: weights (pieces, out, in, 3, 3) ~ N(0, 2/(9·out)), biases (pieces, out) = 0."""

    def __init__(self, in_channels: int, out_channels: int, pieces: int):
        super().__init__()
        self.weight = nn.Parameter(
            torch.randn(pieces, out_channels, in_channels, 3, 3) * math.sqrt(2 / (9 * out_channels))
        )
        self.bias = nn.Parameter(torch.zeros(pieces, out_channels))

    def forward(self, x, piece: int):
        return F.conv2d(x, self.weight[piece], self.bias[piece], padding=1)

    @torch.no_grad()
    def refine(self, variance: float = 0.0) -> None:
        # New Parameters, not ``p.data = ...``: autograd keeps a leaf's old shape once it has been through backward,
        # and the refined weights then get gradients of the unrefined shape (measured).
        for name in ("weight", "bias"):
            new = getattr(self, name).repeat_interleave(2, dim=0)
            if variance:
                new = new * (1 + variance * torch.randn_like(new))
            setattr(self, name, nn.Parameter(new))


class PiecewiseBatchNorm2d(nn.Module):
    """One BatchNorm2d per piece."""

    def __init__(self, channels: int, pieces: int):
        super().__init__()
        self.norms = nn.ModuleList(nn.BatchNorm2d(channels) for _ in range(pieces))

    def forward(self, x, piece: int):
        return self.norms[piece](x)

    def refine(self) -> None:
        self.norms = nn.ModuleList(copy.deepcopy(n) for n in self.norms for _ in range(2))


class ResidualFunction(nn.Module):
    """R_k(x): conv → ReLU → BN → conv → ReLU → BN (post-activation, the CIFAR-10 model), or
    BN → ReLU → conv → BN → ReLU → conv (``preact``, the wide model); optionally × a SkipInit scalar (init 0)."""

    def __init__(self, width: int, pieces: int, preact: bool = False, skipinit: bool = False):
        super().__init__()
        self.pieces, self.preact = pieces, preact
        self.conv1, self.conv2 = PiecewiseConv2d(width, width, pieces), PiecewiseConv2d(width, width, pieces)
        self.bn1, self.bn2 = PiecewiseBatchNorm2d(width, pieces), PiecewiseBatchNorm2d(width, pieces)
        self.skip = nn.Parameter(torch.zeros(pieces)) if skipinit else None
        # the nonlinearity; the block-convergence study swaps in a smooth one on a copy (experiment.block_convergence)
        self.activation = F.relu

    def forward(self, x, piece: int):
        act = self.activation
        if self.preact:
            h = self.conv2(act(self.bn2(self.conv1(act(self.bn1(x, piece)), piece), piece)), piece)
        else:
            h = self.bn2(act(self.conv2(self.bn1(act(self.conv1(x, piece)), piece), piece)), piece)
        return h * self.skip[piece] if self.skip is not None else h

    def refine(self, variance: float = 0.0) -> None:
        self.conv1.refine(variance)
        self.conv2.refine(variance)
        self.bn1.refine()
        self.bn2.refine()
        if self.skip is not None:
            self.skip = nn.Parameter(self.skip.detach().repeat_interleave(2))
        self.pieces *= 2


class ODEBlock(nn.Module):
    """x(1) of dx/dt = ε·R(x; θ(t)); see the module docstring. ``legacy``: the original's float32 piece selection."""

    def __init__(
        self,
        fn: ResidualFunction,
        epsilon: float,
        scheme: str = "euler",
        steps_per_piece: int = 1,
        legacy: bool = False,
    ):
        super().__init__()
        SCHEMES.get(scheme)  # an unknown scheme fails here, not at the first forward
        self.fn, self.epsilon, self.scheme, self.legacy = fn, float(epsilon), scheme, legacy
        self.steps = fn.pieces * steps_per_piece

    def forward(self, x):
        return odeint(self.fn, x, self.steps, self.fn.pieces, self.scheme, self.legacy, T=self.epsilon)

    def refine(self, variance: float = 0.0) -> None:
        """Split every piece in two and double the steps; ε (T) is kept: the same ODE on a grid twice as fine."""
        self.fn.refine(variance)
        self.steps *= 2

    def extra_repr(self) -> str:
        return f"pieces={self.fn.pieces}, steps={self.steps}, scheme={self.scheme!r}, epsilon={self.epsilon:g}"


class Stitch(nn.Module):
    """The transition between stages: an ordinary residual block with a 1×1 projection (no BN), out = P(x) + ε_s·h.

    Post-activation (``preact=False``): h = ReLU(conv(BN1(ReLU(conv_s(x))))). As in the original, ``bn2`` is built
    and counted but never applied (``use_bn2=True`` applies it after the last ReLU, as the paper-era code did).
    Pre-activation: h = conv(ReLU(BN2(conv_s(ReLU(BN1(x)))))), BN1 over the input channels.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        epsilon: float = 1.0,
        preact: bool = False,
        skipinit: bool = False,
        use_bn2: bool = False,
    ):
        super().__init__()
        self.preact, self.epsilon, self.use_bn2 = preact, float(epsilon), use_bn2
        self.projection = nn.Conv2d(in_channels, out_channels, 1, stride, bias=False)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(in_channels if preact else out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.skip = nn.Parameter(torch.zeros(())) if skipinit else None

    def forward(self, x):
        if self.preact:
            h = self.conv2(F.relu(self.bn2(self.conv1(F.relu(self.bn1(x))))))
        else:
            h = F.relu(self.conv2(self.bn1(F.relu(self.conv1(x)))))
            if self.use_bn2:
                h = self.bn2(h)
        if self.skip is not None:
            h = h * self.skip
        return self.projection(x) + self.epsilon * h


def ode_blocks(model: nn.Module) -> list[ODEBlock]:
    return [m for m in model.modules() if isinstance(m, ODEBlock)]


def refine(model: nn.Module, variance: float = 0.0) -> None:
    """Refine every ODE block of ``model`` (the stem, the stitches and the head are unchanged)."""
    for block in ode_blocks(model):
        block.refine(variance)


@contextlib.contextmanager
def manifestation(model: nn.Module, steps: int | None = None, scheme: str | None = None):
    """Evaluate ``model`` with another number of steps per block and/or another scheme, weights untouched.

    ``steps`` may be any positive integer, also fewer than the pieces (pieces are then skipped, as in the
    original's manifestation test). Restores the trained setting on exit.
    """
    if scheme is not None:
        SCHEMES.get(scheme)  # an unknown scheme fails here, before any block is changed
    blocks = ode_blocks(model)
    saved = [(b.steps, b.scheme) for b in blocks]
    try:
        for b in blocks:
            if steps is not None:
                b.steps = steps
            if scheme is not None:
                b.scheme = scheme
        yield model
    finally:
        for b, (st, sc) in zip(blocks, saved):
            b.steps, b.scheme = st, sc
