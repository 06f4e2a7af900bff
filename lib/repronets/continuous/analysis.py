"""Tables and figures of the ContinuousNet notebook, from stored runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..plotting import plt, sns
from ..results import RunResult
from .experiment import ROWS

SCHEME_NAMES = {
    "euler": "Euler",
    "midpoint": "Midpoint",
    "rk4_classic": "RK4-classic",
    "rk4_38": "RK4 (3/8)",
    None: "–",
}


def _fmt_params(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def results_table(runs: list[RunResult], table: str, with_reference: bool) -> pd.DataFrame:
    """The original's columns (Model, Units, Refined, Scheme, #params, Test accuracy, Time), one row per table row,
    mean ± sd over seeds; the README's numbers beside ours when ``with_reference``."""
    rows = []
    by_row: dict[str, list[RunResult]] = {}
    for r in runs:
        if ROWS[r.params["row"]].table == table:
            by_row.setdefault(r.params["row"], []).append(r)
    for name, group in by_row.items():
        spec = ROWS[name]
        acc = np.array([100 * r.result["final_test_acc"] for r in group])
        minutes = np.mean([r.result["train_time_s"] for r in group]) / 60
        row = {
            "Model": spec.model,
            "Units": spec.units,
            "Refined": ", ".join(map(str, group[0].params["refine_at"])) or "–",
            "Scheme": SCHEME_NAMES[spec.scheme],
            "#params": _fmt_params(group[0].result["parameters"]),
            "Test accuracy": f"{acc.mean():.2f}%" + (f" ± {acc.std(ddof=1):.2f}" if len(acc) > 1 else ""),
            "Time": f"{minutes:.1f} (m)" if minutes >= 0.1 else f"{60 * minutes:.0f} (s)",
            "images/s": f"{np.mean([r.result['images_per_s'] for r in group]):.0f}",
            "T": group[0].params["T"] if group[0].params["T"] is not None else "–",
            "seeds": len(group),
        }
        if with_reference and spec.original:
            row.update(
                {
                    "#params (original)": spec.original[0],
                    "Test accuracy (original)": f"{spec.original[1]:.2f}%",
                    "Time (original)": f"{spec.original[2]} (m)",
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _label(run: RunResult) -> str:
    spec = ROWS[run.params["row"]]
    return f"{spec.units} {SCHEME_NAMES[spec.scheme]}" + (" (refined)" if run.params["refine_at"] else "")


def manifestation_frame(runs: list[RunResult]) -> pd.DataFrame:
    rows = []
    for r in runs:
        for m in r.result.get("manifestation", []):
            rows.append(
                {
                    "trained": _label(r),
                    "trained scheme": r.params["scheme"],
                    "evaluated with": m["scheme"],
                    "steps": m["steps"],
                    "test_acc": m["test_acc"],
                    "seed": r.params["seed"],
                    "trained steps": r.params["pieces"] * 2 ** len(r.params["refine_at"]),
                }
            )
    return pd.DataFrame(rows)


def manifestation_figure(runs: list[RunResult]):
    """Test accuracy against steps per ODE block. Left: evaluated with the training scheme; right: with the other
    schemes. Legend 'trained model → evaluation scheme' (the original's cross-scheme labels were wrong). Markers:
    the step count each model was trained with. Bands: ±1 sd over seeds."""
    df = manifestation_frame(runs)
    same = df[df["trained scheme"] == df["evaluated with"]].copy()
    other = df[df["trained scheme"] != df["evaluated with"]].copy()
    same["curve"] = same["trained"]
    other["curve"] = other["trained"] + " → " + other["evaluated with"].map(SCHEME_NAMES)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.0), sharey=True)
    for ax, sub, title in (
        (axes[0], same, "evaluated with the training scheme"),
        (axes[1], other, "evaluated with another scheme"),
    ):
        sns.lineplot(data=sub, x="steps", y="test_acc", hue="curve", errorbar="sd", marker="o", markersize=4, ax=ax)
        for _, g in same.groupby("trained"):
            at = g[g.steps == g["trained steps"].iloc[0]]
            if ax is axes[0] and len(at):
                ax.scatter(at.steps.iloc[0], at.test_acc.mean(), s=120, facecolors="none", edgecolors="black", zorder=5)
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(plt.matplotlib.ticker.ScalarFormatter())
        ax.set(title=title, xlabel="steps per ODE block at evaluation (N = 1/Δt)", ylabel="test accuracy")
        ax.legend(fontsize=7, title=None)
    return fig


def convergence_frame(runs: list[RunResult]) -> pd.DataFrame:
    rows = []
    for r in runs:
        for c in r.result.get("convergence", []):
            rows.append({"trained": _label(r), "seed": r.params["seed"], **c})
    return pd.DataFrame(rows)


def convergence_figure(runs: list[RunResult]):
    """Relative error of the first ODE block's output against a fine RK4 reference, against steps (log-log),
    one panel per trained model (first seed), with slopes of order 1, 2, 4 for reference."""
    df = convergence_frame(runs)
    df = df[df.seed == df.seed.min()]
    models = list(dict.fromkeys(df.trained))
    fig, axes = plt.subplots(1, len(models), figsize=(3.6 * len(models), 3.4), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        sub = df[df.trained == model]
        for scheme, g in sub.groupby("scheme", sort=False):
            ax.loglog(g.steps, g.relative_error, "o-", ms=4, label=SCHEME_NAMES[scheme])
        n = np.array(sorted(set(sub.steps)), dtype=float)
        top = sub.relative_error.max()
        for order, style in ((1, ":"), (2, "--"), (4, "-.")):
            ax.loglog(n, top * (n / n[0]) ** -order, color="grey", ls=style, lw=0.8, label=f"order {order}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(n, [str(int(v)) for v in n])
        ax.xaxis.set_minor_formatter(plt.matplotlib.ticker.NullFormatter())
        ax.set(title=model, xlabel="steps per block", ylabel="relative error of block output")
    axes[0][-1].legend(fontsize=7)
    return fig


def observed_orders(runs: list[RunResult]) -> pd.DataFrame:
    """log2 ratio of the errors at the two finest step counts, per trained model and scheme."""
    df = convergence_frame(runs)
    out = (
        df.sort_values("steps")
        .groupby(["trained", "scheme", "seed"])["relative_error"]
        .apply(lambda e: float(np.log2(e.iloc[-2] / e.iloc[-1])))
        .rename("observed order")
        .reset_index()
    )
    return out.groupby(["trained", "scheme"])["observed order"].mean().unstack("scheme").reset_index()
