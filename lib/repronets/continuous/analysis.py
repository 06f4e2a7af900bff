"""Tables and figures of the ContinuousNet notebook, from stored runs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from ..core.counting import count_parameters
from ..report.plotting import plt, sns
from ..runs.results import RunResult
from .blocks import refine
from .experiment import ROWS, Params, build_model, table_dataset
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
    timing: pd.DataFrame  # the rows' training time and throughput: this machine's speed, an output of its own


# The columns that measure the machine (with the original's times beside ours), written apart from the table.
TIMING_COLUMNS = ("Time", "images/s", "Time (original)")
ROW_COLUMNS = ("Model", "Units", "Refined", "Scheme")


def split_timing(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A results table without its timing columns, and those columns with what names the rows."""
    timed = [c for c in TIMING_COLUMNS if c in frame]
    return frame.drop(columns=timed), frame[[*ROW_COLUMNS, *timed, "seeds"]]


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
            table, timing = split_timing(frame)
            on_data = [r for r in runs if r.params["dataset"] == data_name]
            out.append(Table(name, table, on_data, data_name, caption, timing))
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


TRAINED_FIELD = "ReLU (as trained)"


def convergence_frame(runs: list[RunResult], smooth: bool = False) -> pd.DataFrame:
    """One row per trained model, seed, scheme and step count: the block's relative error. ``smooth``: the rows of
    the same block with its ReLUs swapped for smooth functions (column ``activation``) instead of the trained one."""
    rows = []
    for r in runs:
        for c in r.result.get("convergence_smooth" if smooth else "convergence", []):
            rows.append({"trained": _label(r), "seed": r.params["seed"], "activation": TRAINED_FIELD, **c})
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


def observed_orders_per_seed(runs: list[RunResult], smooth: bool = False) -> pd.DataFrame:
    """:func:`observed_order` at the two finest step counts, per trained model, field (``activation``), scheme and
    seed (long form); ``smooth``: on the smooth stand-in fields (:func:`convergence_frame`)."""
    df = convergence_frame(runs, smooth)
    if df.empty:
        return pd.DataFrame(columns=["trained", "activation", "scheme", "seed", "observed order"])
    return (
        df.sort_values("steps")
        .groupby(["trained", "activation", "scheme", "seed"], sort=False)["relative_error"]
        .apply(observed_order)
        .rename("observed order")
        .reset_index()
    )


def observed_orders(runs: list[RunResult]) -> pd.DataFrame:
    """:func:`observed_order` at the two finest step counts, per trained model, field and scheme (mean over
    seeds): the trained block's beside the same block with smooth activations, which shows what the schemes give
    where the field has no kinks."""
    out = pd.concat([observed_orders_per_seed(runs), observed_orders_per_seed(runs, smooth=True)])
    table = out.groupby(["trained", "activation", "scheme"], sort=False)["observed order"].mean().unstack("scheme")
    return table.reset_index().rename(columns={"activation": "field"})


def summary(runs: list[RunResult], rebuilt: list[Table]) -> list[str]:
    """What a run shows, in lines: per trained ContinuousNet, the accuracy at its training steps, with the fewest
    steps and the range over the manifestation sweep (its own scheme); then the accuracies in each ``rebuilt`` table."""
    lines = []
    m = manifestation_frame(ode_runs(runs))
    if len(m):
        same = m[m["trained scheme"] == m["evaluated with"]]
        for trained, g in same.groupby("trained"):
            curve = g.groupby("steps").test_acc.mean()
            steps = g["trained steps"].iloc[0]
            # a sweep (manifestation_steps) need not contain the training step count
            at = f"{curve.loc[steps]:.3f}" if steps in curve.index else f"not swept ({steps} steps)"
            fewest = curve.index[0]
            lines.append(
                f"{trained}: {at} at its training steps; with {fewest} step{'' if fewest == 1 else 's'} per block "
                f"{curve.iloc[0]:.3f}; range over {len(curve)} step counts {curve.min():.3f}-{curve.max():.3f}"
            )
    for t in rebuilt:
        lines.append(
            f"{t.name}: "
            + "; ".join(f"{r.Units} {r.Scheme} {r.Model}: {r['Test accuracy']}" for _, r in t.frame.iterrows())
        )
    return lines


# ---------------------------------------------------------------- claims ledger (claims/02_continuousnet_tables.yaml)

PAPER_SIZE = {"alpha": 16, "widen_factor": 4}  # the paper's widths (params/paper): α of the CIFAR-10 models, k of WRN


def paper_parameters(row: str) -> int:
    """Parameters of a row's model at the paper's size on CIFAR (3 channels; 10 or 100 classes by its table), built
    through the model registry and refined as often as the row refines (1-1-1 → 2-2-2 ends with 2-2-2's weights).
    Untrained; the global RNG is left as it was."""
    spec = ROWS[row]
    run = {"arch": spec.arch, "seed": 0, "depth": spec.depth, "pieces": spec.pieces, "scheme": spec.scheme}
    run |= {"T": None, "legacy_pieces": False, **PAPER_SIZE}
    with torch.random.fork_rng():  # build_model seeds the CPU and every CUDA generator
        model = build_model(run, 3, 100 if spec.table == "cifar100" else 10)
    for _ in spec.refine_at:
        refine(model)
    return count_parameters(model, trainable_only=False)


