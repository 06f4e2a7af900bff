"""Training pieces for ContinuousNet: refinement during training and the LR schedule (augmentation on the device is
``repronets.core.transforms``)."""

from __future__ import annotations

import re

import torch

from ..core.registry import Registry
from .blocks import refine

# The originals' two conventions for "decay the LR after epoch e", as the offset of the MultiStepLR milestone (a decay
# after that many completed epochs) from e. ``continuousnet`` (cli.py): decay *after* 0-based epoch e, so with
# [30, 60, 90] the LR is 0.1 for 31 epochs. ``resnet`` (train_resnet.py): after epochs counted from 1, 30 epochs at 0.1.
SCHEDULE_CONVENTIONS: Registry[int] = Registry("schedule convention")
SCHEDULE_CONVENTIONS.register("continuousnet", 1)
SCHEDULE_CONVENTIONS.register("resnet", 0)


def lr_milestones(decay_epochs: list[int], convention: str) -> list[int]:
    """MultiStepLR milestones for decays after ``decay_epochs`` in a convention of :data:`SCHEDULE_CONVENTIONS`."""
    offset = SCHEDULE_CONVENTIONS.get(convention)
    return [e + offset for e in decay_epochs]


class Refinement:
    """Refine every ODE block at the start of each 0-based epoch in ``epochs`` (i.e. after that many epochs).

    The optimizer is then rebuilt at the current learning rate with empty momentum, as in the original
    (``carry_state=False``, default: faithful); with ``carry_state=True`` each parameter's optimizer state is
    carried over, split like the parameter itself (a piece's momentum goes to both of its halves).
    """

    def __init__(self, epochs, variance: float = 0.0, carry_state: bool = False):
        self.epochs, self.variance, self.carry_state = sorted(epochs), variance, carry_state
        self.done: list[int] = []

    def after_epoch(self, state) -> None:
        if state.epoch not in self.epochs or state.epoch in self.done:
            return
        old = {name: (p.shape, dict(state.optimizer.state.get(p, {}))) for name, p in state.model.named_parameters()}
        refine(state.model, self.variance)
        self.done.append(state.epoch)
        state.rebuild_optimizer()
        if self.carry_state:
            for name, p in state.model.named_parameters():
                shape, saved = old.get(_source(name), (None, {}))
                state.optimizer.state[p] = {k: _split(v, shape, p.shape) for k, v in saved.items()}

    def state_dict(self) -> dict:
        return {"done": list(self.done)}

    def load_state_dict(self, saved: dict, state) -> None:
        """Re-refine so the model has the checkpoint's shape before its weights are loaded."""
        self.done = list(saved["done"])
        for _ in self.done:
            refine(state.model, 0.0)


def _source(name: str) -> str:
    """The parameter a refined parameter came from: norms.{2k or 2k+1} ← norms.{k}; convolutions keep their name."""
    return re.sub(r"norms\.(\d+)\.", lambda m: f"norms.{int(m.group(1)) // 2}.", name)


def _split(value, old_shape, new_shape):
    if isinstance(value, torch.Tensor) and value.shape == old_shape and old_shape != new_shape:
        return value.repeat_interleave(2, dim=0).clone()
    return value.clone() if isinstance(value, torch.Tensor) else value
