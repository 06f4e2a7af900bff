"""Multiply-adds as ``torch.utils.flop_counter`` counts them (matrix products, convolutions and attention, not
elementwise operations): one place for the papers' cost figures and tables."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_macs(fn, *args) -> int:
    """Multiply-adds of ``fn(*args)`` without autograd (flop_counter's FLOPs / 2)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        fn(*args)
    return counter.get_total_flops() // 2
