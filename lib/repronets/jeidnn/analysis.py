"""Tables and figures of the dynamic-exits notebook, and the measurements of its claims ledger, from stored runs."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..report.plotting import plt, sns
from ..runs.results import RunResult
from . import reference

METHOD_NAMES = {"jeidnn": "JEI-DNN", "confidence": "confidence threshold", "boosted": "BoostNet", "l2w": "L2W-DEN"}
COST_NAMES = {"macs": "multiply-adds (torch.utils.flop_counter)", "original": "original counter"}
BASELINE_NAMES = tuple(METHOD_NAMES[k] for k in ("confidence", "boosted", "l2w"))
BASELINE_SUFFIX = " acc % at ≤ cost"  # the results table's column of each baseline: its name, then this


def by_dataset(runs: list[RunResult], datasets) -> dict[str, list[RunResult]]:
    """The runs of each dataset, in the order given."""
    return {d: [r for r in runs if r.params["dataset"] == d] for d in datasets}


def exit_seed(r: RunResult) -> int:
    """The seed of a run's exit training (runs stored before exit seeds existed used the backbone's)."""
    return r.params.get("exit_seed", r.params["seed"])


def first_exit_seed(runs: list[RunResult]) -> list[RunResult]:
    """The runs of the smallest exit seed: the figures and tables show one seed's runs, the ledger all of them."""
    seeds = {exit_seed(r) for r in runs}
    return [r for r in runs if exit_seed(r) == min(seeds)] if seeds else runs


def gate_spread_table(runs: list[RunResult]) -> pd.DataFrame:
    """Per JEI-DNN run (λ, exit seed): each gate's output sd across the test samples, and where gates that ignore
    the sample (each at its mean output) would send every sample, beside the observed exit distribution's mode and
    its share: an sd near 0 with the mode at the constant gates' exit holding most samples is a gate that does not
    read the sample."""
    rows = []
    for r in sorted(jeidnn_runs(runs), key=lambda r: (exit_seed(r), r.params["tradeoff"])):
        spread = r.result.get("gate_spread")
        if spread is None:
            continue
        dist = np.asarray(r.result["exit_distribution"])
        row = {"λ": r.params["tradeoff"], "exit seed": exit_seed(r)}
        row.update({f"sd g{l}": round(v, 3) for l, v in enumerate(spread["gate_sd"])})
        row["constant gates' exit"] = spread["constant_gate_exit"]
        row["modal exit"] = int(dist.argmax())
        row["share at mode"] = round(float(dist.max()), 3)
        rows.append(row)
    return pd.DataFrame(rows)


def jeidnn_runs(runs: list[RunResult]) -> list[RunResult]:
    """JEI-DNN's runs (one per λ), without the baselines'."""
    return [r for r in runs if r.params["method"] == "jeidnn"]


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


def method_colours():
    return {
        "JEI-DNN": sns.color_palette("colorblind")[3],
        "confidence threshold": sns.color_palette("colorblind")[0],
        "BoostNet": sns.color_palette("colorblind")[2],
        "L2W-DEN": sns.color_palette("colorblind")[4],
    }


def _draw(ax, df, y: str, cost: str, sd: str | None = None):
    colours = method_colours()
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
    jei = sorted(jeidnn_runs(runs), key=lambda r: r.params["tradeoff"])
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


