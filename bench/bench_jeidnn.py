"""Paper 4: does early exit save wall time, not only counted multiply-adds? Inference on the CPU of the quick
profile's trained JEI-DNN at two λ (the most and the least frugal of its sweep) against the full backbone, on the
same 256 digits test images, at batch 1 (one sample after another) and at batch 64 (a batch that mixes exits:
:meth:`DynamicNet.infer` drops exited samples, so later blocks run on fewer). The note gives the counted cost ratio
(mean multiply-adds per sample / the backbone's) for the same images.

Uses the quick profile's runs from the run store (computed first if absent: about two minutes)."""

import torch
from repronets.jeidnn import cost, experiment
from repronets.runs import params
from repronets.runs.results import RunStore
from runner import Suite

SAMPLES = 256


def _setup():
    quick = params.load("04_dynamic_exits", "quick")
    p = experiment.setting(quick, quick.datasets[0])
    store = RunStore()
    runs = [
        r for r in experiment.run(quick, store) if r.params["method"] == "jeidnn" and r.params["dataset"] == p.dataset
    ]
    tr, val, test = experiment.splits(p)
    backbone, _ = experiment.load_backbone(p, store, (tr, val, test))
    x = experiment.original_preprocess(p, tr)(test.x[:SAMPLES], training=False)  # normalised as in training
    models = {lam: (m, m.infer(x)[1]) for lam, m in experiment.trained_exits(runs, backbone).items()}
    by_cost = sorted(models.items(), key=lambda kv: kv[1][1].float().mean())
    chosen = [by_cost[0], by_cost[-1]] if len(by_cost) > 1 else by_cost
    costs = cost.exit_costs(chosen[0][1][0], tuple(x.shape[1:]))
    return backbone.eval(), chosen, costs, x


def suites():
    backbone, chosen, costs, x = _setup()
    full = costs["macs"][-1]
    out = []
    for batch in (1, 64):
        s = Suite(
            f"jeidnn_inference_b{batch}",
            f"inference of {SAMPLES} digits test images at batch {batch}, quick-profile backbone (CPU)",
            unit=f"{SAMPLES} samples",
            min_run_time=2.0,
        )
        chunks = x.split(batch)

        def backbone_pass(chunks=chunks):
            with torch.no_grad():
                for c in chunks:
                    backbone(c)

        s.add("full backbone", backbone_pass, baseline=True, note="counted cost 1")
        for lam, (model, exits) in chosen:

            def dynamic_pass(model=model, chunks=chunks):
                for c in chunks:
                    model.infer(c)

            ratio = cost.mean_cost(exits, costs["macs"]) / full
            s.add(
                f"JEI-DNN λ={lam:g}",
                dynamic_pass,
                note=f"counted cost {ratio:.3f}; mean exit {exits.float().mean():.2f}",
            )
        out.append(s)
    return out


SUITES = [lambda i=i: suites()[i] for i in range(2)]
