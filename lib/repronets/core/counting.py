"""Size and cost of a model: parameters and multiply-adds, one place for the papers' counts, tables and figures."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, *, trainable_only: bool) -> int:
    """The number of parameter entries of ``model``: all of them, or only those with ``requires_grad``.

    The papers count differently: the τ paper's counts are of trainable parameters (a frozen τ is not one); the
    ContinuousNet and SSS references count every parameter (SSS's zero-size boundary generators count 0).
    Buffers (BatchNorm statistics, a frozen τ kept as a buffer) are never counted.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(fn, *args) -> int:
    """Multiply-adds of ``fn(*args)`` without autograd (flop_counter's FLOPs / 2).

    ``torch.utils.flop_counter`` counts matrix products, convolutions and attention, not elementwise operations.
    """
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops() // 2
