"""The original's published numbers (docs/papers/jeidnn.md §3.4): its stored test results per architecture, dataset
and λ, and the cumulative exit costs of T2T-ViT-7 in its counter's convention, which
:func:`repronets.jeidnn.exit_costs` reproduces."""

from __future__ import annotations

from typing import NamedTuple


class StoredResult(NamedTuple):
    """One stored JEI-DNN run of the original: test results as the mean over 10 folds."""

    tradeoff: float  # λ (ce_ic_tradeoff)
    acc: float  # accuracy, %
    acc_sd: float | None  # its sd over the folds, % (None: not stored)
    cost: float  # mean cost per sample, % of the counter's full cost
    ece: float  # ECE ×100


# Per architecture, then dataset. T2T-ViT-14's rows (CIFAR-10 without a fold sd) are those the original's results
# notebook stores for it; the λ are the stored runs'.
RESULTS: dict[str, dict[str, tuple[StoredResult, ...]]] = {
    "t2t_vit_7": {
        "cifar10": (
            StoredResult(0.01, 94.33, 0.26, 81.0, 5.1),
            StoredResult(0.1, 93.90, 0.28, 75.3, 7.4),
            StoredResult(0.5, 90.49, 0.21, 68.9, 11.5),
            StoredResult(1.0, 79.98, 0.26, 59.8, 17.0),
            StoredResult(3.0, 51.62, 0.37, 45.3, 19.2),
        ),
        "cifar100": (
            StoredResult(0.01, 75.36, None, 80.2, 10.8),
            StoredResult(0.1, 76.72, None, 81.2, 10.5),
            StoredResult(0.5, 76.61, None, 79.4, 11.8),
        ),
        "cifar100_lt": (StoredResult(0.01, 87.55, 3.6, 84.4, 8.6), StoredResult(0.9, 85.37, 4.1, 75.9, 12.7)),
        "svhn": (
            StoredResult(0.05, 91.58, 0.23, 64.6, 5.5),
            StoredResult(0.3, 91.23, 0.25, 55.9, 8.5),
            StoredResult(0.9, 88.58, 0.22, 45.4, 17.3),
            StoredResult(2.0, 77.11, 0.33, 33.1, 25.9),
        ),
    },
    "t2t_vit_14": {
        "cifar10": (
            StoredResult(0.01, 93.48, None, 53.9, 6.8),
            StoredResult(0.1, 87.34, None, 41.5, 11.8),
            StoredResult(0.5, 71.44, None, 29.1, 19.1),
        ),
        "cifar100": (
            StoredResult(0.01, 88.06, 0.44, 74.5, 6.8),
            StoredResult(1.5, 81.44, 0.28, 57.1, 15.8),
            StoredResult(3.0, 71.43, 0.37, 48.6, 24.2),
        ),
    },
}


class StoredCosts(NamedTuple):
    """T2T-ViT-7's cumulative cost per sample of exits 0 … 6 (the last: the head) in the original counter's
    convention, ×10⁶ operations, as the original's counter measured them (docs/papers/jeidnn.md §3.1)."""

    image_size: int
    num_classes: int
    cumulative: tuple[float, ...]  # ×10⁶; empty where not stored
    full: float  # ×10⁶, the head's


COSTS: dict[str, StoredCosts] = {
    "cifar10": StoredCosts(224, 10, (5.534, 6.843, 8.153, 9.463, 10.772, 12.082, 13.518), 13.518),
    "cifar100": StoredCosts(224, 100, (5.558, 6.891, 8.225, 9.558, 10.892, 12.226, 13.685), 13.685),
    "svhn": StoredCosts(32, 10, (0.940, 1.487, 2.035, 2.583, 3.131, 3.679, 4.230), 4.23),
}
