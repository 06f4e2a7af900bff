"""Inference policies (which exit each sample leaves at) and their evaluation on the test folds
(docs/papers/jeidnn.md §3.1, §4): JEI-DNN's gates, and the baselines' MSDNet-style budgeted confidence thresholds
fitted on validation samples. Evaluation: accuracy, mean cost in both conventions, ECE and conformal sets per test
fold (:mod:`.metrics`), summarised as mean, sd and the fold values."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import cost, metrics
from .dynamic import DynamicNet, exit_scores, first_exit


def gate_exits(model: DynamicNet, logits: torch.Tensor) -> torch.Tensor:
    """JEI-DNN's policy: the first exit whose conditional exit score reaches 0.5, from all exits' logits (B, G+1, C)
    (the decisions :meth:`DynamicNet.infer` takes while it runs)."""
    return gate_exits_from_values(model, model.gate_values(logits))


def gate_spread(model: DynamicNet, logits: torch.Tensor) -> dict:
    """How much each gate's output g_l varies across samples (all exits' logits (B, G+1, C)): its mean and standard
    deviation, and the exit distribution that gates ignoring the sample would give (every gate at its mean output,
    the same exit for all): where that matches the observed distribution, the gates carry nothing per sample."""
    g = model.gate_values(logits)
    constant = gate_exits_from_values(model, g.mean(0, keepdim=True))
    return {
        "gate_mean": g.mean(0).tolist(),
        "gate_sd": g.std(0).tolist() if len(g) > 1 else [0.0] * g.shape[1],
        "constant_gate_exit": int(constant[0]),
    }


def gate_exits_from_values(model: DynamicNet, g: torch.Tensor) -> torch.Tensor:
    """The first exit whose conditional exit score reaches 0.5 under the model's exit rule, from gate outputs g."""
    return first_exit(exit_scores(g, model.exit_rule))


def target_distribution(p: float, exits: int) -> torch.Tensor:
    """The budget levels' target share of samples per exit, ∝ p^l (MSDNet's; L2W-DEN's meta-objective too)."""
    q = torch.tensor([p**l for l in range(exits)], dtype=torch.float64)
    return q / q.sum()


def budget_thresholds(confidence: torch.Tensor, p: float) -> torch.Tensor:
    """MSDNet's budgeted thresholds: a target exit distribution ∝ p^l over the exits; walking the exits in order,
    threshold l lets the ⌊N·q_l⌋ most confident of the samples still present exit; the last exit takes the rest.
    confidence (N, G+1): each exit's max softmax probability."""
    n, exits = confidence.shape
    q = target_distribution(p, exits)
    thresholds = torch.full((exits,), -1e8, dtype=confidence.dtype)
    present = torch.ones(n, dtype=torch.bool)
    for l in range(exits - 1):
        want = int(np.floor(n * float(q[l])))
        want = min(want, int(present.sum()))
        if want > 0:
            values = confidence[present, l].sort(descending=True).values
            thresholds[l] = values[want - 1]
            leaving = present & (confidence[:, l] >= thresholds[l])
        else:
            thresholds[l] = float("inf")
            leaving = torch.zeros(n, dtype=torch.bool)
        present &= ~leaving
    return thresholds


