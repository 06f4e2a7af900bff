"""The τ paper's experiments: the original grid, one run, results in the original's JSON format.

Run without Jupyter: ``python -m repronets.tau --profile paper [--export DIR]``.

``grid: original`` is main.py's filtered product (docs/papers/tau.md §2): per (dataset, T) the ResNet gets 8
trainable runs (L1 × time horizon × pruning), 2 fixed (± pruning) and 1 with a dependent last τ; the FracDNN
4 + 1 + 1; with both datasets and T ∈ {1, 6} that is 44 + 24 = 68 runs per seed and fixed mode. ``grid: figure``
is the README figure's subset (τ trainable vs fixed, both architectures, no regulariser) plus one pruning
configuration (ResNet, trainable τ, L1, adaptive pruning), so the pruning plot has something to show.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from pathlib import Path

from ..core import data, fileio
from ..runs.params import FIRST, OptimizerParams, param
from ..runs.results import RunResult, RunStore
from . import grouped
from .models import ARCHITECTURES, FIXED_MODES, MEMORY_MODES
from .training import PRUNING_RULES
from .trial import train_one

GRIDS = ("figure", "original")
# Part of every run's key: bump it when a change alters these runs' numbers.
CODE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Params(OptimizerParams):
    datasets: list[str] = param(choices=data.DATASETS)
    train_limit: int = param(ge=0, doc="stratified subset of the training split; 0 = all of it", dry=200)
    grid: str = param(choices=GRIDS, doc="figure: the README figure's runs; original: main.py's 68-run grid")
    architectures: list[str] = param(choices=ARCHITECTURES.names())
    T_values: list[float] = param(gt=0.0, doc="time horizons; every τ starts at T/(blocks+1)")
    figure_T: float = param(gt=0.0, doc="the T drawn in the main figure (the original does not say which)")
    fixed_modes: list[str] = param(
        choices=FIXED_MODES,
        doc="what a ResNet 'τ fixed' run freezes: first (as released) and/or all (corrected; the figure's curve)",
    )
    pruning_rule: str = param(choices=PRUNING_RULES, doc="smallest_share (corrected) or signed_min (faithful)")
    prune_crit: float = param(gt=0.0, lt=1.0, doc="prune when a τ's share of Σ|τ| falls below this")
    memory: str = param(choices=MEMORY_MODES, doc="FracDNN memory coefficients: detached (faithful) or autograd")
    gamma: float = param(gt=0.0, le=1.0, doc="FracDNN order γ")
    eps: float = param(gt=0.0, doc="FracDNN lower clamp of τ before every forward pass")
    l1: float = param(ge=0.0, doc="λ of λ·Σ|τ| where the grid turns L1 on")
    horizon: float = param(ge=0.0, doc="c of c·(Στ−T)² where the grid turns the time-horizon term on")
    width: int = param(ge=1, doc="internal dimension")
    blocks: int = param(ge=1, doc="residual τ-blocks after the input layer")
    epochs: int = param(ge=1, dry=1)
    batch_size: int = param(ge=1)
    seeds: list[int] = param(ge=0, dry=FIRST)
    thresholds: list[float] = param(gt=0.0, lt=1.0, doc="accuracies for the epochs-to-threshold table")
    batch_runs: bool = param(doc="train runs that share an architecture and dataset as one batch (SGD only)")

    def __post_init__(self):
        if self.figure_T not in self.T_values:
            raise ValueError(f"figure_T {self.figure_T} must be one of T_values {self.T_values}")


def run_spec(
    p: Params,
    architecture: str,
    dataset: str,
    seed: int,
    T: float,
    trainable: bool,
    fixed: str | None = None,
    l1: bool = False,
    horizon: bool = False,
    dependent: bool = False,
    pruning: bool = False,
) -> dict:
    """One run's key: everything that determines its numbers (not where the data lives, nor the device)."""
    run = {
        "code_version": CODE_VERSION,
        "architecture": architecture,
        "dataset": dataset,
        "seed": seed,
        "T": T,
        "tau_trainable": trainable,
        "fixed": fixed if (architecture == "resnet" and not trainable) else None,
        "l1": p.l1 if l1 else 0.0,
        "horizon": p.horizon if horizon else 0.0,
        "l2": 0.0,
        "dependent_last": dependent,
        "pruning": pruning,
        "pruning_rule": p.pruning_rule if pruning else None,
        "prune_crit": p.prune_crit if pruning else None,
        "width": p.width,
        "blocks": p.blocks,
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "optimizer": p.optimizer,
        "lr": p.lr,
        "momentum": p.momentum,
        "weight_decay": p.weight_decay,
        "train_limit": p.train_limit,
    }
    if architecture == "fracdnn":
        run.update(memory=p.memory, gamma=p.gamma, eps=p.eps)
    return run