def comparison(df: pd.DataFrame, dataset: str, arch: str | None = None) -> pd.DataFrame:
    """The numbers of the results table, per JEI-DNN λ (``tradeoff``): its fold mean and sd of accuracy, its cost as
    a fraction of the full cost in both conventions, ECE and gated set size (from :func:`frame`); for each baseline
    (a column named by it) its best accuracy among the budget levels that cost no more multiply-adds than the JEI-DNN
    point, NaN where none does (the comparison of docs/papers/jeidnn.md §3.4). With the backbone's ``arch``, the
    original's stored numbers of that architecture for the same λ (:mod:`.reference`; NaN where there is none)."""
    rows = []
    jei = df[df.key == "jeidnn"].sort_values("setting")
    stored = {r.tradeoff: r for r in reference.RESULTS.get(arch, {}).get(dataset, ())}
    baselines = [m for m in BASELINE_NAMES if m in set(df.method)]
    for _, r in jei.iterrows():
        row = {
            "tradeoff": r.setting,
            "acc": r.acc,
            "acc_sd": r.acc_sd,
            "cost_macs_frac": r.cost_macs_frac,
            "cost_original_frac": r.cost_original_frac,
            "ece": r.ece,
            "gated_size": r.gated_size,
        }
        for method in baselines:
            b = df[(df.method == method) & (df.cost_macs_frac <= r.cost_macs_frac + 1e-9)]
            row[method] = b.acc.max() if len(b) else np.nan
        if stored:
            ref = stored.get(r.setting)
            row.update(
                {
                    "original_acc": ref.acc if ref else np.nan,
                    "original_acc_sd": ref.acc_sd if ref and ref.acc_sd is not None else np.nan,
                    "original_cost": ref.cost if ref else np.nan,
                    "original_ece": ref.ece if ref else np.nan,
                }
            )
        rows.append(row)
    return pd.DataFrame(rows)


def _baselines(numbers: pd.DataFrame) -> list[str]:
    return [m for m in BASELINE_NAMES if m in numbers.columns]


def _display(r: pd.Series, baselines: list[str], with_reference: bool) -> dict:
    """One row of :func:`comparison` as the results table shows it. The rounding is Python's on JEI-DNN's numbers
    and NumPy's on the baselines' maxima, as the committed tables were made (they differ on exact ties)."""
    row = {
        "λ": float(r.tradeoff),
        "acc %": f"{100 * r.acc:.2f} ± {100 * r.acc_sd:.2f}",
        "cost % (MACs)": round(100 * float(r.cost_macs_frac), 1),
        "cost % (orig. counter)": round(100 * float(r.cost_original_frac), 1),
        "ECE": round(float(r.ece), 1),
        "set size (gated)": round(float(r.gated_size), 2),
    }
    for method in baselines:
        row[method + BASELINE_SUFFIX] = np.round(100 * np.float64(r[method]), 2)
    if with_reference:
        found = not np.isnan(r.original_acc)
        sd = f" ± {r.original_acc_sd:.2f}" if not np.isnan(r.original_acc_sd) else ""
        row.update(
            {
                "original acc %": f"{r.original_acc:.2f}{sd}" if found else "–",
                "original cost %": r.original_cost,
                "original ECE": r.original_ece,
            }
        )
    return row


def results_table(numbers: pd.DataFrame) -> pd.DataFrame:
    """Per JEI-DNN λ: accuracy ± fold sd, cost (% of the full cost) in both conventions, ECE, gated set size; each
    baseline's best accuracy at no more cost; the original's stored numbers where :func:`comparison` has them."""
    with_reference = "original_acc" in numbers.columns
    return pd.DataFrame([_display(r, _baselines(numbers), with_reference) for _, r in numbers.iterrows()])


