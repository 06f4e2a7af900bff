"""Many τ runs trained as one: every member is its own run of :func:`repronets.tau.trial.train_one`.

Members share an architecture, a dataset and the optimizer's settings (:func:`group_key`); they differ in seed, T,
trainable or fixed τ (either meaning), a dependent last τ, the regulariser terms and pruning. Each member has

- its own initialisation (the model :func:`~repronets.tau.trial.build_model` makes from its seed),
- its own data order (the permutation ``train.fit`` draws for its seed and epoch),
- its own SGD state, objective (cross-entropy + its own R(τ)), projection of a dependent τ, τ tracking, pruning
  and finiteness check.

A pruned block is kept with τ = 0 and all its tensors frozen: ``x + 0·σ(Wx + b) = x``, the same function as the
network without it, and R(τ) is unchanged (a zero τ adds nothing to Στ, Σ|τ| or Στ²). Which block to prune is
decided on a per-member copy of the model that loses the block as the sequential run does (the same
:class:`~repronets.tau.training.AdaptivePruning`), so the rule, its events and its errors are the sequential
ones. The sequential run rebuilds its optimizer after a removal; here that member's momentum is zeroed, which is
the same thing for SGD without dampening (a new buffer starts as the gradient, as a zeroed one does). Only SGD is
batched (:func:`group_key`): Adam's step count is one per tensor, not per member.

Not bit-identical to the sequential runs: the members' products are batched matrix products (``vmap``), which
sum in another order; ``tests/test_tau.py`` bounds the difference over a few epochs. Why batching, and when it
pays: :mod:`repronets.core.members` and ``bench/bench_batched.py``.
"""

from __future__ import annotations

import math
import types

import torch

from ..core import data, train
from ..core.members import MemberTrainer
from ..runs.results import canonical
from .training import AdaptivePruning, tau_penalty
from .trial import build_model, run_label, stored_result

# The run keys members must share: they fix the architecture's structure and forward pass, the data, the steps.
SHARED = (
    "code_version",
    "architecture",
    "dataset",
    "train_limit",
    "width",
    "blocks",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "memory",
    "gamma",
    "eps",
)
MAX_MEMBERS = 64  # one group's members; memory grows with it (R × batch × width activations, R × test set at eval)


def group_key(run: dict) -> str | None:
    """Runs with the same key can be trained together; None: this run trains alone (non-SGD optimizers)."""
    if run["optimizer"] != "sgd":
        return None
    return canonical({k: run.get(k) for k in SHARED})


def train_members(p, runs: list[dict], checkpoint=None) -> list[dict]:
    """The results of ``runs`` (one :func:`group_key`), each as ``train_one`` returns it."""
    if len({group_key(r) for r in runs}) != 1 or group_key(runs[0]) is None:
        raise ValueError("train_members: the runs do not share one group_key; train them apart")
    first = runs[0]
    tr, te = data.train_test(
        first["dataset"], root=p.data_root or None, download=p.download, train_limit=first["train_limit"]
    )
    device = train.resolve_device(p.device)
    tr, te = tr.to(device), te.to(device)
    in_features = math.prod(tr.input_shape)
    # Each member's own model: built exactly as the sequential run builds it, then kept as the member's structure
    # (it loses pruned blocks) and filled with the member's values when a decision or the result needs them.
    shadows = [build_model(r, in_features, tr.num_classes).to(device) for r in runs]
    group = _TauGroup(runs, shadows, device)
    history = group.fit(tr, te, checkpoint)
    out = []
    for r, (run, shadow) in enumerate(zip(runs, shadows)):
        group.load_into(r, shadow)
        pruner = group.pruners[r]
        out.append(
            stored_result(run, shadow, history[r], group.tracking(r), pruner.events if pruner else [], len(tr), len(te))
            | {"batched_members": len(runs)}
        )
    return out


