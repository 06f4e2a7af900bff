"""Accuracy, calibration and conformal prediction sets of exit predictions (docs/papers/jeidnn.md §3.1), and the
10 disjoint test folds the original averages over."""

from __future__ import annotations

import math

import numpy as np
import torch


def folds(n: int, count: int = 10, seed: int = 0) -> list[np.ndarray]:
    """``count`` disjoint folds of a seeded permutation of range(n). A departure: the original's
    split_dataloader_in_n cuts the test set into contiguous folds in its natural order (to be offered as an option
    with issue #14's departures)."""
    order = np.random.default_rng(seed).permutation(n)
    return [f for f in np.array_split(order, count) if len(f)]


def ece(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15, batch_size: int | None = None) -> float:
    """Expected calibration error ×100 of p_max against correctness with ``bins`` equal-mass (quantile) bins:
    Σ_b |acc_b − conf_b|·n_b/N. With ``batch_size`` it is computed per consecutive batch and averaged, as the
    original does for JEI-DNN (which inflates it on small batches). Departures from the original, for issue #14:
    tied probabilities are spread over equal-count bins here (the original's percentile edges put ties in one
    bin), and the batches are averaged unweighted (the original weights them by size)."""
    if batch_size:
        parts = [
            ece(probs[i : i + batch_size], labels[i : i + batch_size], bins) for i in range(0, len(labels), batch_size)
        ]
        return float(np.mean(parts))
    conf, pred = probs.max(1)
    correct = (pred == labels).double().cpu().numpy()
    conf = conf.double().cpu().numpy()
    order = np.argsort(conf, kind="stable")
    total = 0.0
    for chunk in np.array_split(order, min(bins, len(order))):
        if len(chunk):
            total += abs(correct[chunk].mean() - conf[chunk].mean()) * len(chunk)
    return 100 * total / len(conf)


def conformal_quantile(scores: torch.Tensor, alpha: float) -> float:
    """q̂: the ⌈(n+1)(1−α)⌉/n empirical quantile ("higher") of the non-conformity scores 1 − p_y."""
    n = len(scores)
    if n == 0:
        return 1.0
    level = min(1.0, math.ceil((n + 1) * (1 - alpha)) / n)
    return float(np.quantile(scores.double().cpu().numpy(), level, method="higher"))


def prediction_sets(probs: torch.Tensor, qhat: torch.Tensor | float) -> torch.Tensor:
    """{y : p_y ≥ 1 − q̂} as a boolean (N, C) mask; q̂ per sample or one value."""
    qhat = torch.as_tensor(qhat, dtype=probs.dtype, device=probs.device)
    return probs >= 1 - (qhat[:, None] if qhat.ndim else qhat)


def _scores(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Non-conformity scores 1 − p_y."""
    return 1 - probs.gather(1, labels[:, None])[:, 0]


def _size_and_miscoverage(sets: torch.Tensor, labels: torch.Tensor) -> dict:
    covered = sets.gather(1, labels[:, None])[:, 0]
    return {"size": float(sets.sum(1).double().mean()), "miscoverage": float(1 - covered.double().mean())}


def conformal(
    val_probs,
    val_labels,
    val_exits,
    test_probs,
    test_labels,
    test_exits,
    alpha: float,
    val_exit_probs=None,
    min_samples: int = 20,
) -> dict:
    """Set size and miscoverage on the test samples for the two variants the original reports:
    ``general`` (one q̂ over all gated validation outputs) and ``gated`` (q̂ per exit from the validation samples
    that exited there, falling back to that exit's classifier over all validation samples when ≤ ``min_samples``
    exited there; ``val_exit_probs`` (N, G+1, C) gives those)."""
    scores = _scores(val_probs, val_labels)
    out = {
        "general": _size_and_miscoverage(prediction_sets(test_probs, conformal_quantile(scores, alpha)), test_labels)
    }
    exits = int(max(val_exits.max(), test_exits.max())) + 1
    q = torch.empty(exits, dtype=test_probs.dtype)
    for l in range(exits):
        mine = val_exits == l
        if int(mine.sum()) > min_samples or val_exit_probs is None:
            q[l] = conformal_quantile(scores[mine], alpha)
        else:
            q[l] = conformal_quantile(_scores(val_exit_probs[:, l], val_labels), alpha)
    out["gated"] = _size_and_miscoverage(
        prediction_sets(test_probs, q[test_exits.cpu()].to(test_probs.device)), test_labels
    )
    return out


def fold_summary(values: list[float]) -> dict:
    array = np.asarray(values, dtype=float)
    return {
        "mean": float(array.mean()),
        "sd": float(array.std(ddof=1)) if len(array) > 1 else 0.0,
        "folds": array.tolist(),
    }
