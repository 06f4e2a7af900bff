"""The τ notebook's explorer: pick a dataset, a time horizon T and a training mode, and see that configuration's test
accuracy over epochs (every seed) and how its step sizes moved (one seed, read from the run's stored tensors)."""

from __future__ import annotations

from ..report.explore import Control, Explorer, distinct
from ..report.plotting import plt
from ..runs.results import RunResult
from .analysis import curve_label, plot_taus


def mode_label(p: dict) -> str:
    """A configuration's name: the figure's curve name, and the regulariser and pruning when it has them."""
    extras = []
    if p["l1"]:
        extras.append(f"L1 {p['l1']:g}")
    if p["horizon"]:
        extras.append(f"horizon {p['horizon']:g}")
    if p["dependent_last"]:
        extras.append("dependent last τ")
    if p["pruning"]:
        extras.append("pruning")
    return curve_label(p) + (f" + {', '.join(extras)}" if extras else "")


def explorer(runs: list[RunResult]) -> Explorer:
    def chosen(dataset=None, T=None, mode=None, **_) -> list[RunResult]:
        return [
            r
            for r in runs
            if (dataset is None or r.params["dataset"] == dataset)
            and (T is None or r.params["T"] == T)
            and (mode is None or mode_label(r.params) == mode)
        ]

    # Trainable τ first (the paper's subject), the plain figure curves before their regularised and pruned variants.
    def mode_order(label: str):
        return ("variable" not in label, "+" in label, label)

    controls = [
        Control("dataset", lambda s: [(d, d) for d in distinct(r.params["dataset"] for r in runs)]),
        Control("T", lambda s: [(f"{T:g}", T) for T in distinct(r.params["T"] for r in chosen(s["dataset"]))]),
        Control(
            "mode",
            lambda s: [(m, m) for m in distinct((mode_label(r.params) for r in chosen(**s)), key=mode_order)],
        ),
        Control("seed", lambda s: [(str(x), x) for x in distinct(r.params["seed"] for r in chosen(**s))]),
    ]

    def draw(dataset, T, mode, seed):
        selected = sorted(chosen(dataset, T, mode), key=lambda r: r.params["seed"])
        run = next(r for r in selected if r.params["seed"] == seed)
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
        for r in selected:
            bold = r is run
            left.plot(
                r.result["test_accs"],
                color="C0" if bold else "0.6",
                lw=1.8 if bold else 0.9,
                label=f"seed {r.params['seed']}" if bold else None,
                zorder=3 if bold else 2,
            )
        left.set(title="test accuracy (grey: the other seeds)", xlabel="epoch", ylabel="test accuracy", ylim=(0, 1))
        left.legend(fontsize=8, loc="lower right")
        if "tau_tracking" in run.tensors():
            n_taus = plot_taus(right, run)
            for e in run.result["pruning_events"]:
                right.axvline(e["epoch"], color="black", ls="--", lw=0.8)
            right.axhline(T / n_taus, color="grey", lw=0.8, ls=":")
            right.legend(fontsize=7, ncol=2)
            right.set(title=f"τ after every step (seed {seed})", xlabel="epoch", ylabel="τ")
        else:
            right.text(0.5, 0.5, "no τ trajectory stored for this run", ha="center", va="center")
            right.set_axis_off()
        fig.suptitle(f"{mode} · {dataset}, T = {T:g} · final accuracy {run.result['final_test_acc']:.3f}", fontsize=10)
        return fig

    return Explorer("τ runs: accuracy and step sizes", controls, draw)