def is_of_interest(trainable: bool, l1: bool, horizon: bool, dependent: bool, pruning: bool) -> bool:
    """main.py's filter: a dependent τ only alone with trainable τ; fixed τ without regularisers."""
    if dependent and (not trainable or l1 or horizon or pruning):
        return False
    if not trainable and (l1 or horizon):
        return False
    return True


def grid(p: Params) -> list[dict]:
    """The runs of the profile, in the original's order (ResNet first; Fashion-MNIST before MNIST)."""
    order = {"fashion_mnist": 0, "mnist": 1}
    datasets = sorted(p.datasets, key=lambda d: order.get(d, 2))
    runs = []
    for arch, dataset in itertools.product(p.architectures, datasets):
        if p.grid == "figure":
            configs = [dict(trainable=t) for t in (True, False)]
            if arch == "resnet":  # the pruning companion: L1 drives τ towards 0, pruning removes blocks
                configs.append(dict(trainable=True, l1=True, pruning=True))
        else:
            flags = itertools.product((True, False), repeat=5)
            configs = [
                dict(trainable=t, l1=l1, horizon=h, dependent=d, pruning=pr)
                for t, l1, h, d, pr in flags
                if is_of_interest(t, l1, h, d, pr) and not (arch == "fracdnn" and pr)
            ]
        for config, T, seed in itertools.product(configs, p.T_values, p.seeds):
            fixed_modes = p.fixed_modes if (arch == "resnet" and not config["trainable"]) else [None]
            for fixed in fixed_modes:
                runs.append(run_spec(p, arch, dataset, seed, T, fixed=fixed, **config))
    return runs


def run(p: Params, store: RunStore | None = None) -> list[RunResult]:
    """The grid's runs; with ``batch_runs`` the missing runs that can share a batch (:func:`grouped.group_key`) are
    trained together, each stored under its own key as if it had run alone."""
    store = store or RunStore()
    together = {}
    if p.batch_runs:
        together = dict(
            group=grouped.group_key, fn_group=functools.partial(grouped.train_members, p), max_group=grouped.MAX_MEMBERS
        )
    return store.sweep("tau", grid(p), functools.partial(train_one, p), device=p.device, **together)


# ---------------------------------------------------------------- the original's result files


def original_filename(run: dict) -> str:
    """The original's path, e.g. resnet/mnist/tau_trainable__l1_reg_for_taus_None__..._seed_0.json."""
    arch = "resnet" if run["architecture"] == "resnet" else "frac_dnn"
    dataset = {"fashion_mnist": "fmnist"}.get(run["dataset"], run["dataset"])
    none_or = lambda v: "None" if not v else f"{v:g}"  # noqa: E731
    T = f"{run['T']:g}"
    parts = [
        "tau_trainable" if run["tau_trainable"] else "tau_not_trainable",
        f"l1_reg_for_taus_{none_or(run['l1'])}",
        f"tau_l2_factor_{none_or(run['horizon'])}",
    ]
    if arch == "resnet":
        parts.append(f"adaptive_pruning_{run['pruning']}")
    parts += [f"T_{T}", f"dependent_tau_{run['dependent_last']}"]
    if run["fixed"] == "all":
        parts.append("fixed_all")  # ours: the corrected "fixed" mode, absent from the original grid
    return f"{arch}/{dataset}/{'__'.join(parts)}__seed_{run['seed']}.json"


# The keys of the original's JSON file of a run: its per-step lists (kept as tensors in our store), then the rest
# (in our stored result). Beside them, ours: "provenance".
ORIGINAL_STEP_KEYS = ("losses", "clean_losses", "tau_tracking")
ORIGINAL_RESULT_KEYS = (
    "test_losses",
    "test_accs",
    "lr",
    "n_epochs",
    "batch_size",
    "tau_is_trainable",
    "adaptive_pruning",
    "dependent_last_tau",
    "l1_reg",
    "l2_reg",
    "tau_sum_factor",
    "T",
    "internal_dimension",
    "number_of_tau_blocks",
)


def original_record(r: RunResult) -> dict:
    """A run in the original's JSON schema (per-step lists included), plus our provenance."""
    t = r.tensors()
    tracking = [[v for v in row if not math.isnan(v)] for row in t["tau_tracking"].tolist()]
    record = {k: r.result[k] for k in ORIGINAL_RESULT_KEYS}
    record.update(
        losses=t["losses"].tolist(),
        clean_losses=t["clean_losses"].tolist(),
        tau_tracking=tracking,
        provenance={"run_key": r.key, "params": r.params, **r.meta},
    )
    return record


def export(runs: list[RunResult], folder: str | Path) -> list[Path]:
    return [fileio.write_json(Path(folder) / original_filename(r.params), original_record(r)) for r in runs]


def epochs_to(accuracies: list[float], threshold: float) -> int | None:
    """The first epoch whose test accuracy reaches ``threshold`` (epoch 0 = before training), else None."""
    return next((epoch for epoch, acc in enumerate(accuracies) if acc >= threshold), None)
