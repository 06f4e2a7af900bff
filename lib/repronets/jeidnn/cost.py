"""Cost per exit of the dynamic network, cumulative (an exit's cost includes every block, IC and gate before it),
in two conventions (docs/papers/jeidnn.md §3.1):

- ``macs``: true multiply-adds per sample, counted by ``torch.utils.flop_counter`` (matrix products, attention and
  performer einsums included) on one forward of each part;
- ``original``: the original code's counter (adapted from MSDNet's), which charges a Linear its weight + bias count
  once whatever the number of tokens, a LayerNorm 2.5 and a GELU 4 operations per element (all tokens), a gate 9C + 6,
  and nothing for attention products; its IC LayerNorm runs over all tokens; the final exit is charged the final
  LayerNorm twice. This reproduces the stored CIFAR-10 T2T-ViT-7 costs [5.534 … 12.082, 13.518]×10⁶ (tested), so the
  paper's axes can be redrawn.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.counting import count_macs
from .dynamic import DynamicNet


def _original_ops(module: nn.Module, fn, *args) -> float:
    """The original counter's operations for running ``fn(*args)`` through ``module``'s submodules."""
    total = [0.0]

    def hook(m, inputs, output):
        if isinstance(m, nn.Linear):
            total[0] += m.weight.numel() + (m.bias.numel() if m.bias is not None else 0)
        elif isinstance(m, nn.LayerNorm):
            total[0] += 2.5 * inputs[0].numel()
        elif isinstance(m, nn.GELU):
            total[0] += 4 * inputs[0].numel()

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.Linear, nn.LayerNorm, nn.GELU))
    ]
    try:
        with torch.no_grad():
            fn(*args)
    finally:
        for h in handles:
            h.remove()
    return total[0]


@torch.no_grad()
def exit_costs(model: DynamicNet, input_shape: tuple[int, ...], gates: bool = True) -> dict[str, list[float]]:
    """Cumulative cost per sample of exits 0 … G in both conventions (batch-1 passes, eval mode). ``gates=False``:
    the baselines' identity gates, which cost nothing (their thresholds compare a probability already computed)."""
    was_training = model.training
    model.eval()
    bb = model.backbone
    device = next(model.parameters()).device
    x = torch.zeros(1, *input_shape, device=device)
    C = bb.num_classes
    tokens = [bb.tokens(x)]
    for block in bb.blocks:
        tokens.append(block(tokens[-1]))
    stem = {"macs": count_macs(bb.tokens, x), "original": _original_ops(bb, bb.tokens, x)}
    per_block = [{"macs": count_macs(b, t), "original": _original_ops(b, b, t)} for b, t in zip(bb.blocks, tokens[:-1])]

    def ic_cost(l: int) -> dict:
        t = tokens[l + 1]
        macs = count_macs(lambda: model.ics[l](bb.norm(t[:, 0])))
        original = 2.5 * t.numel() + model.ics[l].weight.numel() + model.ics[l].bias.numel()
        if gates:
            macs += count_macs(lambda: model.gates[l](torch.zeros(1, 4, device=device)))
            original += 9 * C + 6
        return {"macs": macs, "original": original}

    costs = {"macs": [], "original": []}
    running = dict(stem)
    G = len(model.ics)
    for l in range(G):
        ic = ic_cost(l)
        for k in costs:
            running[k] += per_block[l][k] + ic[k]
            costs[k].append(float(running[k]))
    last = tokens[-1]
    final_macs = count_macs(lambda: bb.classify(last))
    final_original = 2 * 2.5 * last.numel() + bb.head.weight.numel() + bb.head.bias.numel()
    costs["macs"].append(float(running["macs"] + per_block[G]["macs"] + final_macs))
    costs["original"].append(float(running["original"] + per_block[G]["original"] + final_original))
    model.train(was_training)
    return costs


def mean_cost(exits: torch.Tensor, cumulative: list[float]) -> float:
    """Σ_l (n_l/N)·C_l: the mean per-sample cost of an exit pattern."""
    table = torch.as_tensor(cumulative, dtype=torch.float64)
    return float(table[exits.cpu()].mean())
