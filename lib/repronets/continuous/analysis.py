"""Tables and figures of the ContinuousNet notebook, from stored runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ..plotting import plt, sns
from ..results import RunResult
from .experiment import ROWS, Params, table_dataset
from .reference import PUBLISHED

SCHEME_NAMES = {
    "euler": "Euler",
    "midpoint": "Midpoint",
    "rk4_classic": "RK4-classic",
    "rk4_38": "RK4 (3/8)",
    None: "–",
}
TABLE_TITLES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}  # the original README's two tables


def ode_runs(runs: list[RunResult]) -> list[RunResult]:
    """The runs of ContinuousNets (the rows with pieces), which have a manifestation sweep and a convergence study."""
    return [r for r in runs if r.params["pieces"]]


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
        published = PUBLISHED.get(name)
        if with_reference and published:
            row.update(
                {
                    "#params (original)": published.parameters,
                    "Test accuracy (original)": f"{published.accuracy:.2f}%",
                    "Time (original)": f"{published.minutes} (m)",
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


@dataclasses.dataclass
class Table:
    """One of the original README's tables rebuilt from runs, with what its provenance record needs."""

    name: str  # cifar10 or cifar100
    frame: pd.DataFrame
    runs: list[RunResult]  # the runs on its data
    data: str
    caption: str


def tables(runs: list[RunResult], p: Params) -> list[Table]:
    """The README's tables that ``runs`` have rows of, in the README's order; the README's numbers stand beside
    ours where a table was rebuilt on the README's own data."""
    out = []
    for name, title in TABLE_TITLES.items():
        data_name = table_dataset(p, name)
        frame = results_table(runs, name, with_reference=data_name == name)
        if len(frame):
            caption = (
                f"{title} table of the original README, rebuilt on {data_name} "
                f"({p.epochs} epochs, width α = {p.alpha})."
            )
            out.append(Table(name, frame, [r for r in runs if r.params["dataset"] == data_name], data_name, caption))
    return out


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


def observed_order(errors) -> float:
    """log2 of the ratio of the last two errors of a sequence at halving step sizes."""
    errors = np.asarray(errors)
    return float(np.log2(errors[-2] / errors[-1]))


def observed_orders(runs: list[RunResult]) -> pd.DataFrame:
    """:func:`observed_order` at the two finest step counts, per trained model and scheme (mean over seeds)."""
    df = convergence_frame(runs)
    out = (
        df.sort_values("steps")
        .groupby(["trained", "scheme", "seed"])["relative_error"]
        .apply(observed_order)
        .rename("observed order")
        .reset_index()
    )
    return out.groupby(["trained", "scheme"])["observed order"].mean().unstack("scheme").reset_index()


def summary(runs: list[RunResult], rebuilt: list[Table]) -> list[str]:
    """What a run shows, in lines: per trained ContinuousNet, the accuracy at its training steps, with the fewest
    steps and the range over the manifestation sweep (its own scheme); then the accuracies in each ``rebuilt`` table."""
    lines = []
    m = manifestation_frame(ode_runs(runs))
    if len(m):
        same = m[m["trained scheme"] == m["evaluated with"]]
        for trained, g in same.groupby("trained"):
            curve = g.groupby("steps").test_acc.mean()
            at = curve.loc[g["trained steps"].iloc[0]]
            fewest = curve.index[0]
            lines.append(
                f"{trained}: {at:.3f} at its training steps; with {fewest} step{'' if fewest == 1 else 's'} per block "
                f"{curve.iloc[0]:.3f}; range over {len(curve)} step counts {curve.min():.3f}-{curve.max():.3f}"
            )
    for t in rebuilt:
        lines.append(
            f"{t.name}: "
            + "; ".join(f"{r.Units} {r.Scheme} {r.Model}: {r['Test accuracy']}" for _, r in t.frame.iterrows())
        )
    return lines
