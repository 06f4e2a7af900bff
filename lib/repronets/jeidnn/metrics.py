"""Accuracy, calibration and conformal prediction sets of exit predictions (docs/papers/jeidnn.md §3.1), and the
10 disjoint test folds the original averages over."""

from __future__ import annotations

import math

import numpy as np
import torch

FOLD_ORDERS = ("contiguous", "permuted")


def folds(n: int, count: int = 10, seed: int = 0, order: str = "contiguous") -> list[np.ndarray]:
    """``count`` disjoint folds of range(n): ``contiguous`` cuts the test set into consecutive blocks in its stored
    order, as the original's split_dataloader_in_n; ``permuted`` cuts a permutation drawn from ``seed`` (folds that
    do not inherit any ordering of the test files)."""
    if order not in FOLD_ORDERS:
        raise ValueError(f"fold order must be one of {FOLD_ORDERS}, got {order!r}")
    index = np.arange(n) if order == "contiguous" else np.random.default_rng(seed).permutation(n)
    return [f for f in np.array_split(index, count) if len(f)]


ECE_BINNINGS = ("percentile", "equal_count")


def _bin_ids(conf: np.ndarray, bins: int, binning: str) -> np.ndarray:
    """Each probability's bin. ``percentile``: the original's copy of scikit-learn's quantile calibration curve,
    edges at the 0, 1/bins, …, 100th percentiles and ``searchsorted(edges[1:-1], p)``, so tied probabilities share
    one bin however many there are (saturated ICs put most samples at p = 1.0 in the last bin). ``equal_count``:
    the sorted probabilities cut into ``bins`` groups of equal size, ties split across bins."""
    if binning == "percentile":
        edges = np.percentile(conf, np.linspace(0, 100, bins + 1))
        return np.searchsorted(edges[1:-1], conf)
    if binning == "equal_count":
        ids = np.empty(len(conf), dtype=np.int64)
        for b, chunk in enumerate(np.array_split(np.argsort(conf, kind="stable"), min(bins, len(conf)))):
            ids[chunk] = b
        return ids
    raise ValueError(f"ECE binning must be one of {ECE_BINNINGS}, got {binning!r}")


def ece(
    probs: torch.Tensor,
    labels: torch.Tensor,
    bins: int = 15,
    batch_size: int | None = None,
    binning: str = "percentile",
) -> float:
    """Expected calibration error ×100 of p_max against correctness with ``bins`` equal-mass bins
    (:func:`_bin_ids`): Σ_b |acc_b − conf_b|·n_b/N. With ``batch_size`` it is computed per consecutive batch and
    averaged weighted by batch size, as the original does for JEI-DNN (which inflates it on small batches)."""
    if batch_size:
        starts = range(0, len(labels), batch_size)
        parts = [ece(probs[i : i + batch_size], labels[i : i + batch_size], bins, binning=binning) for i in starts]
        sizes = [len(labels[i : i + batch_size]) for i in starts]
        return float(np.average(parts, weights=sizes))
    conf, pred = probs.max(1)
    correct = (pred == labels).double().cpu().numpy()
    conf = conf.double().cpu().numpy()
    ids = _bin_ids(conf, bins, binning)
    total = np.bincount(ids)
    seen = total > 0
    gap = np.abs(np.bincount(ids, weights=correct)[seen] - np.bincount(ids, weights=conf)[seen])
    return float(100 * gap.sum() / len(conf))


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
