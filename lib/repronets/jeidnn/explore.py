"""The JEI-DNN notebook's explorer: pick a dataset, a method and its setting (λ for JEI-DNN, a budget level for a
thresholded baseline), and see where that model's test samples exit, and its accuracy and calibration against cost
beside every other point of the sweep. Everything comes from the stored fold metrics of the first exit seed."""

from __future__ import annotations

import numpy as np

from ..report.explore import Control, Explorer, distinct
from ..report.plotting import plt
from ..runs.results import RunResult
from .analysis import METHOD_NAMES, first_exit_seed, frame, jeidnn_runs, method_colours


def explorer(runs: list[RunResult], alpha: float) -> Explorer:
    """``alpha``: the conformal level whose gated set size is reported (the notebook's largest)."""
    runs = first_exit_seed(runs)
    datasets = {r.params["dataset"] for r in runs}
    frames = {d: frame([r for r in runs if r.params["dataset"] == d], alpha) for d in datasets}
    oracle = {
        (r.params["dataset"], r.params["tradeoff"]): r.result["oracle_exit_distribution"] for r in jeidnn_runs(runs)
    }

    def rows(dataset, method=None, **_):
        df = frames[dataset]
        return df if method is None else df[df.key == method]

    order = list(METHOD_NAMES)
    controls = [
        Control("dataset", lambda s: [(d, d) for d in sorted(frames)]),
        Control(
            "method",
            lambda s: [(METHOD_NAMES[k], k) for k in distinct(rows(s["dataset"]).key, key=order.index)],
        ),
        Control(
            "setting",
            lambda s: [
                (f"λ = {v:g}" if s["method"] == "jeidnn" else f"budget {v:g}", v) for v in distinct(rows(**s).setting)
            ],
            slider=True,
        ),
    ]

    def draw(dataset, method, setting):
        df = rows(dataset)
        point = df[(df.key == method) & (df.setting == setting)].iloc[0]
        colours = method_colours()
        fig, (exits_ax, acc_ax, ece_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
        exits = np.asarray(point.exits)
        x = np.arange(len(exits))
        exits_ax.bar(x - 0.2, exits, width=0.4, color=colours[point.method], label=point.method)
        if method == "jeidnn":
            exits_ax.bar(x + 0.2, oracle[(dataset, setting)], width=0.4, color="0.75", hatch="//", label="oracle")
        exits_ax.set_xticks(x, [str(i) if i < len(x) - 1 else "head" for i in x], fontsize=7)
        exits_ax.set(title="where test samples exit", xlabel="exit", ylabel="share of test samples", ylim=(0, 1))
        exits_ax.legend(fontsize=7)
        for ax, y, name in ((acc_ax, "acc", "test accuracy"), (ece_ax, "ece", "ECE ×100")):
            for m, g in df.groupby("method", sort=False):
                g = g.sort_values("cost_macs_frac")
                style = {"ls": "none", "marker": "o"} if m == "JEI-DNN" else {"marker": ".", "lw": 1}
                ax.plot(g.cost_macs_frac, g[y], color=colours[m], alpha=0.45, label=m, **style)
            ax.scatter(point.cost_macs_frac, point[y], s=140, facecolors="none", edgecolors="black", lw=1.5, zorder=5)
            ax.set(title=f"{name} against cost", xlabel="mean multiply-adds / full cost", ylabel=name)
        acc_ax.legend(fontsize=7)
        fig.suptitle(
            f"{dataset} · {point.method}, {'λ' if method == 'jeidnn' else 'budget'} {setting:g}: "
            f"accuracy {point.acc:.4f} ± {point.acc_sd:.4f}, cost {point.cost_macs_frac:.3f} of the full model, "
            f"ECE×100 {point.ece:.2f}, gated set size {point.gated_size:.2f} at α = {alpha:g} (fold means ± sd)",
            fontsize=9,
        )
        return fig

    # Start at the middle of the λ sweep (λ = 0 alone ignores cost).
    lambdas = distinct(r.params["tradeoff"] for r in jeidnn_runs(runs))
    initial = {"method": "jeidnn", "setting": lambdas[len(lambdas) // 2]} if lambdas else {}
    return Explorer("JEI-DNN: λ or budget → exits, accuracy, cost, calibration", controls, draw, initial)
