"""Tables, figures and the written summary of the τ notebook, from stored runs.

Each figure function returns the figure and the runs it draws (for the figure's provenance record).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..report.plotting import mean_band, plt
from ..runs.results import RunResult
from . import reference
from .experiment import epochs_to

RELEASED_FIXED = "ResNet τ fixed (only τ0, as released)"


def curve_label(run: dict) -> str:
    """The figure's curve names. "ResNet τ fixed" is the ResNet with every τ frozen (fixed mode ``all``): that is the
    run the original figure's "ResNet τ fix" curve matches (paper profile: 0.962 against the figure's 0.963 on
    MNIST, 0.95 after 126 against ~121 epochs; claim tau.figure.fixed_resnet). The released code's "fixed τ"
    (mode ``first``, only τ0 frozen) learns about as fast as trainable τ and is shown under its own name."""
    arch = "ResNet" if run["architecture"] == "resnet" else "FracDNN"
    if run["tau_trainable"]:
        return f"{arch} τ variable"
    if arch == "ResNet" and run.get("fixed") == "first":
        return RELEASED_FIXED
    return f"{arch} τ fixed"


def is_plain(run: dict) -> bool:
    """A run of the figure's kind: no regulariser, no dependent τ, no pruning."""
    return not (run["l1"] or run["horizon"] or run["dependent_last"] or run["pruning"])


def summary(runs: list[RunResult], thresholds: list[float]) -> pd.DataFrame:
    """One row per run: its configuration, final accuracy, epochs to each threshold, blocks removed."""
    rows = []
    for r in runs:
        p, res = r.params, r.result
        row = {
            "architecture": p["architecture"],
            "dataset": p["dataset"],
            "T": p["T"],
            "curve": curve_label(p),
            "l1": p["l1"],
            "horizon": p["horizon"],
            "dependent_last": p["dependent_last"],
            "pruning": p["pruning"],
            "seed": p["seed"],
            "final_test_acc": res["final_test_acc"],
            "best_test_acc": max(res["test_accs"]),
            "blocks_removed": len(res["pruning_events"]),
            "parameters": res["parameters"],
            "train_s": res["wall_time_train_s"],
        }
        for t in thresholds:
            row[f"epochs_to_{t:g}"] = epochs_to(res["test_accs"], t)
        rows.append(row)
    return pd.DataFrame(rows)


def grid_table(frame: pd.DataFrame, thresholds: list[float]) -> pd.DataFrame:
    """The summary averaged over seeds (epochs-to-threshold: mean over the seeds that reached it)."""
    keys = ["dataset", "architecture", "curve", "T", "l1", "horizon", "dependent_last", "pruning"]
    agg = {"final_test_acc": ["mean", "std"], "blocks_removed": "mean", "seed": "count"}
    agg.update({f"epochs_to_{t:g}": "mean" for t in thresholds})
    table = frame.groupby(keys, dropna=False).agg(agg)
    table.columns = ["final acc", "sd", "blocks removed", "seeds"] + [f"epochs to {t:g}" for t in thresholds]
    return table.reset_index()


def has_reference(datasets: list[str]) -> bool:
    """Whether the original figure shows any of these datasets (then the speedup table has its numbers)."""
    return any(d in reference.DATASETS for d in datasets)


