"""The ContinuousNet notebook's explorer: pick a trained model, an evaluation scheme and a number of steps per ODE
block, and see the stored manifestation sweep around that point (every seed) and how each scheme does at that
step count. The sweeps were measured when the runs were made; the explorer only reads them."""

from __future__ import annotations

import numpy as np

from ..report.explore import Control, Explorer, distinct
from ..report.plotting import plt
from ..runs.results import RunResult
from .analysis import SCHEME_NAMES, manifestation_frame, ode_runs


def explorer(runs: list[RunResult]) -> Explorer:
    df = manifestation_frame(ode_runs(runs))
    if df.empty:
        raise ValueError("no ContinuousNet run with a manifestation sweep among the runs given")

    def rows(trained=None, scheme=None, **_):
        sub = df
        if trained is not None:
            sub = sub[sub.trained == trained]
        if scheme is not None:
            sub = sub[sub["evaluated with"] == scheme]
        return sub

    controls = [
        Control("trained", lambda s: [(t, t) for t in distinct(df.trained)]),
        Control(
            "scheme",
            # the training scheme first: the left panel of the notebook's figure
            lambda s: [
                (SCHEME_NAMES[x], x)
                for x in distinct(
                    rows(s["trained"])["evaluated with"],
                    key=lambda x: (x != rows(s["trained"])["trained scheme"].iloc[0], x),
                )
            ],
        ),
        Control("steps", lambda s: [(str(n), n) for n in distinct(int(n) for n in rows(**s).steps)], slider=True),
    ]

    def draw(trained, scheme, steps):
        model = rows(trained)
        trained_steps = int(model["trained steps"].iloc[0])
        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), gridspec_kw={"width_ratios": [3, 2]})
        for seed, g in rows(trained, scheme).groupby("seed"):
            g = g.sort_values("steps")
            left.plot(g.steps, g.test_acc, marker="o", ms=3, lw=1.2, label=f"seed {seed}")
        at = rows(trained, scheme)
        at = at[at.steps == steps]
        left.scatter([steps] * len(at), at.test_acc, s=110, facecolors="none", edgecolors="black", zorder=5)
        left.axvline(trained_steps, color="grey", ls=":", lw=0.9, label=f"trained with {trained_steps}")
        left.set_xscale("log", base=2)
        left.xaxis.set_major_formatter(plt.matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        left.set(title=f"evaluated with {SCHEME_NAMES[scheme]}", xlabel="steps per ODE block", ylabel="test accuracy")
        left.legend(fontsize=7)
        at_steps = model[model.steps == steps]
        schemes = distinct(at_steps["evaluated with"])
        for i, x in enumerate(schemes):
            values = at_steps[at_steps["evaluated with"] == x].test_acc.to_numpy()
            right.bar(i, values.mean(), color="C1" if x == scheme else "0.7", width=0.6)
            right.scatter(np.full(len(values), i), values, color="black", s=10, zorder=3)
        right.set_xticks(range(len(schemes)), [SCHEME_NAMES[x] for x in schemes], fontsize=8)
        right.set(title=f"every scheme at {steps} step(s)", ylabel="test accuracy", ylim=(0, 1))
        mean = at.test_acc.mean()
        fig.suptitle(f"{trained}: {SCHEME_NAMES[scheme]} with {steps} step(s) → {mean:.3f} (mean over seeds)")
        return fig

    # Start where the paper's claim is: an RK4-trained model, at the step count it was trained with.
    rk4 = df[df["trained scheme"] == "rk4_classic"]
    start = (rk4 if len(rk4) else df).sort_values("trained").iloc[-1]
    initial = {"trained": start.trained, "steps": int(start["trained steps"])}
    return Explorer("ContinuousNet manifestation: trained model × scheme × steps", controls, draw, initial)