def reading(numbers: pd.DataFrame, df: pd.DataFrame, dataset: str, backbone_acc: float) -> list[str]:
    """The notebook's summary lines: per λ, JEI-DNN against each baseline at no more cost; the λ at which JEI-DNN
    is above every baseline that reaches its cost; the ECE ranges. Accuracies are compared as the table shows them
    (two decimals of %): fold means of the same number of correct samples differ in their last bits."""
    baselines = _baselines(numbers)
    lines = []
    wins = comparable = 0
    for _, r in numbers.iterrows():
        shown = _display(r, baselines, with_reference=False)
        ours = round(100 * float(r.acc), 2)
        others = {m: shown[m + BASELINE_SUFFIX] for m in baselines}
        lines.append(
            f"{dataset}, λ={shown['λ']:g}: JEI-DNN {shown['acc %']} at {shown['cost % (MACs)']}% of the MACs; "
            "baselines at no more cost: " + ", ".join(f"{m} {v}" for m, v in others.items())
        )
        reached = [v for v in others.values() if not np.isnan(v)]  # NaN: no budget level that cheap
        comparable += bool(reached)
        wins += bool(reached) and all(v < ours for v in reached)
    jei, rest = df[df.key == "jeidnn"], df[df.key != "jeidnn"]
    lines.append(
        f"{dataset}: JEI-DNN above every baseline at no more cost for {wins} of the {comparable} λ where a baseline "
        f"reaches its cost ({len(numbers)} λ in all); backbone alone {backbone_acc:.4f}"
    )
    lines.append(
        f"{dataset}: ECE JEI-DNN {jei.ece.min():.1f}–{jei.ece.max():.1f}; baselines "
        f"{rest.ece.min():.1f}–{rest.ece.max():.1f}"
    )
    return lines


def costs_table(runs: list[RunResult]) -> pd.DataFrame:
    """Cumulative cost of each exit in both conventions (JEI-DNN's: ICs and gates included)."""
    r = next(iter(jeidnn_runs(runs)), None)
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


# ---------------------------------------------------------------- the claims ledger (claims/04_dynamic_exits.yaml)

CLAIM_ALPHA = 0.05  # the conformal claims' α
# The original's stored results that the claim file states, per (architecture, dataset): the λ of its stored runs
STORED_CLAIMS = {
    (arch, d): tuple(r.tradeoff for r in results)
    for arch, by_dataset in reference.RESULTS.items()
    for d, results in by_dataset.items()
}
# The architecture's part of a stored claim's id: T2T-ViT-7's claims (the paper profile's) name none.
_ARCH_IN_ID = {"t2t_vit_7": "", "t2t_vit_14": "t2t14."}


def _cost_fraction(metrics_: dict, costs: dict) -> float:
    """The mean multiply-adds per sample over the full cost, as :func:`frame` computes ``cost_macs_frac``."""
    return metrics_["cost_macs"]["mean"] / costs["macs"][-1]


def matched_level(jei: RunResult, baseline: RunResult, on: str = "validation") -> dict | None:
    """The baseline's budget level that the claims compare with a JEI-DNN run: the most accurate among the levels
    that cost no more multiply-adds (the first on ties). ``on="validation"`` (the claims): accuracy and cost read on
    validation samples (the baseline's held-out half, JEI-DNN's validation set), so the test folds that the
    comparison is then made on play no part in choosing it. ``on="test"``: read on the test folds' means, as the
    paper's results table chooses (:func:`comparison`): a selection on the test data, kept to show that table.
    None where no level is that cheap."""
    if on not in ("validation", "test"):
        raise ValueError(f"on must be 'validation' or 'test', got {on!r}")
    if on == "validation":
        if "validation" not in jei.result:
            raise ValueError("the run predates validation summaries (jeidnn CODE_VERSION 2): run it again")
        limit = jei.result["validation"]["cost_macs"] / jei.result["exit_costs"]["macs"][-1] + 1e-9
        full = baseline.result["exit_costs"]["macs"][-1]  # fractions of each model's own full cost (its gates)
        cheap = [lv for lv in baseline.result["levels"] if lv["validation"]["cost_macs"] / full <= limit]
        return max(cheap, key=lambda lv: lv["validation"]["acc"], default=None)
    limit = _cost_fraction(jei.result["metrics"], jei.result["exit_costs"]) + 1e-9
    cheap = [
        lv for lv in baseline.result["levels"] if _cost_fraction(lv["metrics"], baseline.result["exit_costs"]) <= limit
    ]
    return max(cheap, key=lambda lv: lv["metrics"]["acc"]["mean"], default=None)


