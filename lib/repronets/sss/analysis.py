"""Tables and figures of the SSS notebook, from stored runs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from ..core.counting import count_parameters
from ..report.plotting import plt, seeded_jitter, sns
from ..runs.results import RunResult
from . import models, reference
from .models import state_dim

LOSS_NAMES = {"double_softmax": "double softmax (original)", "logits": "logits (corrected)"}


def model_label(key: str) -> str:
    s = state_dim(key)
    return {"standard_nn": "dense", "rank_1": "rank 1"}.get(key, f"SSS s={s}")


def model_order(keys) -> list[str]:
    keys = set(keys)
    return [
        k for k in ("standard_nn", *sorted((k for k in keys if state_dim(k)), key=state_dim), "rank_1") if k in keys
    ]


def palette(keys) -> dict[str, object]:
    """Dense black, rank-1 grey, the SSS models on one sequential ramp (darker = larger s)."""
    sss = [k for k in model_order(keys) if state_dim(k)]
    ramp = sns.color_palette("crest", max(len(sss), 1))
    colours = {"dense": "black", "rank 1": "0.6"}
    colours.update({model_label(k): ramp[i] for i, k in enumerate(sss)})
    return colours


def frame(runs: list[RunResult]) -> pd.DataFrame:
    rows = []
    for r in runs:
        q, res = r.params, r.result
        rows.append(
            {
                "dataset": q["dataset"],
                "share": q["share"],
                "model": model_label(q["model"]),
                "key": q["model"],
                "width": q["width"],
                "repeat": q["repeat"],
                "loss": q["loss"],
                "test_accuracy": res["test_accuracy"],
                "parameters": res["nb_model_parameters"],
                "epochs": res["epochs"],
                "train_samples": res["train_samples"],
                "train_time_s": res["train_time_s"],
                "final_train_loss": res["training_loss_history"][-1],
                "final_train_accuracy": res["accuracy_history"][-1],
            }
        )
    return pd.DataFrame(rows)


def training_samples(df: pd.DataFrame) -> pd.Series:
    """The number of training samples (after the validation split) per dataset and share."""
    return df.groupby(["dataset", "share"]).train_samples.first()


def _panels(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(panel=df.dataset + (", h=" + df.width.astype(str) if df.width.nunique() > 1 else ""))


def _accuracy_grid(df: pd.DataFrame, **share):
    """The accuracy figures' layout: one column per loss variant, one row per dataset (and width). Returns the
    frame with its panel column, the figure, the axes, the (row, column, panel, loss, runs) cells and the models in
    display order."""
    df = _panels(df)
    panels, losses = sorted(df.panel.unique()), [l for l in LOSS_NAMES if l in set(df.loss)]
    fig, axes = plt.subplots(
        len(panels), len(losses), figsize=(5.2 * len(losses), 3.6 * len(panels)), squeeze=False, **share
    )
    cells = [
        (i, j, panel, loss, df[(df.panel == panel) & (df.loss == loss)])
        for i, panel in enumerate(panels)
        for j, loss in enumerate(losses)
    ]
    for i, j, panel, loss, _ in cells:
        axes[i][j].set_title(f"{panel} · {LOSS_NAMES[loss]}", fontsize=10)
        axes[i][j].set_xlabel("share of the training set")
        axes[i][j].set_ylabel("test accuracy")
    return df, fig, axes, cells, [model_label(k) for k in model_order(df.key)]


def accuracy_figure(df: pd.DataFrame):
    """Test accuracy against training-set share, one line per model (mean, error bars ±1 sd over repeats); one column
    per loss variant, one row per dataset (and width)."""
    df, fig, axes, cells, order = _accuracy_grid(df, sharex=True)
    colours = palette(df.key)
    for i, j, _, _, sub in cells:
        ax = axes[i][j]
        stats = sub.groupby(["model", "share"]).test_accuracy.agg(["mean", "std"]).reset_index()
        shares = sorted(sub.share.unique())
        offsets = dict(zip(order, np.linspace(-0.04, 0.04, len(order))))  # spread the error bars apart
        for model in order:
            m = stats[stats.model == model].sort_values("share")
            if not len(m):
                continue
            x = m.share * 10 ** offsets[model]
            ax.errorbar(
                x,
                m["mean"],
                yerr=m["std"].fillna(0),
                label=model,
                color=colours[model],
                marker="o",
                ms=4,
                lw=1.4 if model in ("dense", "rank 1") else 1.1,
                capsize=2,
                ls="--" if model == "rank 1" else "-",
            )
        ax.set_xscale("log")
        ax.set_xticks(shares, [f"{s:g}" for s in shares])
        ax.minorticks_off()
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="hidden layer")
    return fig


def accuracy_distribution_figure(df: pd.DataFrame):
    """Every run's final test accuracy, one dot per repeat, per training-set share and model: outcomes that scatter
    or fall into several modes (as under the double softmax) show here, where a mean ± sd hides them. One column per
    loss variant, one row per dataset (and width)."""
    df, fig, axes, cells, order = _accuracy_grid(df, sharey=True)
    last = len(axes[0]) - 1
    with seeded_jitter():
        for i, j, _, _, sub in cells:
            ax = axes[i][j]
            sns.stripplot(
                data=sub,
                x="share",
                y="test_accuracy",
                hue="model",
                hue_order=order,
                palette=palette(df.key),
                dodge=True,
                jitter=0.15,
                size=3.5,
                alpha=0.8,
                ax=ax,
                legend=(i, j) == (0, last),
            )
            # stripplot resets the labels of its axes
            ax.set_xlabel("share of the training set")
            ax.set_ylabel("test accuracy" if j == 0 else "")
    if axes[0][-1].get_legend() is not None:
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title="hidden layer")
    return fig


# A run "stalls" when it stops fitting less than 95 % of its training set. Under the double softmax that is one or
# more whole classes never predicted: on the quick profile's digits runs, the final training accuracies of the dense
# and SSS models cluster at ≈ 0.99 (every class fitted), ≈ 0.90 (one class lost) and ≈ 0.82 (two), with test
# accuracies to match, while with logits every one of them ends at ≥ 0.998. Rank 1 is left out: it cannot fit the
# training set at all (0.46–0.92), whatever the loss.
STALLED_BELOW = 0.95


def fit_modes(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, width, loss and hidden layer (rank 1 excepted): how many runs stalled (final training accuracy
    below :data:`STALLED_BELOW`), their share, and the mean test accuracy of the stalled and of the other runs. The
    outcome is many-peaked where both modes occur; a mean over repeats then says more about how many runs stalled
    than about the model."""
    sub = df[df.key != "rank_1"].assign(stalled=lambda d: d.final_train_accuracy < STALLED_BELOW)
    rows = []
    for (dataset, width), cell in sub.groupby(["dataset", "width"]):
        for loss, key in itertools.product([l for l in LOSS_NAMES if l in set(cell.loss)], model_order(cell.key)):
            g = cell[(cell.loss == loss) & (cell.key == key)]
            if g.empty:
                continue
            stalled, fitted = g[g.stalled], g[~g.stalled]
            rows.append(
                {
                    "dataset": dataset,
                    "width": width,
                    "loss": LOSS_NAMES[loss],
                    "hidden layer": model_label(key),
                    "runs": len(g),
                    "stalled": len(stalled),
                    "share stalled": len(stalled) / len(g),
                    "test acc, fitted": fitted.test_accuracy.mean() if len(fitted) else np.nan,
                    "test acc, stalled": stalled.test_accuracy.mean() if len(stalled) else np.nan,
                }
            )
    out = pd.DataFrame(rows)
    if out.width.nunique() == 1:
        out = out.drop(columns="width")
    return out


