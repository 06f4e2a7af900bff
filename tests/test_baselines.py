"""Notebook 00's baselines: seeds trained as one batch are each their sequential run."""

import dataclasses

import numpy as np
import pytest
from repronets.baselines import experiment as baselines
from repronets.runs import params
from repronets.runs.results import RunStore


def smoke(**kw):
    return dataclasses.replace(params.load("00_data_and_baselines", "smoke"), device="cpu", **kw)


# Why not bit-identical: vmap's batched matrix products sum in another order than one model's; over a few epochs of
# SGD the test losses agree to about 1e-7.
TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model", ["softmax", "mlp"])
def test_each_batched_seed_is_its_sequential_run(model):
    p = smoke(momentum=0.5, weight_decay=1e-3, epochs=3)
    runs = [baselines.run_spec(p, "digits", model, seed) for seed in (0, 1, 5)]
    together = baselines.train_members(p, runs)
    for run, b in zip(runs, together):
        s = baselines.train_one(p, run)
        assert b["batched_members"] == 3 and b["parameters"] == s["parameters"]
        assert b["epochs"]["epoch"] == s["epochs"]["epoch"] == [0, 1, 2, 3]
        for key in ("test_loss", "train_loss"):
            np.testing.assert_allclose(b["epochs"][key][-3:], s["epochs"][key][-3:], **TOL, err_msg=key)
        assert abs(b["final_test_acc"] - s["final_test_acc"]) <= 1 / s["test_samples"] + 1e-9
    assert len({b["final_test_loss"] for b in together}) == 3  # three seeds, three runs


def test_the_sweep_stores_batched_seeds_under_the_sequential_keys(tmp_path):
    p = smoke(epochs=1, seeds=[0, 1])
    alone = baselines.run(dataclasses.replace(p, batch_runs=False), RunStore(tmp_path / "a"))
    together = baselines.run(p, RunStore(tmp_path / "b"))
    assert [r.key for r in together] == [r.key for r in alone]
    assert all(r.meta["batch"]["members"] == len(p.seeds) for r in together)
    for a, b in zip(alone, together):
        assert a.result["final_test_loss"] == pytest.approx(b.result["final_test_loss"], rel=1e-5)


def test_a_non_finite_member_is_named():
    p = smoke(lr=1e30, epochs=2)
    runs = [baselines.run_spec(p, "digits", "mlp", seed) for seed in (0, 1)]
    with pytest.raises(FloatingPointError, match=r"run 'digits/mlp/seed\d' \(member \d of 2"):
        baselines.train_members(p, runs)
