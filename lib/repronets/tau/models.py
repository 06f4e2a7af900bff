"""Time-variable networks whose step sizes τ are parameters (Herberg, Herzog, Köhne, arXiv 2306.16111).

Two architectures, built as the original ``tau_modules`` builds them (reference: docs/papers/tau.md §1):

- :class:`TauResNet`: a first layer ``x1 = τ0·σ(W0 x + b0)`` (input → width, no shortcut), then residual blocks
  ``x_{k+1} = x_k + τ_k·σ(W_k x_k + b_k)`` (forward-Euler steps of size τ_k), then a bias-free output layer.
- :class:`FracDNN`: the same layers, stepped with the non-uniform L1 scheme of a Caputo derivative of order γ.

Every τ starts at T / (number of τ), so Στ = T. The Linear layers are created in the same order in both models,
and τ consume no random numbers, so under one seed both start from identical weights (as in the original).

The original's bugs are options, each documented where it is defined: ``fixed`` (which τ a "fixed τ" ResNet
freezes) and ``memory`` (whether the FracDNN's memory coefficients carry gradients).

:data:`ARCHITECTURES` builds either by name with one signature, ``blocks`` residual τ-blocks after the input
layer (so ``blocks + 1`` τ), plus each architecture's own keyword options::

    model = ARCHITECTURES.create("fracdnn", 784, 10, width=100, blocks=5, T=1.0, gamma=0.5)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..core.registry import Registry

FIXED_MODES = ("first", "all")
MEMORY_MODES = ("detached", "autograd")


class TauBlock(nn.Module):
    """``x ↦ [x +] τ·σ(W x + b)``. A fixed τ is a buffer (saved with the model, moved with it, not trained)."""

    def __init__(self, in_features: int, out_features: int, tau: float, trainable: bool, shortcut: bool):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.shortcut = shortcut
        value = torch.tensor(float(tau))
        if trainable:
            self.tau = nn.Parameter(value)
        else:
            self.register_buffer("tau", value)

    @property
    def trainable(self) -> bool:
        return isinstance(self.tau, nn.Parameter)

    def forward(self, x):
        h = self.tau * F.relu(self.linear(x))
        return x + h if self.shortcut else h


class TauResNet(nn.Module):
    """The τ-ResNet of the original experiments (784 → 100, 5 residual blocks of width 100, 100 → 10).

    ``fixed`` says what "τ not trainable" means:

    - ``"first"`` (default, faithful to the released code): only τ0 (the input layer's) is frozen; the residual
      blocks' τ stay trainable. The original passes ``tau_is_trainable`` to the first block only; its JSON still
      says ``tau_is_trainable: false``. It is the default because it is what the released code does.
    - ``"all"`` (corrected): every τ is frozen. This is what the paper's figure shows: its "ResNet τ fix" curve is
      matched by ``all`` and not by ``first``, which learns about as fast as trainable τ (paper profile, README;
      claims ``tau.figure.fixed_resnet.*``). The experiments run both.

    With ``dependent_last`` the last τ is not trained: it is set to T − Σ(other τ) after every optimizer step
    (see :class:`repronets.tau.training.DependentLastTau`).
    """

    def __init__(
        self,
        in_features: int = 784,
        width: int = 100,
        num_blocks: int = 5,
        num_classes: int = 10,
        T: float = 1.0,
        tau_trainable: bool = True,
        fixed: str = "first",
        dependent_last: bool = False,
    ):
        super().__init__()
        if fixed not in FIXED_MODES:
            raise ValueError(f"fixed={fixed!r}: choose one of {FIXED_MODES}")
        tau0 = T / (num_blocks + 1)
        residual_trainable = tau_trainable or fixed == "first"
        blocks = [TauBlock(in_features, width, tau0, tau_trainable, shortcut=False)]
        for k in range(num_blocks):
            last = k == num_blocks - 1
            blocks.append(
                TauBlock(width, width, tau0, residual_trainable and not (last and dependent_last), shortcut=True)
            )
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(width, num_classes, bias=False)
        self.T, self.dependent_last = float(T), dependent_last
        self.block_ids = list(range(len(blocks)))  # each block's original position, kept through pruning

    def taus(self) -> torch.Tensor:
        """All τ in network order (fixed ones included), as one differentiable vector."""
        return torch.stack([b.tau for b in self.blocks])

    def tau_tensors(self) -> list[torch.Tensor]:
        return [b.tau for b in self.blocks]

    def remove_block(self, index: int) -> None:
        del self.blocks[index]
        del self.block_ids[index]

    def forward(self, x):
        x = x.flatten(1)
        for block in self.blocks:
            x = block(x)
        return self.classifier(x)


class FracDNN(nn.Module):
    """Fractional DNN with variable steps: an L1-type Caputo discretisation of order γ on the grid τ.

        u_{n+1} = u_n + τ_n^γ Γ(2−γ) σ(W_n u_n + b_n) − Σ_{j<n} a(n,j) (u_{j+1} − u_j)
        a(n,j)  = (τ_n^γ / τ_j) [ (Σ_{k=j..n} τ_k)^{1−γ} − (Σ_{k=j+1..n} τ_k)^{1−γ} ]

    Where a layer changes the dimension (the input layer), the ``u_n`` term is dropped and the state is taken
    as 0 before it (so u_1 − u_0 counts as u_1). With γ = 1 every a(n,j) = 0 and the network is the τ-ResNet;
    with uniform τ, a(n,j) = (n−j+1)^{1−γ} − (n−j)^{1−γ}, the classical L1 weights.

    ``memory``: ``"detached"`` (default, faithful: the original computes a(n,j) under ``no_grad``, so τ get
    gradients only through τ_n^γ and the differences) or ``"autograd"`` (gradients through a(n,j) as well).
    Before every forward pass each τ below ``eps`` is set to ``eps`` in place, as in the original (1e-4).
    All τ are frozen when ``tau_trainable`` is False (the FracDNN has no "first only" bug).
    """

    def __init__(
        self,
        in_features: int = 784,
        width: int = 100,
        num_layers: int = 6,
        num_classes: int = 10,
        T: float = 1.0,
        tau_trainable: bool = True,
        gamma: float = 0.5,
        eps: float = 1e-4,
        memory: str = "detached",
        dependent_last: bool = False,
    ):
        super().__init__()
        if memory not in MEMORY_MODES:
            raise ValueError(f"memory={memory!r}: choose one of {MEMORY_MODES}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma={gamma}: the scheme needs 0 < γ ≤ 1")
        self.linears = nn.ModuleList(
            [nn.Linear(in_features, width)] + [nn.Linear(width, width) for _ in range(num_layers - 1)]
        )
        self.classifier = nn.Linear(width, num_classes, bias=False)
        tau0 = T / num_layers
        for i in range(num_layers):
            # As in the original, a dependent last τ stays an nn.Parameter here: SGD updates it and the projection
            # after the step overwrites it, which gives the same result.
            value = torch.tensor(float(tau0))
            if tau_trainable:
                setattr(self, f"tau{i}", nn.Parameter(value))
            else:
                self.register_buffer(f"tau{i}", value)
        self.T, self.gamma, self.eps, self.memory, self.dependent_last = float(T), gamma, eps, memory, dependent_last
        self.block_ids = list(range(num_layers))
        # Batched training (repronets.tau.grouped) clamps the stacked τ of all members before the forward instead:
        # vmap has no batching rule for the in-place clamp_ and falls back to a slow per-member loop.
        self.clamp_in_forward = True

    def tau_tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f"tau{i}") for i in range(len(self.linears))]

    def taus(self) -> torch.Tensor:
        return torch.stack(self.tau_tensors())

    def clamp_taus_(self) -> None:
        with torch.no_grad():
            for t in self.tau_tensors():
                t.clamp_(min=self.eps)

    def memory_weights(self, taus: torch.Tensor, n: int) -> torch.Tensor:
        """a(n, j) for j = 0..n−1 (see the class docstring)."""
        one_minus = 1.0 - self.gamma
        tail = taus[: n + 1].flip(0).cumsum(0).flip(0)  # tail[j] = Σ_{k=j..n} τ_k
        upper = tail[:n]  # Σ_{k=j..n}
        lower = tail[1 : n + 1]  # Σ_{k=j+1..n}
        return taus[n] ** self.gamma / taus[:n] * (upper**one_minus - lower**one_minus)

    def forward(self, x):
        if self.clamp_in_forward:
            self.clamp_taus_()
        u = x.flatten(1)
        taus = self.taus()
        scale = math.gamma(2.0 - self.gamma)
        differences = []
        for n, linear in enumerate(self.linears):
            same_dim = linear.in_features == linear.out_features
            new = taus[n] ** self.gamma * scale * F.relu(linear(u))
            if same_dim:
                new = new + u
            if n > 0:
                if self.memory == "detached":
                    with torch.no_grad():
                        a = self.memory_weights(taus, n)
                else:
                    a = self.memory_weights(taus, n)
                new = new - torch.einsum("j,jbd->bd", a, torch.stack(differences))
            differences.append(new - u if same_dim else new)
            u = new
        return self.classifier(u)


# ---------------------------------------------------------------- named factories

ARCHITECTURES = Registry("τ architecture")


@ARCHITECTURES.register("resnet")
def resnet(
    in_features: int,
    num_classes: int,
    *,
    width: int,
    blocks: int,
    T: float,
    tau_trainable: bool = True,
    dependent_last: bool = False,
    fixed: str = "first",
) -> TauResNet:
    """The τ-ResNet: an input layer and ``blocks`` residual blocks."""
    return TauResNet(in_features, width, blocks, num_classes, T, tau_trainable, fixed, dependent_last)


@ARCHITECTURES.register("fracdnn")
def fracdnn(
    in_features: int,
    num_classes: int,
    *,
    width: int,
    blocks: int,
    T: float,
    tau_trainable: bool = True,
    dependent_last: bool = False,
    gamma: float = 0.5,
    eps: float = 1e-4,
    memory: str = "detached",
) -> FracDNN:
    """The FracDNN with as many τ as the ResNet of ``blocks`` residual blocks (its input layer is layer 0)."""
    return FracDNN(in_features, width, blocks + 1, num_classes, T, tau_trainable, gamma, eps, memory, dependent_last)
