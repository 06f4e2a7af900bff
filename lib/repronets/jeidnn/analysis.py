"""Tables and figures of the dynamic-exits notebook, from stored runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plotting import plt, sns
from ..results import RunResult

METHOD_NAMES = {"jeidnn": "JEI-DNN", "confidence": "confidence threshold", "boosted": "BoostNet", "l2w": "L2W-DEN"}
COST_NAMES = {"macs": "multiply-adds (torch.utils.flop_counter)", "original": "original counter"}

# shared/papers/jeidnn.md §3.4: stored test results of the original (mean of 10 folds; cost % of the counter's total)
REFERENCE = {
    "cifar10": [
        (0.01, 94.33, 0.26, 81.0, 5.1),
        (0.1, 93.90, 0.28, 75.3, 7.4),
        (0.5, 90.49, 0.21, 68.9, 11.5),
        (1.0, 79.98, 0.26, 59.8, 17.0),
        (3.0, 51.62, 0.37, 45.3, 19.2),
    ],
    "cifar100": [(0.01, 75.36, None, 80.2, 10.8), (0.1, 76.72, None, 81.2, 10.5), (0.5, 76.61, None, 79.4, 11.8)],
    "cifar100_lt": [(0.01, 87.55, 3.6, 84.4, 8.6), (0.9, 85.37, 4.1, 75.9, 12.7)],
    "svhn": [
        (0.05, 91.58, 0.23, 64.6, 5.5),
        (0.3, 91.23, 0.25, 55.9, 8.5),
        (0.9, 88.58, 0.22, 45.4, 17.3),
        (2.0, 77.11, 0.33, 33.1, 25.9),
    ],
}


def _row(method: str, setting: float, m: dict, costs: dict, alpha: float, exits=None) -> dict:
    row = {
        "method": METHOD_NAMES[method],
        "key": method,
        "setting": setting,
        "acc": m["acc"]["mean"],
        "acc_sd": m["acc"]["sd"],
        "ece": m["ece"]["mean"],
        "ece_sd": m["ece"]["sd"],
    }
    for k in ("macs", "original"):
        row[f"cost_{k}"] = m[f"cost_{k}"]["mean"]
        row[f"cost_{k}_frac"] = m[f"cost_{k}"]["mean"] / costs[k][-1]
    for variant in ("general", "gated"):
        row[f"{variant}_size"] = m[f"{variant}_size@{alpha:g}"]["mean"]
        row[f"{variant}_size_sd"] = m[f"{variant}_size@{alpha:g}"]["sd"]
        row[f"{variant}_miscoverage"] = m[f"{variant}_miscoverage@{alpha:g}"]["mean"]
    if exits is not None:
        row["exits"] = exits
    return row


def frame(runs: list[RunResult], alpha: float) -> pd.DataFrame:
    """One row per JEI-DNN λ and per baseline budget level: fold means (and sds) of accuracy, cost, ECE, conformal."""
    rows = []
    for r in runs:
        res = r.result
        if r.params["method"] == "jeidnn":
            rows.append(
                _row("jeidnn", r.params["tradeoff"], res["metrics"], res["exit_costs"], alpha, res["exit_distribution"])
            )
        else:
            for level in res["levels"]:
                rows.append(
                    _row(
                        r.params["method"],
                        level["budget_p"],
                        level["metrics"],
                        res["exit_costs"],
                        alpha,
                        level["exit_distribution"],
                    )
                )
    return pd.DataFrame(rows)


def _colours(df):
    return {
        "JEI-DNN": sns.color_palette("colorblind")[3],
        "confidence threshold": sns.color_palette("colorblind")[0],
        "BoostNet": sns.color_palette("colorblind")[2],
        "L2W-DEN": sns.color_palette("colorblind")[4],
    }


def _draw(ax, df, y: str, cost: str, sd: str | None = None):
    colours = _colours(df)
    x = f"cost_{cost}_frac"
    for method, g in df.groupby("method", sort=False):
        g = g.sort_values(x)
        if method == "JEI-DNN":
            ax.errorbar(
                g[x],
                g[y],
                yerr=g[sd] if sd else None,
                ls="none",
                marker="o",
                ms=6,
                color=colours[method],
                label=method,
                capsize=2,
                zorder=4,
            )
            placed: list[tuple[float, float]] = []
            span = (ax.get_ylim()[1] - ax.get_ylim()[0]) or 1.0
            for _, r in g.iterrows():  # one label per distinct point; repeats (same exits) share it
                if any(abs(r[x] - px) < 0.004 and abs(r[y] - py) < 0.01 * span for px, py in placed):
                    continue
                same = g[(abs(g[x] - r[x]) < 0.004) & (abs(g[y] - r[y]) < 0.01 * span)].setting
                label = "λ=" + ",".join(f"{v:g}" for v in same)
                ax.annotate(
                    label,
                    (r[x], r[y]),
                    textcoords="offset points",
                    xytext=(5, 3 + 9 * (len(placed) % 2)),
                    fontsize=7,
                    color=colours[method],
                )
                placed.append((r[x], r[y]))
        else:
            ax.plot(g[x], g[y], marker=".", ms=4, lw=1.2, color=colours[method], label=method)
            if sd:
                ax.fill_between(g[x], g[y] - g[sd], g[y] + g[sd], color=colours[method], alpha=0.15, lw=0)
    ax.set_xlabel("mean cost per sample / full cost")


def tradeoff_figure(df: pd.DataFrame, alpha: float, cost: str = "macs", title: str = ""):
    """Accuracy, ECE and conformal set size (with miscoverage) against the mean cost; error bars/bands: fold sd."""
    fig, grid = plt.subplots(2, 2, figsize=(11, 8))
    axes = grid.ravel()
    fig.suptitle(
        f"{title + ': ' if title else ''}cost in {COST_NAMES[cost]}; bars and bands: ±1 sd over test folds", fontsize=10
    )
    _draw(axes[0], df, "acc", cost, "acc_sd")
    axes[0].set_ylabel("test accuracy")
    axes[0].set_title("accuracy", fontsize=10)
    _draw(axes[1], df, "ece", cost, "ece_sd")
    axes[1].set_ylabel("ECE ×100 (15 equal-mass bins)")
    axes[1].set_title("calibration", fontsize=10)
    _draw(axes[2], df, "gated_size", cost, "gated_size_sd")
    axes[2].set_ylabel(f"mean set size (gated, α = {alpha:g})")
    axes[2].set_title("conformal prediction sets", fontsize=10)
    _draw(axes[3], df, "gated_miscoverage", cost)
    axes[3].axhline(alpha, color="0.4", ls="--", lw=1)
    axes[3].set_ylabel(f"empirical miscoverage (target α = {alpha:g}, dashed)")
    axes[3].set_title("coverage of those sets", fontsize=10)
    axes[0].legend(fontsize=8)
    return fig


def exits_figure(runs: list[RunResult], title: str = ""):
    """Where JEI-DNN's test samples exit, per λ (bars), beside the λ-oracle's exits on the test set (hatched)."""
    jei = sorted((r for r in runs if r.params["method"] == "jeidnn"), key=lambda r: r.params["tradeoff"])
    if not jei:
        return plt.figure()
    exits = len(jei[0].result["exit_distribution"])
    cols = min(4, len(jei))
    rows = -(-len(jei) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.8 * cols + 1, 2.9 * rows), sharey=True, squeeze=False)
    for ax in axes.ravel()[len(jei) :]:
        ax.set_visible(False)
    for ax, r in zip(axes.ravel(), jei):
        x = np.arange(exits)
        ax.bar(
            x - 0.2, r.result["exit_distribution"], width=0.4, color=sns.color_palette("colorblind")[3], label="gated"
        )
        ax.bar(x + 0.2, r.result["oracle_exit_distribution"], width=0.4, color="0.75", hatch="//", label="oracle")
        ax.set_xticks(x, [str(i) if i < exits - 1 else "head" for i in x], fontsize=7)
        ax.set_title(f"λ = {r.params['tradeoff']:g}", fontsize=9)
        ax.set_xlabel("exit")
    for row in axes:
        row[0].set_ylabel("share of test samples")
    if title:
        fig.suptitle(title, fontsize=10)
    axes[0][-1].legend(fontsize=7)
    return fig


def results_table(df: pd.DataFrame, dataset: str, with_reference: bool) -> pd.DataFrame:
    """Per JEI-DNN λ: accuracy ± fold sd, cost (% of the full cost) in both conventions, ECE, gated set size; and for
    each baseline its best accuracy among budget levels that cost no more than the JEI-DNN point (the comparison of
    shared/papers/jeidnn.md §3.4). With ``with_reference``, the original's stored numbers beside ours."""
    rows = []
    jei = df[df.key == "jeidnn"].sort_values("setting")
    reference = {r[0]: r for r in REFERENCE.get(dataset, [])} if with_reference else {}
    for _, r in jei.iterrows():
        row = {
            "λ": r.setting,
            "acc %": f"{100 * r.acc:.2f} ± {100 * r.acc_sd:.2f}",
            "cost % (MACs)": round(100 * r.cost_macs_frac, 1),
            "cost % (orig. counter)": round(100 * r.cost_original_frac, 1),
            "ECE": round(r.ece, 1),
            "set size (gated)": round(r.gated_size, 2),
        }
        for method in [m for m in ("confidence threshold", "BoostNet", "L2W-DEN") if m in set(df.method)]:
            b = df[(df.method == method) & (df.cost_macs_frac <= r.cost_macs_frac + 1e-9)]
            row[f"{method} acc % at ≤ cost"] = round(100 * b.acc.max(), 2) if len(b) else np.nan
        if reference:
            ref = reference.get(r.setting)
            row.update(
                {
                    "original acc %": (f"{ref[1]:.2f}" + (f" ± {ref[2]:.2f}" if ref[2] is not None else ""))
                    if ref
                    else "–",
                    "original cost %": ref[3] if ref else np.nan,
                    "original ECE": ref[4] if ref else np.nan,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def costs_table(runs: list[RunResult]) -> pd.DataFrame:
    """Cumulative cost of each exit in both conventions (JEI-DNN's: ICs and gates included)."""
    r = next((r for r in runs if r.params["method"] == "jeidnn"), None)
    if r is None:
        return pd.DataFrame()
    c = r.result["exit_costs"]
    n = len(c["macs"])
    return pd.DataFrame(
        {
            "exit": [str(i) for i in range(n - 1)] + ["head"],
            "MACs (×10⁶)": np.round(np.array(c["macs"]) / 1e6, 3),
            "fraction": np.round(np.array(c["macs"]) / c["macs"][-1], 3),
            "original counter (×10⁶)": np.round(np.array(c["original"]) / 1e6, 3),
            "fraction (original)": np.round(np.array(c["original"]) / c["original"][-1], 3),
            "IC accuracy (all test samples)": np.round(r.result["per_exit_acc"], 4),
        }
    )
