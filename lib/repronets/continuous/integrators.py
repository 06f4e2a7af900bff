"""Fixed-step explicit Runge-Kutta integration over depth-time, with piecewise-constant weights.

    odeint(f, x, steps, pieces, scheme="rk4_classic")

integrates dx/dt = f(x, k(t)) over normalised time t ∈ [0, 1] in ``steps`` equal steps, where ``k(t)`` is the index
of the weight piece (of ``pieces`` equal pieces) that holds at time t; ``f`` receives that integer index. The
caller scales f by the depth-time T (ε): the step in physical time is T/steps.

Schemes are Butcher tableaux in a string registry (:data:`SCHEMES`). Hand-written rather than torchdiffeq: its
``rk4`` is the 3/8 rule and classic RK4 is not a public method; it maps a stage to weights through a float time,
which is how the original lost the open-set semantics (below); and it has no notion of per-piece modules such as
one BatchNorm per piece. What is needed here is a loop over steps and stages.

Piece selection. Stage i of step n is at τ = (n + c_i)/steps. Every stage of a step should use the step's own piece
(the intended semantics, confirmed by the authors' later JAX code), which exact rational arithmetic gives:
piece ⌊τ·pieces⌋ for c_i < 1, and ⌈τ·pieces⌉ − 1 for c_i = 1 (the step's right end belongs to the step).
``legacy=True`` reproduces the original's float32 behaviour instead: t = t_n + c·h in float32, piece int(t·pieces)
clamped to the last; then RK4's last stage takes the *next* piece whenever a step ends on a piece boundary (RK4
drops to first order), and with pieces = 3 piece 2 is never used (2/3 rounds below it).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from fractions import Fraction
from typing import Callable

import torch

from ..core.registry import Registry


@dataclasses.dataclass(frozen=True)
class Tableau:
    c: tuple[Fraction, ...]
    a: tuple[tuple[Fraction, ...], ...]  # a[i][j], j < i
    b: tuple[Fraction, ...]
    order: int


F = Fraction
# The one table of schemes: ``SCHEMES.get(name)`` is the tableau, and the error for an unknown name lists the known.
SCHEMES: Registry[Tableau] = Registry("scheme")
SCHEMES.register("euler", Tableau((F(0),), ((),), (F(1),), 1))
SCHEMES.register("midpoint", Tableau((F(0), F(1, 2)), ((), (F(1, 2),)), (F(0), F(1)), 2))
SCHEMES.register(
    "rk4_classic",
    Tableau(
        (F(0), F(1, 2), F(1, 2), F(1)),
        ((), (F(1, 2),), (F(0), F(1, 2)), (F(0), F(0), F(1))),
        (F(1, 6), F(1, 3), F(1, 3), F(1, 6)),
        4,
    ),
)
SCHEMES.register(
    "rk4_38",
    Tableau(
        (F(0), F(1, 3), F(2, 3), F(1)),
        ((), (F(1, 3),), (F(-1, 3), F(1)), (F(1), F(-1), F(1))),
        (F(1, 8), F(3, 8), F(3, 8), F(1, 8)),
        4,
    ),
)


def stage_pieces(scheme: str, steps: int, pieces: int, legacy: bool = False) -> list[list[int]]:
    """The weight piece used by each stage of each step: ``result[n][i]``."""
    return [list(row) for row in _stage_table(scheme, steps, pieces, legacy)]


@functools.lru_cache(maxsize=256)
def _stage_table(scheme: str, steps: int, pieces: int, legacy: bool) -> tuple[tuple[int, ...], ...]:
    # Cached: every ODE-block forward needs this table, and it depends only on these four values.
    tableau = SCHEMES.get(scheme)
    if steps < 1 or pieces < 1:
        raise ValueError(f"steps ({steps}) and pieces ({pieces}) must be at least 1")
    if legacy:
        # The original's grid: torch.linspace in float32 (its symmetric formula gives 2/3 as 0.6666666), stage times
        # t_n + c·(t_{n+1} − t_n) in float32, piece int(t·pieces) clamped to the last.
        grid = torch.linspace(0, 1, steps + 1, dtype=torch.float32)
    table = []
    for n in range(steps):
        row = []
        for c in tableau.c:
            if legacy:
                t = grid[n] + torch.tensor(float(c), dtype=torch.float32) * (grid[n + 1] - grid[n])
                k = int((t * pieces).item())
            else:
                tau = (n + c) / steps * pieces
                k = math.floor(tau) if c < 1 else math.ceil(tau) - 1
            row.append(min(max(k, 0), pieces - 1))
        table.append(tuple(row))
    return tuple(table)


def odeint(f: Callable, x, steps: int, pieces: int, scheme: str = "euler", legacy: bool = False, T: float = 1.0):
    """x(T) for dx/dt = f(x, piece) from x(0) = x, in ``steps`` steps of size T/steps (see the module docstring).

    Pieces divide the interval in equal parts whatever T is. T multiplies the step once (h = T/steps) rather than
    f, so that with T = steps an Euler step is exactly x + f(x), bit for bit: a residual unit.
    """
    tableau = SCHEMES.get(scheme)
    h = T / steps
    b = [float(v) for v in tableau.b]
    a = [[float(v) for v in row] for row in tableau.a]
    # Fused x.add(k, alpha=c) instead of x + c·k: one pass over the state and no temporary (measured: Euler's
    # overhead over ResNet-20 per training step fell from 8 % to 4 % on a CPU); with c = 1 it is exactly x + k.
    for row_pieces in _stage_table(scheme, steps, pieces, legacy):
        k = []
        for i, piece in enumerate(row_pieces):
            xi = x
            for j, aij in enumerate(a[i]):
                if aij:
                    xi = xi.add(k[j], alpha=h * aij)
            k.append(f(xi, piece))
        for bi, ki in zip(b, k):
            if bi:
                x = x.add(ki, alpha=h * bi)
    return x
