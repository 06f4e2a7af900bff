"""Notebook 00's tables and figure, from the stored baseline runs."""

from __future__ import annotations

import pandas as pd

from ..runs.results import RunResult, long_frame
from .experiment import Params, describe


def dataset_cards(p: Params) -> pd.DataFrame:
    """One :func:`describe` row per dataset of the profile."""
    return pd.DataFrame([describe(p, name) for name in p.datasets])


def learning_curves(runs: list[RunResult], datasets: list[str]):
    """Test accuracy against epoch, one panel per dataset, bands of ±1 sd over seeds."""
    from ..report.plotting import mean_band, plt  # matplotlib only where a figure is drawn, not for the command line

    curves = long_frame(runs, "test_acc", param_keys=["dataset", "model", "seed"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.2 * len(datasets), 3.2), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], datasets):
        mean_band(ax, curves[curves.dataset == name], x="epoch", y="test_acc", hue="model")
        ax.set(title=name, xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    return fig


def accuracy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model), from :meth:`RunStore.frame`'s rows: parameters, seeds, final test accuracy (mean and
    standard deviation over seeds)."""
    return (
        frame.groupby(["dataset", "model"])
        .agg(
            parameters=("parameters", "first"),
            seeds=("seed", "count"),
            test_acc_mean=("final_test_acc", "mean"),
            test_acc_sd=("final_test_acc", "std"),
        )
        .reset_index()
    )


def timing_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): the mean wall time of a run, a measurement of the machine (an output of its own)."""
    return (
        frame.groupby(["dataset", "model"])
        .agg(seeds=("seed", "count"), seconds_per_run=("wall_time_s", "mean"))
        .reset_index()
    )


def summary_lines(table: pd.DataFrame) -> str:
    """Per dataset of :func:`accuracy_table`: the best baseline, and every baseline's accuracy ± sd (0 for one seed)."""
    lines = []
    for name, group in table.groupby("dataset"):
        best = group.sort_values("test_acc_mean").iloc[-1]
        gaps = ", ".join(
            f"{r.model} {r.test_acc_mean:.3f} ± {0 if pd.isna(r.test_acc_sd) else r.test_acc_sd:.3f}"
            for r in group.itertuples()
        )
        lines.append(f"{name}: best baseline {best.model} ({best.test_acc_mean:.3f}); all: {gaps}")
    return "\n".join(lines)
