"""Does the backbone's seed matter for the JEI-DNN claims? ``python -m repronets.jeidnn.backbone_seeds``

The ledger's unit for JEI-DNN is one training of the exits on one backbone (an exit seed). This trains the profile's
runs on several backbone seeds and, per paired claim, compares the spread between backbones with the spread between
exit seeds on one backbone (one-way ANOVA over backbone seeds): where the backbones differ, an interval over exit
seeds on one backbone holds that backbone only. Several backbones: minutes per seed at the quick profile.
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from ..runs import params
from ..runs.results import RunStore
from . import analysis, experiment


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m repronets.jeidnn.backbone_seeds", description=__doc__)
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--params-dir", default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="backbone seeds")
    args = parser.parse_args(argv)
    from scipy import stats

    p = params.load("04_dynamic_exits", args.profile, args.params_dir)
    store = RunStore()
    values = {}
    for seed in args.seeds:
        runs = experiment.run(dataclasses.replace(p, seed=seed), store)
        values[seed] = {k: v for k, v in analysis.claim_values(runs).items() if k in analysis.PAIRED_CLAIMS}
    for claim_id in analysis.PAIRED_CLAIMS:
        groups = [np.asarray(values[s].get(claim_id, []), dtype=float) for s in args.seeds]
        if any(len(g) < 2 for g in groups):
            continue
        within = float(np.sqrt(np.mean([g.var(ddof=1) for g in groups])))
        means = ", ".join(f"{g.mean():.4g}" for g in groups)
        p_value = stats.f_oneway(*groups).pvalue
        print(f"{claim_id}: mean per backbone seed {means}; sd within a backbone {within:.3g}; ANOVA p = {p_value:.3g}")


if __name__ == "__main__":
    main()