def fit_modes_figure(df: pd.DataFrame):
    """Every run's final training accuracy, per loss and hidden layer: the double softmax's modes (all classes
    fitted, or one or two classes lost) show as separate bands; the dashed line is :data:`STALLED_BELOW`."""
    sub = df[df.key != "rank_1"]
    losses = [l for l in LOSS_NAMES if l in set(sub.loss)]
    order = [model_label(k) for k in model_order(sub.key)]
    fig, axes = plt.subplots(1, len(losses), figsize=(5.2 * len(losses), 3.6), sharey=True, squeeze=False)
    with seeded_jitter():
        for ax, loss in zip(axes[0], losses):
            g = sub[sub.loss == loss]
            sns.stripplot(
                data=g,
                x="model",
                y="final_train_accuracy",
                hue="model",
                order=order,
                hue_order=order,
                palette=palette(sub.key),
                jitter=0.2,
                size=3.5,
                alpha=0.8,
                legend=False,
                ax=ax,
            )
            ax.axhline(STALLED_BELOW, ls="--", lw=0.8, color="0.4")
            ax.set_title(LOSS_NAMES[loss], fontsize=10)
            ax.set_xlabel("")
            ax.set_ylabel("final training accuracy" if ax is axes[0][0] else "")
            ax.tick_params(axis="x", rotation=30, labelsize=8)
    return fig