def threshold_exits(confidence: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """The first exit whose confidence reaches its threshold (the last exit always does)."""
    hit = confidence >= thresholds.to(confidence.device)[None, :]
    hit[:, -1] = True
    return hit.float().argmax(1)


def at_exits(probs: torch.Tensor, exits: torch.Tensor) -> torch.Tensor:
    """Each sample's probabilities at its exit: probs (N, G+1, C), exits (N,) → (N, C)."""
    return probs[torch.arange(len(exits), device=probs.device), exits]


def exit_distribution(exits: torch.Tensor, count: int) -> list[float]:
    """The share of samples at each of ``count`` exits."""
    return torch.bincount(exits.cpu(), minlength=count).double().div(len(exits)).tolist()


@dataclasses.dataclass(frozen=True)
class FoldProtocol:
    """How a policy's exits are scored: the disjoint test ``folds`` (index arrays, :func:`metrics.folds`), ECE with
    ``ece_bins`` equal-mass bins of kind ``ece_binning`` (over the whole fold, or per batch of ``ece_batch`` > 0)
    and conformal sets at each α of ``alphas``."""

    folds: list
    alphas: list[float]
    ece_bins: int
    ece_batch: int
    ece_binning: str = "percentile"

    def summary(self, probs, labels, exits, costs: dict, val: dict, val_exit_probs=None) -> dict:
        """Accuracy, mean cost (both conventions), ECE and conformal sets per test fold, summarised (mean, sd,
        values). probs (N, C) at each sample's exit; ``val``: the validation samples' probs, labels and exits
        that calibrate the conformal q̂; ``val_exit_probs`` (N_val, G+1, C): every exit's (the gated variant's
        fallback)."""
        rows = []
        for fold in self.folds:
            f = torch.as_tensor(fold)
            accuracy = float((probs[f].argmax(1) == labels[f]).float().mean())
            row = {
                "acc": accuracy,
                # ×100, as the ECE: mean top-class probability minus accuracy (> 0: the exits' confidence is too high)
                "overconfidence": 100 * (float(probs[f].max(1).values.mean()) - accuracy),
                **{f"cost_{k}": cost.mean_cost(exits[f], v) for k, v in costs.items()},
                "ece": metrics.ece(probs[f], labels[f], self.ece_bins, self.ece_batch or None, self.ece_binning),
            }
            for alpha in self.alphas:
                sets = metrics.conformal(
                    val["probs"], val["labels"], val["exits"], probs[f], labels[f], exits[f], alpha, val_exit_probs
                )
                for variant, v in sets.items():
                    row[f"{variant}_size@{alpha:g}"] = v["size"]
                    row[f"{variant}_miscoverage@{alpha:g}"] = v["miscoverage"]
            rows.append(row)
        return {k: metrics.fold_summary([r[k] for r in rows]) for k in rows[0]}


def validation_summary(probs, labels, exits, costs: dict) -> dict:
    """Accuracy and mean multiply-adds per sample on validation samples: what a policy's operating point is chosen
    by without looking at the test set (``analysis.matched_level``)."""
    return {"acc": float((probs.argmax(1) == labels).float().mean()), "cost_macs": cost.mean_cost(exits, costs["macs"])}


def evaluate_gates(model: DynamicNet, logits: dict, labels: dict, costs: dict, protocol: FoldProtocol) -> dict:
    """JEI-DNN's gated exits on the validation and test sets (``logits``, ``labels``: dicts with "val" and "test"):
    the test folds' metrics (conformal q̂ from the validation samples' gated outputs), where the test samples
    exit, and each exit's accuracy on the samples it receives (None where it receives none)."""
    probs = {k: v.softmax(-1) for k, v in logits.items()}
    exits = {k: gate_exits(model, logits[k]) for k in logits}
    chosen = {k: at_exits(probs[k], exits[k]) for k in probs}
    val = {"probs": chosen["val"], "labels": labels["val"], "exits": exits["val"]}
    count = logits["test"].shape[1]
    test_exits, test_probs, y = exits["test"], probs["test"], labels["test"]
    return {
        "metrics": protocol.summary(chosen["test"], y, test_exits, costs, val, probs["val"]),
        "validation": validation_summary(chosen["val"], labels["val"], exits["val"], costs),
        "exit_distribution": exit_distribution(test_exits, count),
        "gate_spread": gate_spread(model, logits["test"]),
        "per_exit_gated_acc": [
            float((test_probs[test_exits == l, l].argmax(1) == y[test_exits == l]).float().mean())
            if (test_exits == l).any()
            else None
            for l in range(count)
        ],
    }


def evaluate_budgets(
    probs: dict, labels: dict, costs: dict, protocol: FoldProtocol, levels: int, divisor: float, seed: int
) -> list[dict]:
    """The baselines' policy at budget levels p = k/``divisor``, k = 1 … ``levels``: thresholds fitted on one
    random half of the validation samples (split by ``seed``), conformal q̂ from the other half; per level the test
    folds' metrics and where the test samples exit. ``probs``, ``labels``: dicts with "val" and "test"."""
    device = probs["val"].device
    n_val, count = len(labels["val"]), probs["test"].shape[1]
    half = torch.randperm(n_val, generator=torch.Generator().manual_seed(seed)).to(device)
    h1, h2 = half[: n_val // 2], half[n_val // 2 :]
    confidence = {k: v.max(-1).values for k, v in probs.items()}
    out = []
    for k in range(1, levels + 1):
        budget = k / divisor
        thresholds = budget_thresholds(confidence["val"][h1].cpu(), budget)
        exits = {s: threshold_exits(confidence[s], thresholds) for s in ("val", "test")}
        chosen = {s: at_exits(probs[s], exits[s]) for s in exits}
        val = {"probs": chosen["val"][h2], "labels": labels["val"][h2], "exits": exits["val"][h2]}
        summary = protocol.summary(chosen["test"], labels["test"], exits["test"], costs, val, probs["val"][h2])
        # the level's operating point on the half that did not fit its thresholds (the conformal half)
        held_out = validation_summary(val["probs"], val["labels"], val["exits"], costs)
        out.append(
            {
                "budget_p": budget,
                "metrics": summary,
                "validation": held_out,
                "exit_distribution": exit_distribution(exits["test"], count),
            }
        )
    return out