def speedup_table(frame: pd.DataFrame, thresholds: list[float], with_reference: bool) -> pd.DataFrame:
    """Epochs to each threshold for the figure's curves, per T, and the original's numbers where known."""
    plain = frame[~frame[["l1", "horizon"]].any(axis=1) & ~frame.dependent_last & ~frame.pruning]
    rows = []
    for (dataset, T, curve), g in plain.groupby(["dataset", "T", "curve"]):
        row = {"dataset": dataset, "T": T, "curve": curve, "final acc": g.final_test_acc.mean()}
        published = reference.FIGURE.get((dataset, curve))
        if with_reference:
            row["final acc (original)"] = published.final_accuracy if published else np.nan
        for t in thresholds:
            reached = g[f"epochs_to_{t:g}"].dropna()
            row[f"epochs to {t:g}"] = reached.mean() if len(reached) == len(g) else np.nan
            if with_reference:
                row[f"epochs to {t:g} (original)"] = published.epochs_to.get(t, np.nan) if published else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def speedup_summary(speed: pd.DataFrame, thresholds: list[float], epochs: int) -> str:
    """The speedup table in words, per (dataset, T): every curve's final accuracy, then, at the highest threshold
    that some curve reached, when each architecture's τ-variable curve reached it and how much later τ fixed did."""
    lines = []
    for (dataset, T), g in speed.groupby(["dataset", "T"]):
        acc = g.set_index("curve")["final acc"]
        reached = [thr for thr in thresholds if not g[f"epochs to {thr:g}"].isna().all()]
        t = max(reached) if reached else None
        parts = [f"{c}: {acc[c]:.3f}" for c in acc.index]
        lines.append(f"{dataset}, T = {T:g}: final accuracy " + ", ".join(parts))
        if t is not None:
            e = g.set_index("curve")[f"epochs to {t:g}"]
            for arch in ("ResNet", "FracDNN"):
                var, fix = e.get(f"{arch} τ variable"), e.get(f"{arch} τ fixed")
                if var is not None and pd.notna(var):
                    lines.append(
                        f"  {arch}: τ variable reaches {t:g} after {var:.0f} epochs; τ fixed "
                        + (
                            f"after {fix:.0f} ({fix / max(var, 1):.1f}× later)"
                            if fix is not None and pd.notna(fix)
                            else f"not within {epochs} epochs"
                        )
                    )
    return "\n".join(lines)


def pruning_summary(frame: pd.DataFrame) -> str:
    """How many pruning runs there are and how many blocks each removed."""
    pruned = frame[frame.pruning]
    return f"{len(pruned)} pruning run(s); blocks removed per run: {pruned.blocks_removed.tolist()}"