class _TauGroup(MemberTrainer):
    """The τ paper's hooks on the batched loop: R(τ), the FracDNN's clamp, the projection, τ tracking, pruning."""

    def __init__(self, runs: list[dict], shadows: list, device: torch.device):
        self.runs, self.shadows = runs, shadows
        names = [run_label(r) for r in runs]
        super().__init__(shadows, [r["seed"] for r in runs], _config(runs[0]), names, device, canonical(runs))
        self.resnet = runs[0]["architecture"] == "resnet"
        if not self.resnet:
            self.members.base.clamp_in_forward = False  # self.objective clamps the stacked τ
        self.tau_names = [f"blocks.{i}.tau" if self.resnet else f"tau{i}" for i in range(len(shadows[0].tau_tensors()))]
        coefficient = lambda key: torch.tensor([float(r[key]) for r in runs], device=self.device)  # noqa: E731
        self.T, self.horizon, self.l1, self.l2 = (coefficient(k) for k in ("T", "horizon", "l1", "l2"))
        self.pruners = [AdaptivePruning(r["prune_crit"], r["pruning_rule"]) if r["pruning"] else None for r in runs]
        self.removed = torch.zeros(self.size, len(self.tau_names), dtype=torch.bool, device=self.device)  # pruned
        self.rows: list[torch.Tensor] = []  # this epoch's τ after every step, (R, number of τ) each
        self.tracked: list[torch.Tensor] = []  # finished epochs, on the CPU

    def taus(self) -> torch.Tensor:
        """(R, number of τ); a pruned block's τ is 0."""
        return torch.stack([self.members.tensors[n] for n in self.tau_names], dim=1)

    def objective(self, x: torch.Tensor, y: torch.Tensor, shared: bool = False):
        """Each member's cross-entropy + R(τ), with its cross-entropy and accuracy: :func:`training.objective`."""
        if not self.resnet:  # the FracDNN clamps τ in place before its forward; on the stacked τ it is one op
            with torch.no_grad():
                for name in self.tau_names:
                    self.members.tensors[name].clamp_(min=self.shadows[0].eps)
        ce, metrics = super().objective(x, y, shared)
        penalty = tau_penalty(self.taus(), self.T, self.horizon, self.l1, self.l2)
        return ce + penalty, {"ce": ce.detach(), **metrics}

    def after_step(self) -> None:
        self.project_dependent_taus()
        self.rows.append(self.taus().detach().masked_fill(self.removed, float("nan")))  # as TauTracker

    def after_epoch(self) -> None:
        self.tracked.append(torch.stack(self.rows, dim=1).cpu())
        self.rows = []
        self.prune()

    def project_dependent_taus(self) -> None:
        """τ_last ← T − Σ(other τ) in the members with a dependent last τ (:class:`DependentLastTau`)."""
        for r, run in enumerate(self.runs):
            if run["dependent_last"]:
                alive = self.shadows[r].block_ids
                others = sum(self.members.tensors[self.tau_names[b]][r].detach() for b in alive[:-1])
                self.members.set_(self.tau_names[alive[-1]], r, run["T"] - others)

    def tracking(self, member: int) -> torch.Tensor:
        return torch.cat([t[member] for t in self.tracked]) if self.tracked else torch.empty(0, len(self.tau_names))

    # -------------------------------------------------------------- pruning: the sequential rule on each member

    def prune(self) -> None:
        for r, pruner in enumerate(self.pruners):
            if pruner is None:
                continue
            shadow = self.shadows[r]
            with torch.no_grad():
                for position, block_id in enumerate(shadow.block_ids):
                    shadow.blocks[position].tau.copy_(self.members.tensors[self.tau_names[block_id]][r])
            state = types.SimpleNamespace(
                model=shadow, epoch=self.epoch, step=self.step, rebuild_optimizer=lambda r=r: self.reset_momentum(r)
            )
            before = len(pruner.events)
            pruner.after_epoch(state)
            if len(pruner.events) > before:
                self.remove(r, pruner.events[-1]["block"])

    def remove(self, member: int, block_id: int) -> None:
        """The member's block ``block_id`` becomes the identity: τ = 0, its tensors frozen from now on."""
        self.members.freeze_(member, [n for n in self.members.tensors if n.startswith(f"blocks.{block_id}.")])
        self.members.set_(self.tau_names[block_id], member, 0.0)
        self.removed[member, block_id] = True

    @torch.no_grad()
    def reset_momentum(self, member: int) -> None:
        for state in self.optimizer.state.values():
            if state.get("momentum_buffer") is not None:
                state["momentum_buffer"][member].zero_()

    # -------------------------------------------------------------- results and checkpoints

    def load_into(self, member: int, shadow) -> None:
        """The member's values into its own model (pruned blocks' positions shift as the sequential model's)."""
        values = self.members.state_dict(member)
        if self.resnet:
            for position, block_id in enumerate(shadow.block_ids):
                for suffix in ("tau", "linear.weight", "linear.bias"):
                    values[f"blocks.{position}.{suffix}"] = values[f"blocks.{block_id}.{suffix}"]
        own = shadow.state_dict()
        shadow.load_state_dict({k: values[k] for k in own})

    def extra_state(self) -> dict:
        return {"tracked": self.tracked, "pruning_events": [p.events if p else None for p in self.pruners]}

    def load_extra_state(self, saved: dict) -> None:
        for r, events in enumerate(saved["pruning_events"]):
            if events is not None:
                self.pruners[r].load_state_dict({"events": events}, types.SimpleNamespace(model=self.shadows[r]))
                self.removed[r, [e["block"] for e in events]] = True
        self.tracked = [t.cpu() for t in saved["tracked"]]


def _config(run: dict) -> train.TrainConfig:
    return train.TrainConfig(
        epochs=run["epochs"], batch_size=run["batch_size"], **train.optimizer_options(run), eval_before=True
    )
