"""The SSS notebook's explorer: pick a training-set share and a hidden layer, and see the distribution of its repeats
(final test accuracy, beside the dense and rank-1 layers' repeats at the same share) and each repeat's training
loss, where runs that stall under the double softmax show as curves that stop falling."""

from __future__ import annotations

import numpy as np

from ..report.explore import Control, Explorer, distinct
from ..report.plotting import plt
from ..runs.results import RunResult
from .analysis import LOSS_NAMES, double_softmax_floor, model_label, model_order
from .models import state_dim


def explorer(runs: list[RunResult]) -> Explorer:
    def chosen(dataset=None, width=None, loss=None, share=None, model=None, **_) -> list[RunResult]:
        wanted = {"dataset": dataset, "width": width, "loss": loss, "share": share, "model": model}
        return [r for r in runs if all(v is None or r.params[k] == v for k, v in wanted.items())]

    controls = [
        Control("dataset", lambda s: [(d, d) for d in distinct(r.params["dataset"] for r in runs)]),
        Control("width", lambda s: [(str(w), w) for w in distinct(r.params["width"] for r in chosen(**s))]),
        Control("loss", lambda s: [(LOSS_NAMES[x], x) for x in distinct(r.params["loss"] for r in chosen(**s))]),
        Control("share", lambda s: [(f"{x:g}", x) for x in distinct(r.params["share"] for r in chosen(**s))], True),
        Control("model", lambda s: [(model_label(k), k) for k in model_order(r.params["model"] for r in chosen(**s))]),
    ]

    def draw(dataset, width, loss, share, model):
        here = chosen(dataset, width, loss, share)
        keys = model_order(r.params["model"] for r in here)
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
        rng = np.random.default_rng(0)  # fixed jitter: the same selection draws the same picture
        for i, k in enumerate(keys):
            acc = np.array([r.result["test_accuracy"] for r in here if r.params["model"] == k])
            colour = "C3" if k == model else "0.55"
            left.scatter(i + rng.uniform(-0.15, 0.15, len(acc)), acc, s=14, color=colour, zorder=3)
            left.hlines(np.median(acc), i - 0.3, i + 0.3, color=colour, lw=1.5)
        left.set_xticks(range(len(keys)), [model_label(k) for k in keys], fontsize=8, rotation=30)
        left.set(title="final test accuracy of each repeat (bar: median)", ylabel="test accuracy")
        mine = sorted((r for r in here if r.params["model"] == model), key=lambda r: r.params["repeat"])
        for r in mine:
            right.plot(r.result["training_loss_history"], lw=1, alpha=0.8)
        if loss == "double_softmax":
            floor = double_softmax_floor(10)  # every dataset of the paper (and the digits) has ten classes
            right.axhline(floor, color="black", ls=":", lw=0.9, label=f"double-softmax floor {floor:.4f}")
            right.legend(fontsize=7)
        right.set(title=f"{model_label(model)}: training loss, {len(mine)} repeats", xlabel="epoch", ylabel="loss")
        accs = [r.result["test_accuracy"] for r in mine]
        fig.suptitle(
            f"{dataset}, width {width}, {LOSS_NAMES[loss]}, share {share:g}: {model_label(model)} "
            f"median {np.median(accs):.3f}, range [{min(accs):.3f}, {max(accs):.3f}]",
            fontsize=10,
        )
        return fig

    # Start on an SSS layer (the paper's subject) at the largest share.
    sss = [k for k in model_order(r.params["model"] for r in runs) if state_dim(k)]
    initial = {"share": max(r.params["share"] for r in runs), "model": sss[0] if sss else None}
    return Explorer("SSS layers: the repeats of a share × hidden layer", controls, draw, initial)