def _by_seed(runs: list[RunResult], row: str) -> dict[int, RunResult]:
    return {r.params["seed"]: r for r in sorted(runs, key=lambda r: r.params["seed"]) if r.params["row"] == row}


def _paired(runs: list[RunResult], a: str, b: str, value) -> list[float]:
    """value(run of a, run of b) for each seed both rows have, in seed order."""
    first, second = _by_seed(runs, a), _by_seed(runs, b)
    return [float(value(first[s], second[s])) for s in first if s in second]


def _seconds_per_epoch(r: RunResult) -> float:
    return r.result["train_time_s"] / r.params["epochs"]


def _time_ratio(a: RunResult, b: RunResult) -> float:
    """Training time per epoch of ``a`` over ``b``; NaN (dropped) when the two were timed on different devices."""
    same = a.result.get("device") == b.result.get("device")
    return _seconds_per_epoch(a) / _seconds_per_epoch(b) if same else float("nan")


def _sweep(r: RunResult) -> dict[tuple[str, int], float]:
    """The manifestation sweep of a run as {(scheme, steps per block): test accuracy}."""
    return {(m["scheme"], m["steps"]): m["test_acc"] for m in r.result.get("manifestation", [])}


def _trained_accuracy(r: RunResult) -> float:
    """Sweep accuracy with the training scheme at the training steps (pieces after every refinement); NaN (dropped)
    when the sweep skipped them."""
    return _sweep(r).get((r.params["scheme"], r.params["pieces"] * 2 ** len(r.params["refine_at"])), float("nan"))


def _one_step_drop(r: RunResult) -> float:
    """Accuracy lost from the training steps to one step per block, training scheme (NaN without a 1-step entry)."""
    one = _sweep(r).get((r.params["scheme"], 1))
    return float("nan") if one is None else _trained_accuracy(r) - one


def _largest_drop_from_two_steps(r: RunResult) -> float:
    """The largest accuracy lost from the training setting to any (scheme, steps ≥ 2) of the sweep."""
    acc = _trained_accuracy(r)
    return max((acc - a for (_, n), a in _sweep(r).items() if n >= 2), default=float("nan"))


def claim_values(runs: list[RunResult]) -> dict[str, list[float]]:
    """The measured quantity of every claim of ``claims/02_continuousnet_tables.yaml`` that can be measured: one value
    per seed, or per seed pair (in seed order) where the claim pairs two rows. Parameter counts need no runs (one
    exact value per row); accuracies only from runs on the row's own table data (CIFAR-10 or CIFAR-100); the other
    claims from the rows and sweeps that ``runs`` have. Claims without values are absent."""
    out: dict[str, list[float]] = {f"cn.parameters.{row}": [paper_parameters(row) / 1e6] for row in ROWS}
    for row, spec in ROWS.items():
        on_table_data = [r for r in _by_seed(runs, row).values() if r.params["dataset"] == spec.table]
        if on_table_data:
            out[f"cn.accuracy.{row}"] = [100 * r.result["final_test_acc"] for r in on_table_data]
    pairs = {
        "cn.cost.euler_as_resnet": ("cn2_euler", "resnet20", _time_ratio),
        "cn.cost.rk4_over_euler": ("cn2_rk4", "cn2_euler", _time_ratio),
        "cn.manifestation.euler_loses_more": (
            "cn2_euler",
            "cn2_rk4",
            lambda a, b: _one_step_drop(a) - _one_step_drop(b),
        ),
        "cn.refinement.keeps_accuracy": (
            "cn1to2_rk4",
            "cn2_rk4",
            lambda a, b: 100 * (a.result["final_test_acc"] - b.result["final_test_acc"]),
        ),
        "cn.refinement.keeps_accuracy_8": (
            "cn1to8_rk4",
            "cn8_rk4",
            lambda a, b: 100 * (a.result["final_test_acc"] - b.result["final_test_acc"]),
        ),
        "cn.cost.refinement_saves_time": ("cn1to2_rk4", "cn2_rk4", _time_ratio),
        "cn.cost.refinement_saves_time_8": ("cn1to8_rk4", "cn8_rk4", _time_ratio),
    }
    for claim_id, (a, b, value) in pairs.items():
        values = [v for v in _paired(runs, a, b, value) if np.isfinite(v)]
        if values:
            out[claim_id] = values
    drops = [d for d in map(_largest_drop_from_two_steps, _by_seed(runs, "cn2_rk4").values()) if np.isfinite(d)]
    if drops:
        out["cn.manifestation.rk4_keeps_accuracy"] = drops
    fewer = [d for d in map(_one_step_drop, _by_seed(runs, "cn2_rk4").values()) if np.isfinite(d)]
    if fewer:
        out["cn.manifestation.rk4_fewer_steps"] = fewer
    ode = [r for r in ode_runs(runs) if r.result.get("convergence")]
    if ode:
        orders = observed_orders_per_seed(ode).sort_values(["trained", "seed"], kind="stable")
        for scheme, g in orders.groupby("scheme", sort=False):
            out[f"cn.convergence.{scheme}"] = g["observed order"].tolist()
        smooth = observed_orders_per_seed(ode, smooth=True)
        smooth = smooth[(smooth.activation == "softplus") & (smooth.scheme == "rk4_classic")]
        if len(smooth):
            out["cn.convergence.smooth_rk4"] = smooth.sort_values(["trained", "seed"])["observed order"].tolist()
    return out