def accuracy_curves(runs: list[RunResult], datasets: list[str], T_values: list[float]):
    """Test accuracy against epoch, one panel per (T, dataset), bands of ±1 sd over seeds, the original's colours."""
    shown = [r for r in runs if is_plain(r.params)]
    curves = pd.DataFrame(
        [
            {
                "epoch": epoch,
                "test_acc": acc,
                "dataset": r.params["dataset"],
                "T": r.params["T"],
                "seed": r.params["seed"],
                "curve": curve_label(r.params),
            }
            for r in shown
            for epoch, acc in enumerate(r.result["test_accs"])
        ]
    )
    fig, axes = plt.subplots(
        len(T_values),
        len(datasets),
        figsize=(4.6 * len(datasets), 3.0 * len(T_values) + 0.6),
        squeeze=False,
        sharey=True,
    )
    order = [c for c in reference.COLORS if c in set(curves.curve)]  # the original's legend order
    for i, T in enumerate(T_values):
        for j, dataset in enumerate(datasets):
            ax = axes[i][j]
            sub = curves[(curves["T"] == T) & (curves.dataset == dataset)]
            mean_band(ax, sub, x="epoch", y="test_acc", hue="curve", hue_order=order, palette=reference.COLORS)
            handles, labels = ax.get_legend_handles_labels()
            ax.get_legend().remove()
            letter = chr(97 + i * len(datasets) + j)
            ax.set(title=f"({letter}) {dataset}, T = {T:g}", xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
    fig.legend(handles, labels, loc="outside lower center", ncol=len(order), fontsize=8)
    return fig, shown


def _first_seed(runs: list[RunResult], select, key) -> dict:
    """For each ``key(params)`` of the runs that ``select(params)``, the run with the smallest seed."""
    chosen = {}
    for r in sorted(runs, key=lambda r: r.params["seed"]):
        if select(r.params):
            chosen.setdefault(key(r.params), r)
    return chosen


def plot_taus(ax, r: RunResult) -> int:
    """Every τ of a run after every step, against epochs; returns the number of τ."""
    tracking = r.tensors()["tau_tracking"].numpy()
    steps_per_epoch = math.ceil(r.result["train_samples"] / r.result["batch_size"])
    epochs = np.arange(1, len(tracking) + 1) / steps_per_epoch
    for k in range(tracking.shape[1]):
        ax.plot(epochs, tracking[:, k], lw=1.2, label=f"τ{k}")
    return tracking.shape[1]


def tau_trajectories(runs: list[RunResult], T: float):
    """Every τ over training for the variable-τ runs of the figure (first seed), one panel per (model, dataset)."""
    chosen = _first_seed(
        runs, lambda p: is_plain(p) and p["tau_trainable"] and p["T"] == T, lambda p: (p["architecture"], p["dataset"])
    )
    keys = sorted(chosen)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        n_taus = plot_taus(ax, chosen[key])
        ax.axhline(T / n_taus, color="grey", lw=0.8, ls=":")
        ax.set(title=f"{curve_label(chosen[key].params)}, {key[1]}", xlabel="epoch", ylabel="τ")
    axes[0][-1].legend(fontsize=7, ncol=2)
    seed = chosen[keys[-1]].params["seed"]
    fig.suptitle(f"Trained step sizes (T = {T:g}; dotted: the initial T/{n_taus}; seed {seed})", fontsize=10)
    return fig, [chosen[key] for key in keys]


def pruning_plot(runs: list[RunResult]):
    """τ over epochs in the pruning runs (first seed), with a dashed line where each block was removed
    (label −τk: block k, numbered in the unpruned network, is gone)."""
    chosen = _first_seed(runs, lambda p: p["pruning"], lambda p: (p["dataset"], p["T"], p["l1"], p["horizon"]))
    keys = sorted(chosen)
    if not keys:
        return None, []
    cols = min(len(keys), 4)
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.1 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        r = chosen[key]
        plot_taus(ax, r)
        top = ax.get_ylim()[1]
        for i, e in enumerate(r.result["pruning_events"]):
            ax.axvline(e["epoch"], color="black", ls="--", lw=0.8)
            # Removals often come a few epochs apart: stagger the labels so they stay readable.
            ax.annotate(
                f"−τ{e['block']}",
                (e["epoch"], top * (0.97 - 0.09 * (i % 4))),
                ha="left",
                va="top",
                fontsize=7,
                xytext=(2, 0),
                textcoords="offset points",
            )
        dataset, T, l1, horizon = key
        ax.set(title=f"{dataset}, T = {T:g}, L1 {l1:g}, horizon {horizon:g}", xlabel="epoch", ylabel="τ")
    for ax in list(axes.flat)[len(keys) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=7, ncol=2)
    return fig, [chosen[key] for key in keys]


# ---------------------------------------------------------------- the claims ledger (claims/01_tau_speedup.yaml)

# The accuracy each speedup claim is read at (the original figure's 0.95 / 0.85; 0.8 on the digits, where the quick
# profile's ResNet τ variable ends near 0.92 at T = 1), for the (architecture, dataset) pairs the claim file states.
SPEEDUP_THRESHOLDS = {
    ("resnet", "mnist"): 0.95,
    ("resnet", "fashion_mnist"): 0.85,
    ("fracdnn", "mnist"): 0.95,
    ("fracdnn", "fashion_mnist"): 0.85,
    ("resnet", "digits"): 0.8,
}
# The figure's curves whose final accuracy the claim file states: claim id stem -> (architecture, trainable).
# "ResNet τ fixed" is measured with every τ frozen (fixed mode "all"), as the claim file's measure says.
FINAL_CLAIMS = {
    "tau.final.resnet_variable": ("resnet", True),
    "tau.final.fracdnn_variable": ("fracdnn", True),
    "tau.final.fracdnn_fixed": ("fracdnn", False),
    "tau.figure.fixed_resnet": ("resnet", False),
}
FINAL_DATASETS = ("mnist", "fashion_mnist")


def _figure_run(p: dict, architecture: str, trainable: bool) -> bool:
    """A run of the figure's curve: plain, this architecture, τ trainable or fixed (the ResNet's: every τ)."""
    return (
        is_plain(p)
        and p["architecture"] == architecture
        and p["tau_trainable"] == trainable
        and (trainable or architecture != "resnet" or p["fixed"] == "all")
    )


def _released_fixed_resnet(p: dict) -> bool:
    """The released code's "fixed τ" ResNet (only τ0 frozen), plain."""
    return is_plain(p) and p["architecture"] == "resnet" and not p["tau_trainable"] and p["fixed"] == "first"


def _is_pruning_companion(p: dict) -> bool:
    """The figure grid's pruning run (ResNet, trainable τ, L1, adaptive pruning, no horizon term, no dependent τ);
    the original grid has it too, beside its variants with the horizon term."""
    return (
        p["architecture"] == "resnet"
        and p["tau_trainable"]
        and p["l1"] > 0
        and p["pruning"]
        and not p["horizon"]
        and not p["dependent_last"]
    )


def training_compute_ratio(r: RunResult) -> float:
    """Multiply-adds of a run's training forward passes summed over its epochs, over those of the same network never
    pruned: what pruning saved of the training compute. A block removed after epoch e (1-based, the event's epoch)
    took part in epochs 1..e only. Counted, not timed: runs trained together as one batch (``batch_runs``) share one
    wall time, and a count does not change with the machine. NaN for runs stored before the counts were recorded."""
    events = r.result["pruning_events"]
    final = r.result.get("forward_multiply_adds")
    if final is None or any("multiply_adds" not in e for e in events):
        return float("nan")
    epochs = r.params["epochs"]
    full = final + sum(e["multiply_adds"] for e in events)
    saved = sum((epochs - e["epoch"]) * e["multiply_adds"] for e in events)
    return (epochs * full - saved) / (epochs * full)


def _by_seed(runs: list[RunResult], select, *args) -> dict[tuple, RunResult]:
    """The runs for which ``select(params, *args)`` holds, keyed by (dataset, T, seed): the pairing unit of every
    paired claim. Two runs under one key would make a claim's value ambiguous: an error."""
    chosen = {}
    for r in runs:
        if select(r.params, *args):
            key = (r.params["dataset"], r.params["T"], r.params["seed"])
            if key in chosen:
                raise ValueError(f"two runs for {key} where a claim expects one: {chosen[key].key} and {r.key}")
            chosen[key] = r
    return chosen


def _epochs_or_never(r: RunResult, threshold: float) -> int:
    """Epochs to ``threshold``; a run that never reaches it counts as its epochs + 1 (the claim file's rule)."""
    reached = epochs_to(r.result["test_accs"], threshold)
    return r.params["epochs"] + 1 if reached is None else reached


def extra_parameters(architecture: str) -> int:
    """Trainable parameters that trainable τ add to the README figure's network (MNIST: 784 inputs, width 100, five
    residual blocks, 10 classes; τ of every layer trainable against every τ fixed), counted on the built models."""
    from ..core.counting import count_parameters
    from .models import ARCHITECTURES

    fixed = {"fixed": "all"} if architecture == "resnet" else {}
    sizes = {"width": 100, "blocks": 5, "T": 1.0}
    trainable = ARCHITECTURES.create(architecture, 784, 10, **sizes, tau_trainable=True)
    frozen = ARCHITECTURES.create(architecture, 784, 10, **sizes, tau_trainable=False, **fixed)
    return count_parameters(trainable, trainable_only=True) - count_parameters(frozen, trainable_only=True)


def horizon_effects(runs: list[RunResult]) -> list[float]:
    """|Στ − T| at the end of training without the time-horizon term minus with it, one value per pair of runs that
    differ in the term alone (trainable τ, no dependent last τ: the original grid pairs each such run so), ordered by
    seed, dataset and T. Στ over the τ the trained network holds (a pruned block's τ is gone with it)."""
    pairs: dict[tuple, dict[bool, RunResult]] = {}
    for r in runs:
        q = r.params
        if q["tau_trainable"] and not q["dependent_last"]:
            rest = tuple(sorted((k, repr(v)) for k, v in q.items() if k != "horizon"))
            pairs.setdefault(rest, {})[q["horizon"] > 0] = r
    distance = lambda r: abs(sum(r.result["final_taus"]) - r.params["T"])  # noqa: E731
    both = sorted(
        (pair for pair in pairs.values() if len(pair) == 2),
        key=lambda pair: tuple(pair[True].params[k] for k in ("seed", "dataset", "T")),
    )
    return [distance(pair[False]) - distance(pair[True]) for pair in both]


def claim_values(runs: list[RunResult], T: float) -> dict[str, list[float]]:
    """The measured quantity of every claim of ``claims/01_tau_speedup.yaml`` that these runs can measure: one value
    per run, or per pair of runs where the claim is paired, ordered by seed, dataset and T. The figure's claims
    (speedups, final accuracies) are read at time horizon ``T``; the pruning claims at every T the pruning runs have
    (the figure grid runs its pruning companion at each T), paired with the plain trainable ResNet of the same
    dataset, T and seed. Claims without runs are absent."""
    runs = sorted(runs, key=lambda r: (r.params["seed"], r.params["dataset"], r.params["T"]))
    at_T = [r for r in runs if r.params["T"] == T]
    out: dict[str, list[float]] = {
        "tau.parameters.six_extra": [float(extra_parameters(a)) for a in ("resnet", "fracdnn")]
    }
    for (architecture, dataset), threshold in SPEEDUP_THRESHOLDS.items():
        on = [r for r in at_T if r.params["dataset"] == dataset]
        variable = _by_seed(on, _figure_run, architecture, True)
        fixed = _by_seed(on, _figure_run, architecture, False)
        pairs = [k for k in variable if k in fixed]
        if pairs:
            out[f"tau.speedup.{architecture}.{dataset}"] = [
                float(_epochs_or_never(fixed[k], threshold) - _epochs_or_never(variable[k], threshold)) for k in pairs
            ]
    for stem, (architecture, trainable) in FINAL_CLAIMS.items():
        for dataset in FINAL_DATASETS:
            on = [r for r in at_T if r.params["dataset"] == dataset]
            chosen = _by_seed(on, _figure_run, architecture, trainable)
            if chosen:
                out[f"{stem}.{dataset}"] = [r.result["final_test_acc"] for r in chosen.values()]
    for dataset in FINAL_DATASETS:
        released = _by_seed([r for r in at_T if r.params["dataset"] == dataset], _released_fixed_resnet)
        if released:
            threshold = SPEEDUP_THRESHOLDS[("resnet", dataset)]
            out[f"tau.figure.released_fixed.{dataset}"] = [
                float(_epochs_or_never(r, threshold)) for r in released.values()
            ]
    pruned = _by_seed(runs, _is_pruning_companion)
    if pruned:
        plain = _by_seed(runs, _figure_run, "resnet", True)
        out["tau.pruning.removes_blocks"] = [float(len(r.result["pruning_events"])) for r in pruned.values()]
        ratios = [v for v in map(training_compute_ratio, pruned.values()) if np.isfinite(v)]
        if ratios:
            out["tau.pruning.saves_training_compute"] = ratios
        pairs = [k for k in pruned if k in plain]
        if pairs:
            out["tau.pruning.keeps_accuracy"] = [
                pruned[k].result["final_test_acc"] - plain[k].result["final_test_acc"] for k in pairs
            ]
    horizon = horizon_effects(runs)
    if horizon:
        out["tau.horizon.keeps_sum_near_T"] = horizon
    return out