def _mean_sd(values: pd.Series) -> str:
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1 else f"{values.mean():.3f}"


def results_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, loss and model: the parameter count and the test accuracy (mean ± sd over repeats) at each
    share, and the mean number of epochs the stopping rule allowed."""
    rows = []
    for (dataset, loss, width), g in df.groupby(["dataset", "loss", "width"], sort=True):
        for key in model_order(g.key):
            m = g[g.key == key]
            row = {
                "dataset": dataset,
                "loss": loss,
                "h": width,
                "model": model_label(key),
                "parameters": int(m.parameters.iloc[0]),
            }
            for share, s in m.groupby("share"):
                row[f"acc @ {share:g}"] = _mean_sd(s.test_accuracy)
            row["epochs"] = f"{m.epochs.mean():.0f}"
            rows.append(row)
    return pd.DataFrame(rows)


def comparison(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, loss and share: the best SSS model against dense and rank-1 (mean test accuracy), and whether an
    SSS model with no more parameters than the dense one beats it."""
    rows = []
    for (dataset, loss, share), g in df.groupby(["dataset", "loss", "share"]):
        mean = g.groupby("key").test_accuracy.mean()
        params = g.groupby("key").parameters.first()
        sss = [k for k in mean.index if state_dim(k)]
        if not sss or "standard_nn" not in mean:
            continue
        best = max(sss, key=lambda k: mean[k])
        fewer = [k for k in sss if params[k] <= params["standard_nn"]]
        best_fewer = max(fewer, key=lambda k: mean[k]) if fewer else None
        rows.append(
            {
                "dataset": dataset,
                "loss": loss,
                "share": share,
                "dense": round(mean["standard_nn"], 4),
                "rank 1": round(mean.get("rank_1", np.nan), 4),
                "best SSS": model_label(best),
                "best SSS acc": round(mean[best], 4),
                "best SSS with ≤ dense params": model_label(best_fewer) if best_fewer else "–",
                "its acc": round(mean[best_fewer], 4) if best_fewer else np.nan,
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ complexity


def complexity_frame(result: dict) -> pd.DataFrame:
    df = pd.DataFrame(result["rows"])
    df["label"] = [("dense (nn.Linear)" if s is None or s != s else f"SSS s={int(s)}") for s in df.state_dim]
    return df


def crossovers(df: pd.DataFrame) -> pd.DataFrame:
    """For each s: the n where the SSS layer's time crosses the dense layer's (log-log interpolation between the
    measured sizes), and the time ratio at the largest n."""
    dense = df[df.layer == "dense"].set_index("n").seconds
    rows = []
    for s, g in df[df.layer != "dense"].groupby("state_dim"):
        ratio = (g.set_index("n").seconds / dense).sort_index()
        n_cross = None
        for (n0, r0), (n1, r1) in zip(ratio.items(), list(ratio.items())[1:]):
            if r0 >= 1 > r1:
                t = np.log(r0) / (np.log(r0) - np.log(r1))
                n_cross = float(np.exp(np.log(n0) + t * (np.log(n1) - np.log(n0))))
        if n_cross is None and len(ratio) and ratio.iloc[0] < 1:
            n_cross = float(ratio.index[0])  # faster already at the smallest size measured
        rows.append(
            {
                "state_dim": int(s),
                "crossover_n": round(n_cross) if n_cross else None,
                "largest_n": int(ratio.index[-1]),
                "time_ratio_at_largest_n": float(ratio.iloc[-1]),
                "time_ratio_at_smallest_n": float(ratio.iloc[0]),
            }
        )
    return pd.DataFrame(rows)


def complexity_figure(df: pd.DataFrame, batch: int):
    """Left: measured forward + backward time against n (log-log), crossovers with the dense layer marked.
    Right: multiply-adds per sample and forward pass, counted by torch.utils.flop_counter (solid) and the minimum of
    the recursions, one per generator entry (dotted), against dense n². ``batch``: the batch that was measured."""
    labels = ["dense (nn.Linear)", *sorted(l for l in df.label.unique() if l.startswith("SSS"))]
    ramp = sns.color_palette("crest", len(labels) - 1)
    colours = {"dense (nn.Linear)": "black", **{l: ramp[i] for i, l in enumerate(labels[1:])}}
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label in labels:
        g = df[df.label == label].sort_values("n")
        ax_t.plot(g.n, g.seconds * 1e3, marker="o", ms=4, color=colours[label], label=label)
        ax_m.plot(g.n, g.macs_per_sample, marker="o", ms=4, color=colours[label], label=f"{label}, counted")
        if label != labels[0]:
            ax_m.plot(g.n, g.minimal_macs_per_sample, ls=":", color=colours[label])
    dense = df[df.layer == "dense"].set_index("n").seconds
    lines = []  # the crossovers lie close together: their values go in one box instead of labels at the points
    for _, row in crossovers(df).iterrows():
        if row.crossover_n:
            y = np.exp(np.interp(np.log(row.crossover_n), np.log(dense.index), np.log(dense.values * 1e3)))
            ax_t.plot(
                [row.crossover_n],
                [y],
                marker="X",
                ms=10,
                color=colours[f"SSS s={int(row.state_dim)}"],
                mec="white",
                zorder=5,
            )
            lines.append(f"s={int(row.state_dim)}: n ≈ {row.crossover_n:.0f}")
    if lines:
        ax_t.text(
            0.97,
            0.04,
            "faster than dense from\n" + "\n".join(lines),
            transform=ax_t.transAxes,
            ha="right",
            va="bottom",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "0.8"},
        )
    for ax in (ax_t, ax_m):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("n (square layer, m = 1)")
    ax_t.set_ylabel(f"ms per forward + backward (batch {batch})")
    ax_t.set_title("measured time (× = crossover with dense)", fontsize=10)
    ax_m.set_ylabel(f"multiply-adds per sample (forward, batch {batch})")
    ax_m.set_title("counted (solid) and minimal (dotted) multiply-adds", fontsize=10)
    ax_t.legend(fontsize=8)
    return fig


# ------------------------------------------------------------------ the notebook's summary


def double_softmax_floor(classes: int) -> float:
    """The lowest cross-entropy a softmax output fed to CrossEntropyLoss can reach: log(1 + (K − 1)/e)."""
    return math.log(1 + (classes - 1) / math.e)


def summary(df: pd.DataFrame, cmp: pd.DataFrame, cross: pd.DataFrame, modes: pd.DataFrame | None = None) -> list[str]:
    """What a run shows, one line each: per dataset and loss, at how many shares SSS beats dense (any SSS model, and
    one with no more parameters) and rank 1 falls below it (from :func:`comparison`); the lowest final training loss
    under the double softmax against its floor for 10 classes; how many runs stalled per hidden layer (from
    :func:`fit_modes`, where any did); and each s's crossover (from :func:`crossovers`)."""
    lines = []
    for (dataset, loss), g in cmp.groupby(["dataset", "loss"]):
        wins = (g["best SSS acc"] > g["dense"]).sum()
        fair = (g["its acc"] > g["dense"]).sum()
        lines.append(
            f"{dataset}, {loss}: best SSS beats dense at {wins}/{len(g)} shares; an SSS model with no more parameters "
            f"than dense beats it at {fair}/{len(g)}; rank 1 is below dense at "
            f"{(g['rank 1'] < g['dense']).sum()}/{len(g)}"
        )
    if (df.loss == "double_softmax").any():
        floor = df[df.loss == "double_softmax"].final_train_loss.min()
        lines.append(
            f"lowest final training loss with the double softmax: {floor:.4f} "
            f"(bound for 10 classes: {double_softmax_floor(10):.4f})"
        )
    if modes is not None:
        for (dataset, loss), g in modes.groupby(["dataset", "loss"], sort=False):
            if g.stalled.sum():
                counts = ", ".join(f"{r['hidden layer']} {r.stalled}/{r.runs}" for _, r in g.iterrows())
                lines.append(f"{dataset}, {loss}: runs that stalled (training accuracy < {STALLED_BELOW}): {counts}")
    for _, row in cross.iterrows():
        where = f"from n ≈ {row.crossover_n:.0f}" if row.crossover_n else "nowhere in the measured range"
        lines.append(
            f"SSS s={int(row.state_dim)}: faster than dense {where}; time ratio {row.time_ratio_at_largest_n:.2f} at "
            f"n = {int(row.largest_n)}"
        )
    return lines


# ------------------------------------------------------------------ the claims ledger (claims/03_sss_benchmarks.yaml)

# sss.beats_<baseline>.<loss>: (the SSS model, the baseline it is claimed to beat)
CLAIM_PAIRS = {"beats_dense": ("ss_4_dim", "standard_nn"), "beats_rank1": ("ss_1_dim", "rank_1")}
# The source's "can outperform standard networks on several datasets" is judged per dataset too:
# sss.beats_dense.<loss>.<dataset>, for the datasets of the parameter sets (claims/03_sss_benchmarks.yaml).
PER_DATASET_CLAIMS = ("beats_dense",)


def parameter_mismatches() -> dict[str, int]:
    """Per dataset of the original's benchmark: how many of its models (built at h = 50 from the dataset's input
    shape and classes, every parameter counted) differ from the original's parameter count."""
    out = {}
    for dataset, expected in reference.MODEL_PARAMETERS.items():
        shape, classes = reference.MODEL_INPUTS[dataset]
        out[dataset] = sum(
            count_parameters(models.build(key, shape, classes, 50), trainable_only=False) != count
            for key, count in expected.items()
        )
    return out


def paired_differences(df: pd.DataFrame, model: str, baseline: str, loss: str) -> pd.Series:
    """Test accuracy of ``model`` minus ``baseline`` where both ran with ``loss`` (the runs of a repeat share its
    split and seed: the design is paired), averaged over the training-set shares: one value per dataset, width and
    repeat (the index). (Averaged, not pooled: a repeat's nested shares are not independent values.)"""
    sub = df[(df.loss == loss) & df.key.isin([model, baseline])]
    wide = sub.pivot(index=["dataset", "width", "share", "repeat"], columns="key", values="test_accuracy")
    if model not in wide or baseline not in wide:
        return pd.Series(dtype=float)
    differences = (wide[model] - wide[baseline]).dropna()
    return differences.groupby(level=["dataset", "width", "repeat"]).mean()


def cost_slopes(cdf: pd.DataFrame, column: str = "minimal_macs_per_sample") -> dict[int, float]:
    """Per state dimension: the least-squares slope of log(multiply-adds per sample) against log n. The default
    column is the recursions' count (the paper's algorithm, counted on the per-stage loop:
    ``experiment.recursion_macs``); ``macs_per_sample`` is this port's chunked layer, which trades multiply-adds for
    batched products and grows faster than n."""
    sss = cdf[cdf.layer != "dense"]
    return {
        int(s): float(np.polyfit(np.log(g.n), np.log(g[column]), 1)[0])
        for s, g in sss.groupby("state_dim")
        if g.n.nunique() > 1
    }


# "Beyond a size": the claim is measured at the largest n only when that n reaches this; a complexity measurement that
# stops below it (params/real_mnist measures n = 64 alone) does not test the claim.
FASTER_THAN_DENSE_FROM_N = 1024


def claim_values(df: pd.DataFrame, cdf: pd.DataFrame) -> dict[str, list[float]]:
    """The measured quantity of each claim of claims/03_sss_benchmarks.yaml that these runs (:func:`frame`) and
    complexity measurements (:func:`complexity_frame`) can measure, as its ``measure`` defines it."""
    out = {"sss.parameters": [float(v) for v in parameter_mismatches().values()]}
    for loss in LOSS_NAMES:
        for name, (model, baseline) in CLAIM_PAIRS.items():
            values = paired_differences(df, model, baseline, loss)
            if len(values):
                out[f"sss.{name}.{loss}"] = values.tolist()
            if name in PER_DATASET_CLAIMS and len(values):
                for dataset, per_dataset in values.groupby(level="dataset"):
                    out[f"sss.{name}.{loss}.{dataset}"] = per_dataset.tolist()
    slopes = cost_slopes(cdf)
    if slopes:
        out["sss.cost.linear"] = list(slopes.values())
        out["sss.cost.linear.chunked"] = list(cost_slopes(cdf, "macs_per_sample").values())
    cross = crossovers(cdf)
    if len(cross) and cross.largest_n.min() >= FASTER_THAN_DENSE_FROM_N:
        out["sss.cost.faster_than_dense"] = cross.time_ratio_at_largest_n.tolist()
    return out