def _folds(metrics_: dict, key: str) -> np.ndarray:
    return np.asarray(metrics_[key]["folds"], dtype=float)


def stored_cost_difference(dataset: str = "cifar10") -> float:
    """The largest absolute difference, in 10⁶ operations, between T2T-ViT-7's cumulative exit costs on ``dataset``
    (its image size and classes) in the original counter's convention (:func:`repronets.jeidnn.exit_costs`, gates
    included) and the stored ones (:data:`.reference.COSTS`, rounded to 10³ operations: a difference up to 0.0005
    is their rounding). Builds the model: about 2 s on one core at 224 px."""
    from .cost import exit_costs
    from .dynamic import DynamicNet
    from .t2t_vit import t2t_vit_7

    stored = reference.COSTS[dataset]
    model = DynamicNet(t2t_vit_7(stored.num_classes, img_size=stored.image_size))
    ours = np.asarray(exit_costs(model, (3, stored.image_size, stored.image_size))["original"]) / 1e6
    return float(np.max(np.abs(ours - np.asarray(stored.cumulative))))


def stored_claim(kind: str, dataset: str, tradeoff: float, arch: str = "t2t_vit_7") -> str:
    """The id of the claim on one stored run of the original: its accuracy (``kind`` "acc") or cost ("cost"), e.g.
    ``jeidnn.stored.cifar10.lambda0.1`` (T2T-ViT-7) or ``jeidnn.stored_cost.t2t14.cifar100.lambda1.5``."""
    return f"jeidnn.stored{'' if kind == 'acc' else '_cost'}.{_ARCH_IN_ID[arch]}{dataset}.lambda{tradeoff:g}"


PAIRED_CLAIMS = (
    "jeidnn.tradeoff.confidence",
    "jeidnn.tradeoff.boosted",
    "jeidnn.tradeoff.l2w",
    "jeidnn.calibration",
    "jeidnn.confidence.thresholding_overconfident",
    "jeidnn.conformal.smaller_sets",
    "jeidnn.conformal.coverage",
)


def paired_differences(runs: list[RunResult]) -> pd.DataFrame:
    """Per JEI-DNN run (dataset, backbone seed, exit seed, λ) and claim of :data:`PAIRED_CLAIMS`: the claim's
    quantity averaged over the test folds. A paired claim compares JEI-DNN at one λ with the baseline's
    :func:`matched_level` (chosen on validation) trained with the same exit seed on the same folds (they are
    drawn from the backbone's seed); rows only where the baseline reaches JEI-DNN's cost."""
    rows = []
    sizes, misses = f"gated_size@{CLAIM_ALPHA:g}", f"gated_miscoverage@{CLAIM_ALPHA:g}"
    for j in jeidnn_runs(runs):
        unit = {"dataset": j.params["dataset"], "seed": j.params["seed"], "exit seed": exit_seed(j)}
        unit["λ"] = j.params["tradeoff"]
        m = j.result["metrics"]

        def add(claim_id: str, folds: np.ndarray, unit=unit) -> None:
            rows.append({**unit, "claim": claim_id, "value": float(np.mean(folds))})

        if misses in m:
            add("jeidnn.conformal.coverage", _folds(m, misses))
        same = [r for r in runs if r.params["method"] != "jeidnn" and exit_seed(r) == unit["exit seed"]]
        for b in (r for r in same if (r.params["dataset"], r.params["seed"]) == (unit["dataset"], unit["seed"])):
            level = matched_level(j, b)
            if level is None:
                continue
            lm, method = level["metrics"], b.params["method"]
            add(f"jeidnn.tradeoff.{method}", _folds(m, "acc") - _folds(lm, "acc"))
            if method == "confidence":
                add("jeidnn.calibration", _folds(lm, "ece") - _folds(m, "ece"))
                if "overconfidence" in lm:
                    add("jeidnn.confidence.thresholding_overconfident", _folds(lm, "overconfidence"))
                if sizes in m:
                    add("jeidnn.conformal.smaller_sets", _folds(lm, sizes) - _folds(m, sizes))
    return pd.DataFrame(rows, columns=["dataset", "seed", "exit seed", "λ", "claim", "value"])


