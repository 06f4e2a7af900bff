"""The τ paper's objective and its per-step and per-epoch hooks, for :func:`repronets.core.train.fit`.

- :func:`objective`: cross-entropy plus R(τ) = c·(Στ − T)² + λ·Σ|τ| + μ·Στ², summed over *all* τ (fixed ones
  included), as in the original; it is also the test loss, so ``test_losses`` include R(τ) as there.
- :class:`DependentLastTau`: after each optimizer step, τ_last ← T − Σ(other τ): a projection, not a
  reparametrisation (the other τ get no gradient through the constraint).
- :class:`TauTracker`: every τ after every step (after the projection), as the original's ``tau_tracking``.
- :class:`AdaptivePruning`: once per epoch, after the test evaluation, removes at most one residual block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PRUNING_RULES = ("smallest_share", "signed_min")


class PruningError(RuntimeError):
    """The faithful pruning rule chose the input layer, which breaks the network (as it does in the original)."""


def tau_penalty(taus: torch.Tensor, T, horizon=0.0, l1=0.0, l2=0.0) -> torch.Tensor:
    """R(τ) = horizon·(Στ − T)² + l1·Σ|τ| + l2·Στ², summed over the last dimension: one run's τ with numbers as
    coefficients, or the (R, τ) of batched members with a tensor (R,) per coefficient. A coefficient that is the
    number 0 adds no term; a tensor always adds its (then exactly zero) terms."""
    penalty = taus.new_zeros(taus.shape[:-1])
    if torch.is_tensor(horizon) or horizon:
        penalty = penalty + horizon * (taus.sum(-1) - T) ** 2
    if torch.is_tensor(l1) or l1:
        penalty = penalty + l1 * taus.abs().sum(-1)
    if torch.is_tensor(l2) or l2:
        penalty = penalty + l2 * (taus**2).sum(-1)
    return penalty


def objective(T: float, horizon: float = 0.0, l1: float = 0.0, l2: float = 0.0):
    def loss_fn(model, x, y):
        logits = model(x)
        ce = F.cross_entropy(logits, y)
        loss = ce + tau_penalty(model.taus(), T, horizon, l1, l2)
        return loss, {"ce": ce.detach(), "acc": (logits.argmax(1) == y).float().mean()}

    return loss_fn


class DependentLastTau:
    def __init__(self, T: float):
        self.T = T

    def after_step(self, state) -> None:
        taus = state.model.tau_tensors()
        with torch.no_grad():
            taus[-1].copy_(self.T - sum(t for t in taus[:-1]))


class TauTracker:
    """Records all τ after every step; rows are indexed by the blocks' original positions (NaN once removed)."""

    def __init__(self, num_taus: int):
        self.num_taus = num_taus
        self.rows: list[torch.Tensor] = []  # this epoch's steps, on the training device
        self.tracking: list[torch.Tensor] = []  # finished epochs, on the CPU

    def after_step(self, state) -> None:
        row = torch.full((self.num_taus,), float("nan"), device=state.device)
        row[state.model.block_ids] = state.model.taus().detach()
        self.rows.append(row)

    def after_epoch(self, state) -> None:
        if self.rows:
            self.tracking.append(torch.stack(self.rows).cpu())
            self.rows = []

    def table(self) -> torch.Tensor:
        return torch.cat(self.tracking) if self.tracking else torch.empty(0, self.num_taus)

    def state_dict(self) -> dict:
        return {"tracking": self.table()}

    def load_state_dict(self, saved: dict, state) -> None:
        self.tracking, self.rows = [saved["tracking"]], []


class AdaptivePruning:
    """Once per epoch: if some τ's share f_i = |τ_i| / Σ_j|τ_j| (over the trainable τ) is below ``crit``,
    remove one block. ``rule``:

    - ``"smallest_share"`` (default, corrected): the residual block with the smallest share; the input layer
      is never removed.
    - ``"signed_min"`` (faithful): the block whose τ is the signed minimum of the candidates, as released: not
      the arg-min of the share, and the input layer can be chosen (its τ stays a candidate until the first
      prune even when frozen). The original network then fails at its next forward pass; here that is a
      :class:`PruningError`.

    The corrected rule is the default because the faithful one can destroy the network and prunes by the sign
    of τ rather than by the share that triggers it.

    With no trainable τ (a ResNet with every τ fixed, ``fixed="all"``) there are no shares to compare, and nothing
    is pruned: pruning removes blocks whose *trained* step size became negligible, and a fixed τ never changes. Such
    a run trains as it would without pruning. (The original never meets this case: its "fixed" ResNet freezes τ0
    only, and the other five τ take part.) After a removal the optimizer is rebuilt at the current
    learning rate (the original rebuilds plain SGD every epoch, which is the same thing).
    """

    def __init__(self, crit: float = 0.01, rule: str = "smallest_share"):
        if rule not in PRUNING_RULES:
            raise ValueError(f"pruning rule {rule!r}: choose one of {PRUNING_RULES}")
        self.crit, self.rule = crit, rule
        self.events: list[dict] = []

    def candidates(self, model) -> list[int]:
        """Positions (in the current model) whose τ take part in the shares."""
        if self.rule == "signed_min" and not self.events:
            return [i for i, b in enumerate(model.blocks) if b.trainable or i == 0]
        return [i for i, b in enumerate(model.blocks) if b.trainable]

    def choose(self, model) -> int | None:
        positions = self.candidates(model)
        if not positions:  # no trainable τ: see the class docstring
            return None
        taus = torch.stack([model.blocks[i].tau.detach() for i in positions])
        shares = taus.abs() / taus.abs().sum()
        if self.rule == "signed_min":
            if float(shares.min()) >= self.crit:
                return None
            return positions[int(taus.argmin())]
        residual = [k for k, i in enumerate(positions) if i > 0]
        if not residual:
            return None
        k = min(residual, key=lambda k: float(shares[k]))
        return positions[k] if float(shares[k]) < self.crit else None

    def after_epoch(self, state) -> None:
        position = self.choose(state.model)
        if position is None:
            return
        block_id = state.model.block_ids[position]
        if position == 0:
            raise PruningError(
                f"epoch {state.epoch}: the faithful 'signed_min' rule removes the input layer "
                f"(τ0 = {float(state.model.blocks[0].tau.detach()):.4g}); the network cannot run without it. "
                "Use pruning_rule: smallest_share."
            )
        self.events.append(
            {
                "epoch": state.epoch,
                "step": state.step,
                "block": block_id,
                "tau": float(state.model.blocks[position].tau.detach()),
                # what the block cost per sample (analysis.training_compute_ratio)
                "multiply_adds": state.model.blocks[position].linear.weight.numel(),
            }
        )
        state.model.remove_block(position)
        state.rebuild_optimizer()

    def state_dict(self) -> dict:
        return {"events": list(self.events)}

    def load_state_dict(self, saved: dict, state) -> None:
        """Re-apply the removals so the model has the checkpoint's shape before its weights are loaded."""
        self.events = list(saved["events"])
        for event in self.events:
            state.model.remove_block(state.model.block_ids.index(event["block"]))
