"""Notebook 00's explorer: every seed's training and test curves of a baseline."""

from __future__ import annotations

from ..runs.results import RunResult


def explorer(runs: list[RunResult]):
    """Notebook 00's explorer (:mod:`repronets.report.explore`): pick a dataset and a baseline, see every seed's
    training
    and test curves, read from the stored runs (a gap between them is over-fitting; a curve still rising, too few
    epochs)."""
    from ..report.explore import Control, Explorer, distinct
    from ..report.plotting import plt

    def chosen(dataset=None, model=None, **_):
        return [r for r in runs if dataset in (None, r.params["dataset"]) and model in (None, r.params["model"])]

    controls = [
        Control("dataset", lambda s: [(d, d) for d in distinct(r.params["dataset"] for r in runs)]),
        Control("model", lambda s: [(m, m) for m in distinct(r.params["model"] for r in chosen(**s))]),
    ]

    def draw(dataset, model):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
        for i, r in enumerate(sorted(chosen(dataset, model), key=lambda r: r.params["seed"])):
            epochs = r.result["epochs"]
            for ax, metric in zip(axes, ("acc", "loss")):
                trained = epochs[f"train_{metric}"]  # none at epoch 0, before training
                ax.plot(epochs["epoch"][-len(trained) :], trained, color=f"C{i}", ls="--", lw=1)
                ax.plot(
                    epochs["epoch"], epochs[f"test_{metric}"], color=f"C{i}", lw=1.4, label=f"seed {r.params['seed']}"
                )
        for ax, metric in zip(axes, ("accuracy", "loss")):
            ax.set(title=f"{metric} (solid: test, dashed: training)", xlabel="epoch", ylabel=metric)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"{model} on {dataset}", fontsize=10)
        return fig

    return Explorer("Baselines: every seed's curves", controls, draw)