def per_lambda_table(differences: pd.DataFrame) -> pd.DataFrame:
    """Each paired claim at each λ on its own, over the exit seeds (the units), with the ledger's rules
    (:func:`repronets.report.claims.decide`, against the claim file's comparison): where a claim holds at some λ and
    fails
    at others, this says so."""
    from ..report import claims

    specs = claims.ledger_for("04_dynamic_exits", "paper").claims
    rows = []
    for (dataset, claim_id, tradeoff), g in differences.groupby(["dataset", "claim", "λ"], sort=True):
        spec = specs[claim_id]
        units = g.groupby(["seed", "exit seed"]).value.mean()
        d = claims.decide(units.tolist(), spec.comparison, margin=spec.margin, resolution=spec.resolution)
        shown = claims.formatted_row({**d.as_row(), "exact": False})
        rows.append(
            {"dataset": dataset, "claim": claim_id, "λ": tradeoff, "test": claims._comparison_text(spec)}
            | {k: shown[k] for k in ("n", "mean", "interval", "verdict")}
        )
    return pd.DataFrame(rows)


def claim_values(runs: list[RunResult], inference: dict[str, dict] | None = None) -> dict[str, list[float]]:
    """The measured quantity of each claim of claims/04_dynamic_exits.yaml that the runs measure, as its ``measure``
    states. The unit of the paired claims is the trained exits (one exit seed on one backbone): per unit, the
    fold-mean quantity of :func:`paired_differences` averaged over the λ where the baseline reaches JEI-DNN's cost;
    folds and λ are measurements within a unit, not units. ``inference``: per dataset,
    :func:`experiment.measure_inference_time`'s result, whose time ratios measure ``jeidnn.early_exit.saves_time``
    (the runs store no inference times)."""
    out: dict[str, list[float]] = {}
    differences = paired_differences(runs)
    for claim_id, g in differences.groupby("claim", sort=False):
        out[claim_id] = g.groupby(["dataset", "seed", "exit seed"]).value.mean().tolist()
    for j in jeidnn_runs(runs):
        dataset, arch, tradeoff, m = j.params["dataset"], j.params["arch"], j.params["tradeoff"], j.result["metrics"]
        if tradeoff in STORED_CLAIMS.get((arch, dataset), ()):
            cost_percent = 100 * m["cost_original"]["mean"] / j.result["exit_costs"]["original"][-1]
            out.setdefault(stored_claim("acc", dataset, tradeoff, arch), []).append(100 * m["acc"]["mean"])
            out.setdefault(stored_claim("cost", dataset, tradeoff, arch), []).append(cost_percent)
    out["jeidnn.costs.stored"] = [stored_cost_difference("cifar10")]
    for dataset in ("cifar100", "svhn"):
        out[f"jeidnn.costs.stored.{dataset}"] = [stored_cost_difference(dataset)]
    for measured in (inference or {}).values():
        if measured:
            out.setdefault("jeidnn.early_exit.saves_time", []).extend(float(v) for v in measured["ratios"])
    return out


def inference_line(dataset: str, measured: dict) -> str:
    """One printed line for :func:`experiment.measure_inference_time`'s result."""
    if not measured:
        return f"{dataset}: no JEI-DNN run to time"
    return (
        f"{dataset}: JEI-DNN at λ = {measured['tradeoff']:g} (mean exit {measured['mean_exit']:.2f}; counted cost "
        f"{measured['counted_cost_ratio']:.3f} of the backbone's) takes {np.median(measured['ratios']):.3f} of the "
        f"backbone's wall time (median of {len(measured['ratios'])} repeats; {measured['samples']} images at batch "
        f"{measured['batch']}, {measured['threads']} thread(s))"
    )
