"""Paper 2: the checks of docs/papers/continuousnet.md §9 and the issue's list."""

import dataclasses
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from repronets.continuous import analysis
from repronets.continuous import experiment as E
from repronets.continuous.blocks import ODEBlock, ResidualFunction, manifestation, ode_blocks, refine
from repronets.continuous.integrators import SCHEMES as SCHEME_REGISTRY
from repronets.continuous.integrators import odeint, stage_pieces
from repronets.continuous.models import MODELS, ContinuousNet, continuousnet, resnet_v2, wide_continuousnet, wide_resnet
from repronets.continuous.reference import PUBLISHED
from repronets.continuous.training import SCHEDULE_CONVENTIONS, Refinement, lr_milestones
from repronets.core import data, numerics, train
from repronets.core.counting import count_parameters
from repronets.core.transforms import random_crop
from repronets.report import claims
from repronets.runs import params
from repronets.runs.results import RunResult

SCHEMES = ["euler", "midpoint", "rk4_classic", "rk4_38"]


def errors(f, x0, exact, schemes, ns, pieces=1, legacy=False):
    x0 = torch.tensor(x0, dtype=torch.float64)
    return {s: [abs(float(odeint(f, x0, n, pieces, s, legacy)) - exact) for n in ns] for s in schemes}


def orders(errs):
    return [math.log2(a / b) for a, b in zip(errs, errs[1:])]


# ---------------------------------------------------------------- integrator


def test_convergence_orders_on_a_linear_ode():
    errs = errors(lambda x, k: -x, 1.0, math.exp(-1), SCHEMES, [1, 2, 4, 8, 16])
    assert errs["euler"][0] == pytest.approx(3.679e-1, rel=1e-3) and errs["midpoint"][1] == pytest.approx(
        2.275e-2, rel=1e-3
    )
    assert errs["rk4_classic"][4] == pytest.approx(4.928e-8, rel=1e-3)
    for scheme, expected in (("euler", 1), ("midpoint", 2), ("rk4_classic", 4), ("rk4_38", 4)):
        assert orders(errs[scheme])[-1] == pytest.approx(expected, abs=0.1)


def test_piecewise_constant_weights_keep_rk4_at_order_four_and_the_legacy_option_drops_it():
    a = [1.0, -2.0]  # dx/dt = a_piece(t)·x on two pieces; x(1) = e^{-1/2}
    exact_errs = errors(
        lambda x, k: a[k] * x, 1.0, math.exp(-0.5), ["rk4_classic", "euler", "midpoint"], [2, 4, 8, 16], 2
    )
    legacy_errs = errors(
        lambda x, k: a[k] * x, 1.0, math.exp(-0.5), ["rk4_classic", "euler", "midpoint"], [2, 4, 8, 16], 2, legacy=True
    )
    assert [round(e, 8) for e in exact_errs["rk4_classic"]] == pytest.approx(
        [1.16e-2, 4.72e-4, 2.38e-5, 1.33e-6], rel=0.02
    )
    assert orders(exact_errs["rk4_classic"])[-1] == pytest.approx(4, abs=0.2)
    assert legacy_errs["rk4_classic"] == pytest.approx([1.44e-1, 7.55e-2, 3.79e-2, 1.90e-2], rel=0.02)
    assert orders(legacy_errs["rk4_classic"])[-1] == pytest.approx(1, abs=0.1)
    for s in ("euler", "midpoint"):  # unaffected by the legacy time arithmetic
        assert exact_errs[s] == pytest.approx(legacy_errs[s], rel=1e-9)


def test_one_step_tells_classic_rk4_from_the_three_eighths_rule():
    # dx/dt = t^4 as an autonomous system (x, t); one step on [0, 1]: the quadrature of t^4 by each tableau.
    f = lambda y, k: torch.stack([y[1] ** 4, torch.ones_like(y[1])])  # noqa: E731
    one = {s: float(odeint(f, torch.zeros(2, dtype=torch.float64), 1, 1, s)[0]) for s in SCHEMES}
    assert one["euler"] == 0.0 and one["midpoint"] == pytest.approx(0.0625)
    assert one["rk4_classic"] == pytest.approx(5 / 24) and one["rk4_38"] == pytest.approx(11 / 54)


def test_stage_piece_tables():
    assert stage_pieces("rk4_classic", 2, 2) == [[0, 0, 0, 0], [1, 1, 1, 1]]
    assert stage_pieces("rk4_classic", 2, 2, legacy=True) == [[0, 0, 0, 1], [1, 1, 1, 1]]
    assert stage_pieces("euler", 3, 3, legacy=True) == [[0], [1], [1]]  # piece 2 never used, as in the original
    assert stage_pieces("euler", 3, 3) == [[0], [1], [2]]
    assert stage_pieces("midpoint", 8, 2) == [[0, 0]] * 4 + [[1, 1]] * 4
    assert stage_pieces("euler", 2, 8) == [[0], [4]]  # fewer steps than pieces: pieces are skipped


def test_an_unknown_scheme_is_refused_everywhere_with_the_known_names():
    assert SCHEME_REGISTRY.names() == tuple(SCHEMES)
    known = "known: euler, midpoint, rk4_classic, rk4_38"
    with pytest.raises(KeyError, match=f"unknown scheme 'rk5'; {known}"):
        stage_pieces("rk5", 1, 1)
    with pytest.raises(KeyError, match=f"unknown scheme 'rk5'; {known}"):
        odeint(lambda x, k: x, torch.zeros(1), 1, 1, "rk5")
    with pytest.raises(KeyError, match=f"unknown scheme 'rk5'; {known}"):
        ODEBlock(ResidualFunction(2, 1), 1.0, "rk5")
    model = continuousnet(1, "midpoint", alpha=2)
    with pytest.raises(KeyError, match=f"unknown scheme 'rk5'; {known}"):
        with manifestation(model, steps=3, scheme="rk5"):
            pass
    assert all(b.steps == 1 and b.scheme == "midpoint" for b in ode_blocks(model))  # refused before any change


# ---------------------------------------------------------------- blocks


def block(pieces, scheme="euler", epsilon=None, legacy=False, preact=False, seed=0):
    torch.manual_seed(seed)
    fn = ResidualFunction(4, pieces, preact=preact)
    for bn in (fn.bn1, fn.bn2):
        for norm in bn.norms:  # non-trivial affine parameters and statistics
            torch.nn.init.uniform_(norm.weight, 0.5, 1.5)
            torch.nn.init.uniform_(norm.bias, -0.2, 0.2)
            norm.running_mean.uniform_(-0.1, 0.1)
    return ODEBlock(fn, epsilon if epsilon is not None else pieces, scheme, legacy=legacy)


@pytest.mark.parametrize("pieces", [1, 2, 3, 8])
def test_euler_with_d_steps_is_the_d_unit_residual_network(pieces):
    b = block(pieces).eval()
    x = torch.randn(2, 4, 5, 5)
    unrolled = x
    for k in range(pieces):
        unrolled = unrolled + b.fn(unrolled, k)
    assert torch.equal(b(x), unrolled)


def test_every_piece_gets_a_gradient_unlike_the_legacy_float32_indexing():
    for legacy, expect_dead in ((False, False), (True, True)):
        b = block(3, legacy=legacy)
        b(torch.randn(2, 4, 5, 5)).sum().backward()
        dead = b.fn.conv1.weight.grad[2].abs().sum() == 0
        assert bool(dead) == expect_dead


def count_bn_calls(b, x):
    calls = []
    hooks = [norm.register_forward_hook(lambda m, i, o, k=k: calls.append(k)) for k, norm in enumerate(b.fn.bn1.norms)]
    b(x)
    for h in hooks:
        h.remove()
    return [calls.count(k) for k in range(b.fn.pieces)]


def test_batch_norm_calls_per_piece_per_forward():
    x = torch.randn(2, 4, 5, 5)
    assert count_bn_calls(block(2, "euler").train(), x) == [1, 1]
    assert count_bn_calls(block(2, "midpoint").train(), x) == [2, 2]
    assert count_bn_calls(block(2, "rk4_classic").train(), x) == [4, 4]
    assert count_bn_calls(block(2, "rk4_classic", legacy=True).train(), x) == [3, 5]


def test_refinement_keeps_the_weight_function_of_time_exactly():
    b = block(2, "rk4_classic", epsilon=2.0, preact=True).train()
    b(torch.randn(8, 4, 5, 5))  # fill the running statistics
    old = {k: v.clone() for k, v in b.state_dict().items()}
    refine(b)
    assert b.fn.pieces == 4 and b.steps == 4 and b.epsilon == 2.0
    new = b.state_dict()
    for k in range(4):
        assert torch.equal(new["fn.conv1.weight"][k], old["fn.conv1.weight"][k // 2])
        assert torch.equal(new["fn.conv2.bias"][k], old["fn.conv2.bias"][k // 2])
        for bn in ("bn1", "bn2"):
            for stat in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                assert torch.equal(new[f"fn.{bn}.norms.{k}.{stat}"], old[f"fn.{bn}.norms.{k // 2}.{stat}"])
    # The refined copies are independent modules.
    assert b.fn.bn1.norms[0] is not b.fn.bn1.norms[1]


def test_refinement_converges_to_the_fine_grid_solution_fastest_for_rk4():
    x = torch.randn(4, 4, 5, 5, dtype=torch.float64)
    shrink = {}
    for scheme in ("euler", "midpoint", "rk4_classic"):
        b = block(1, scheme, epsilon=1.0).double().eval()
        with manifestation(b, steps=256, scheme="rk4_classic"):
            reference = b(x).detach()
        errs = []
        for _ in range(3):
            errs.append(float((b(x) - reference).detach().norm()))
            refine(b)
        assert errs[0] > errs[1] > errs[2]
        shrink[scheme] = errs[0] / errs[2]
    assert shrink["euler"] < shrink["midpoint"] < shrink["rk4_classic"]


def test_manifestation_changes_steps_and_scheme_but_never_the_weights():
    model = continuousnet(2, "euler", alpha=4).eval()
    x = torch.rand(2, 3, 16, 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained = model(x)
    with manifestation(model, steps=7, scheme="rk4_classic"):
        other = model(x)
        assert all(b.steps == 7 and b.scheme == "rk4_classic" for b in model.modules() if isinstance(b, ODEBlock))
    assert not torch.allclose(trained, other)
    assert torch.equal(model(x), trained)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ---------------------------------------------------------------- models


def test_parameter_counts_equal_the_reference():
    assert [count_parameters(continuousnet(d), trainable_only=False) for d in (1, 2, 4, 8)] == [
        175_770,
        273_210,
        468_090,
        857_850,
    ]
    assert all(count_parameters(continuousnet(d), trainable_only=False) == 78_330 + 97_440 * d for d in (1, 2, 3, 5))
    assert count_parameters(continuousnet(2, skipinit=True), trainable_only=False) == 273_219
    assert count_parameters(continuousnet(2, num_classes=100), trainable_only=False) == 273_210 + 5_850
    assert count_parameters(wide_continuousnet(8), trainable_only=False) == 13_630_676
    assert count_parameters(resnet_v2(20), trainable_only=False) == 272_474
    assert count_parameters(resnet_v2(56), trainable_only=False) == 855_770
    assert count_parameters(wide_resnet(58, 4), trainable_only=False) == 13_631_108
    with pytest.raises(ValueError, match="not 6n\\+2"):
        resnet_v2(52)


def test_refining_the_model_gives_the_reference_sizes():
    model = continuousnet(1, "rk4_classic")
    sizes = [count_parameters(model, trainable_only=False)]
    for _ in range(3):
        refine(model)
        sizes.append(count_parameters(model, trainable_only=False))
    assert sizes == [175_770, 273_210, 468_090, 857_850]


def test_the_registry_names_the_factories():
    assert MODELS.names() == ("continuousnet", "wide_continuousnet", "resnet_v2", "wide_resnet")
    assert MODELS.get("continuousnet") is continuousnet and MODELS.get("wide_resnet") is wide_resnet
    torch.manual_seed(0)
    a = MODELS.create("continuousnet", pieces=2, scheme="midpoint", alpha=4)
    torch.manual_seed(0)
    b = continuousnet(2, "midpoint", alpha=4)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(KeyError, match="unknown model 'resnet'; known: continuousnet"):
        MODELS.create("resnet")


# The README's parameter counts of each row's model as built (refined rows: before their first refinement).
ROW_PARAMETERS = {
    "resnet20": 272_474,
    "cn2_euler": 273_210,
    "cn2_rk4": 273_210,
    "cn1to2_rk4": 175_770,
    "cn1to2_midpoint": 175_770,
    "resnet56": 855_770,
    "cn8_euler": 857_850,
    "cn8_rk4": 857_850,
    "cn1to8_rk4": 175_770,
    "wrn58": 13_631_108,
    "wcn8_euler": 13_630_676,
}


@pytest.mark.parametrize("row", sorted(E.ROWS))
def test_each_row_builds_its_model_through_the_registry(row):
    # T and the piece selection away from the factories' defaults, so that each must be passed to be right.
    p = dataclasses.replace(params.load("02_continuousnet_tables", "paper"), refined_T=0.5, legacy_pieces=True)
    run = E.run_spec(p, row, 0)
    spec = E.ROWS[row]
    num_classes = 100 if spec.table == "cifar100" else 10
    model = E.build_model(run, 3, num_classes)
    assert run["arch"] == spec.arch and set(E.MODEL_ARGS) == set(MODELS.names())
    assert count_parameters(model, trainable_only=False) == ROW_PARAMETERS[row]
    for b in ode_blocks(model):
        assert (b.scheme, b.epsilon, b.legacy, b.fn.pieces) == (spec.scheme, run["T"], True, spec.pieces)
    torch.manual_seed(0)  # the same weights as the factory called by hand, seeded with the run's seed
    ode = {"pieces": spec.pieces, "scheme": spec.scheme, "epsilon": run["T"], "legacy": True}
    args = ode if spec.pieces else {"depth": spec.depth}
    direct = MODELS.create(spec.arch, num_classes=num_classes, **args)
    assert all(torch.equal(x, y) for x, y in zip(model.state_dict().values(), direct.state_dict().values()))


# ---------------------------------------------------------------- training


def test_the_schedules_epochs():
    # ContinuousNet: decay after 0-based epoch 30 -> LR 0.1 for 31 epochs; the ResNet script: 30 epochs.
    assert lr_milestones([30, 60, 90], "continuousnet") == [31, 61, 91]
    assert lr_milestones([30, 60, 90], "resnet") == [30, 60, 90]
    with pytest.raises(KeyError, match="unknown schedule convention 'keras'"):
        lr_milestones([30], "keras")
    assert {r.schedule for r in E.ROWS.values()} == set(SCHEDULE_CONVENTIONS.names())
    model = torch.nn.Linear(2, 2)
    for convention, first_decayed in (("continuousnet", 31), ("resnet", 30)):
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, lr_milestones([30, 60, 90], convention), 0.1)
        lrs = []
        for _ in range(100):
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        assert lrs.index(next(v for v in lrs if v < 0.1)) == first_decayed
    p = params.load("02_continuousnet_tables", "paper")
    assert E.run_spec(p, "cn1to2_rk4", 0)["refine_at"] == [25]  # before the 26th epoch
    assert E.run_spec(p, "cn1to8_rk4", 0)["refine_at"] == [30, 50, 70]
    assert E.run_spec(p, "cn2_rk4", 0)["weight_decay"] == 1e-4 and E.run_spec(p, "cn2_euler", 0)["T"] == 2.0
    assert E.run_spec(p, "resnet20", 0)["milestones"] == [30, 60, 90]
    assert E.run_spec(p, "wrn58", 0)["milestones"] == [30, 60, 90]
    assert E.run_spec(p, "wcn8_euler", 0)["milestones"] == [31, 61, 91]
    assert E.scaled_refinements((30, 50, 70), 15, "r") == [4, 6, 9]
    assert E.scaled_refinements((30, 50, 70), 4, "r") == [1, 2, 3]  # kept distinct when scaling merges them
    with pytest.raises(ValueError, match="refines 3 time"):
        E.scaled_refinements((30, 50, 70), 3, "r")


class InterruptAt:
    def after_epoch(self, state):
        if state.epoch == 2:
            raise KeyboardInterrupt


@pytest.mark.parametrize("carry", [False, True])
def test_refinement_during_training_and_resume_after_it(tmp_path, carry):
    tr = data.load("digits", "train").take(128, seed=0)
    config = train.TrainConfig(epochs=3, batch_size=32, lr=0.05, momentum=0.9, device="cpu", seed=0)

    def run(extra=(), checkpoint=None):
        torch.manual_seed(0)
        model = ContinuousNet(alpha=2, pieces=1, scheme="midpoint", epsilon=1.0, in_channels=1)
        refinement = Refinement([1], carry_state=carry)
        history = train.fit(model, tr, config, callbacks=[refinement, *extra], checkpoint=checkpoint)
        return model, refinement, history

    model, refinement, history = run()
    assert refinement.done == [1] and all(
        b.fn.pieces == 2 and b.steps == 2 for b in model.modules() if isinstance(b, ODEBlock)
    )
    ckpt = tmp_path / "c.pt"
    with pytest.raises(KeyboardInterrupt):
        run([InterruptAt()], ckpt)
    resumed, _, history2 = run(checkpoint=ckpt)
    assert history2.epochs["train_loss"] == history.epochs["train_loss"]
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), model.state_dict().values()))


def test_carrying_the_optimizer_state_splits_momentum_like_the_weights():
    class State:
        def __init__(self):
            torch.manual_seed(0)
            self.model = ContinuousNet(alpha=2, pieces=1, in_channels=1, epsilon=1.0)
            self.epoch = 1
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)

        def rebuild_optimizer(self):
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)

    for carry in (False, True):
        s = State()
        torch.nn.functional.cross_entropy(s.model(torch.rand(4, 1, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
        s.optimizer.step()
        conv = s.model.stages[1].fn.conv1.weight
        before = s.optimizer.state[conv]["momentum_buffer"].clone()
        Refinement([1], carry_state=carry).after_epoch(s)
        refined = s.model.stages[1].fn.conv1.weight  # refinement makes new Parameters
        assert refined.shape[0] == 2 and refined is not conv
        state = s.optimizer.state.get(refined, {})
        if carry:
            assert torch.equal(state["momentum_buffer"][0], before[0]) and torch.equal(
                state["momentum_buffer"][1], before[0]
            )
        else:
            assert "momentum_buffer" not in state


def test_random_crop_moves_each_image_by_its_own_offset():
    x = torch.arange(8 * 2 * 6 * 6, dtype=torch.float32).reshape(8, 2, 6, 6) + 1
    torch.manual_seed(1)
    y = random_crop(x, 2)
    assert y.shape == x.shape
    offsets = []
    for i in range(8):  # each crop is one window of the zero-padded image (the values are distinct: one match)
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        offsets += [
            (dy, dx) for dy in range(5) for dx in range(5) if torch.equal(y[i], padded[:, dy : dy + 6, dx : dx + 6])
        ]
    assert len(offsets) == 8
    assert len(set(offsets)) > 1 and offsets != [(2, 2)] * 8  # not one shared offset, not the uncropped images


CHANNELS_LAST_CHILD = """
import dataclasses, json, sys, torch
import repronets
from repronets.core import train
from repronets.runs import params
from repronets.continuous import experiment as E
p = params.load("02_continuousnet_tables", "smoke")
run = E.run_spec(p, "cn2_euler", 0) | {"train_limit": 64, "epochs": 1}
layouts, fit = [], train.fit
def recording_fit(model, *a, **kw):
    w = model.stages[0].conv1.weight  # 3x3 over several channels: the two layouts differ
    layouts.append(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous())
    return fit(model, *a, **kw)
train.fit = recording_fit
losses = [E.train_one(dataclasses.replace(p, device="cpu", channels_last=cl), run)["epochs"]["train_loss"][0]
          for cl in (False, True)]
print(json.dumps({"layouts": layouts, "losses": losses}))
"""


@pytest.mark.slow  # worker processes or a subprocess importing torch
@pytest.mark.parametrize("kernels", ["native", "avx2"])
def test_channels_last_training_gives_the_same_model_as_the_default_layout(kernels):
    """With oneDNN at its own ISA the option reaches the model and trains the same model; with oneDNN held to AVX2
    (the default pins) the CPU refuses it, because that path corrupts memory (numerics.channels_last_safe)."""
    env = {**os.environ, "REPRONETS_CPU_ISA": kernels, "OMP_NUM_THREADS": "1"}
    for name in numerics.SETTINGS:
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", CHANNELS_LAST_CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["layouts"] == ([False, True] if kernels == "native" else [False, False])
    assert ("channels_last is not used" in done.stderr) == (kernels == "avx2")
    a, b = out["losses"]
    assert a == pytest.approx(b, rel=1e-4)


@pytest.mark.parametrize("row", sorted(E.ROWS))
def test_every_table_row_trains_and_sweeps(row):
    """Every row of the paper profile at tiny width, so each model, refinement schedule and sweep path runs here."""
    p = dataclasses.replace(
        params.load("02_continuousnet_tables", "smoke"),
        device="cpu",
        alpha=2,
        widen_factor=1,
        epochs=4,
        lr_decay_factor=0.5,
        manifestation_steps=[1, 3],
        convergence_doublings=2,
        convergence_samples=4,  # the float64 study of 64 images was 5.5 of wcn8_euler's 6.3 s
    )
    run = E.run_spec(p, row, 0) | {"train_limit": 40}
    out = E.train_one(p, run)
    assert len(out["epochs"]["test_acc"]) == 4 and 0.0 <= out["final_test_acc"] <= 1.0
    spec = E.ROWS[row]
    # Decays after 30/60/90 of 120 epochs scaled to 4 (1, 2, 3), by lr_decay_factor, in the row's convention.
    expected = [0.1, 0.05, 0.025, 0.0125] if spec.schedule == "resnet" else [0.1, 0.1, 0.05, 0.025]
    assert out["epochs"]["lr"] == pytest.approx(expected)
    if spec.pieces:
        pieces = spec.pieces * 2 ** len(spec.refine_at)
        assert len(out["manifestation"]) == 2 * len(p.manifestation_schemes)
        assert {c["steps"] for c in out["convergence"]} == {pieces, 2 * pieces}


def test_the_refinement_noise_reaches_the_refinement_of_refined_rows_only(monkeypatch):
    p = dataclasses.replace(
        params.load("02_continuousnet_tables", "smoke"), device="cpu", alpha=2, epochs=2, refine_variance=0.05
    )
    assert E.run_spec(p, "cn2_euler", 0)["refine_variance"] == 0.0  # not part of an unrefined row's key
    run = E.run_spec(p, "cn1to2_rk4", 0) | {"train_limit": 40}
    assert run["refine_variance"] == 0.05
    seen = []

    class Recording(Refinement):
        def __init__(self, epochs, variance=0.0, carry_state=False):
            super().__init__(epochs, variance, carry_state)
            seen.append(variance)

    monkeypatch.setattr(E, "Refinement", Recording)
    E.train_one(p, run)
    assert seen == [0.05]


# ---------------------------------------------------------------- analysis


def fake_run(p, row, seed, acc, manifestation=()):
    params_ = E.run_spec(p, row, seed)
    result = {
        "final_test_acc": acc,
        "train_time_s": 90.0,
        "parameters": 273_210,
        "images_per_s": 1000.0,
        "manifestation": [{"scheme": s, "steps": n, "test_acc": a} for s, n, a in manifestation],
    }
    return RunResult(f"{row}{seed}", "continuous", params_, result, {}, None)


def test_published_numbers_are_read_by_name_beside_the_rebuilt_tables():
    assert set(PUBLISHED) == set(E.ROWS)
    assert PUBLISHED["cn2_euler"].accuracy == 91.41 and PUBLISHED["wcn8_euler"].parameters == "13.63M"
    paper = params.load("02_continuousnet_tables", "paper")
    runs = [
        fake_run(paper, "cn2_euler", 0, 0.9),
        fake_run(paper, "cn2_euler", 1, 0.92),
        fake_run(paper, "wrn58", 0, 0.7),
    ]
    tables = analysis.tables(runs, paper)
    assert [t.name for t in tables] == ["cifar10", "cifar100"] and [t.data for t in tables] == ["cifar10", "cifar100"]
    row, timing = tables[0].frame.iloc[0], tables[0].timing.iloc[0]
    assert row["Test accuracy"] == "91.00% ± 1.41" and row["seeds"] == 2
    assert (row["#params (original)"], row["Test accuracy (original)"], timing["Time (original)"]) == (
        "0.27M",
        "91.41%",
        "20 (m)",
    )
    # the machine's speed is an output of its own: never in the table that every machine must reproduce
    assert not {"Time", "images/s", "Time (original)"} & set(tables[0].frame.columns)
    assert list(timing.index[:4]) == ["Model", "Units", "Refined", "Scheme"] and "images/s" in timing
    assert tables[1].frame.iloc[0]["Test accuracy (original)"] == "79.16%"
    assert [r.key for r in tables[1].runs] == ["wrn580"]
    assert (
        tables[1].caption == "CIFAR-100 table of the original README, rebuilt on cifar100 (120 epochs, width α = 16)."
    )
    quick = params.load("02_continuousnet_tables", "quick")  # rebuilt on the digits: no published numbers beside
    (digits,) = analysis.tables([fake_run(quick, "cn2_euler", 0, 0.9)], quick)
    assert digits.name == "cifar10" and "Test accuracy (original)" not in digits.frame


def test_the_summary_reads_the_manifestation_sweep_of_the_ode_runs():
    quick = params.load("02_continuousnet_tables", "quick")
    sweep = [("euler", 1, 0.5), ("euler", 2, 0.9), ("euler", 4, 0.8), ("rk4_classic", 1, 0.1)]
    runs = [fake_run(quick, "resnet20", 0, 0.9), fake_run(quick, "cn2_euler", 0, 0.9, sweep)]
    assert analysis.ode_runs(runs) == runs[1:]
    lines = analysis.summary(runs, analysis.tables(runs, quick))
    assert lines == [
        "2-2-2 Euler: 0.900 at its training steps; with 1 step per block 0.500; range over 3 step counts 0.500-0.900",
        "cifar10: 2-2-2 – ResNet-20 (v2): 90.00%; 2-2-2 Euler ContinuousNet: 90.00%",
    ]
    unswept = [fake_run(quick, "cn2_euler", 0, 0.9, [s for s in sweep if s[1] != 2])]  # found by a dry run
    assert analysis.summary(unswept, [])[0].startswith("2-2-2 Euler: not swept (2 steps) at its training steps;")


def test_observed_order():
    assert analysis.observed_order([1.0, 0.25, 1 / 64]) == 4.0
    assert analysis.observed_order([3.0, 1.5]) == 1.0


def ledger_run(p, row, seed, acc, seconds, device="cpu", sweep=(), convergence=()):
    result = {
        "final_test_acc": acc,
        "train_time_s": seconds,
        "device": device,
        "manifestation": [{"scheme": s, "steps": n, "test_acc": a} for s, n, a in sweep],
        "convergence": [{"scheme": s, "steps": n, "relative_error": e} for s, n, e in convergence],
    }
    return RunResult(f"{row}{seed}", "continuous", E.run_spec(p, row, seed), result, {}, None)


def test_claim_values_pair_the_rows_by_seed_as_the_claim_file_says():
    quick = params.load("02_continuousnet_tables", "quick")
    euler_orders = [("euler", 2, 0.4), ("euler", 4, 0.2), ("euler", 8, 0.1), ("rk4_classic", 2, 0.32)]
    euler_orders += [("rk4_classic", 4, 0.02), ("rk4_classic", 8, 0.005)]  # orders 4 then 2: the finest pair counts
    runs = [
        ledger_run(quick, "resnet20", 0, 0.90, 100.0),
        ledger_run(quick, "resnet20", 1, 0.91, 120.0),
        ledger_run(quick, "cn2_euler", 1, 0.88, 90.0, sweep=[("euler", 2, 0.8), ("euler", 1, 0.7)]),
        ledger_run(
            quick, "cn2_euler", 0, 0.89, 50.0, sweep=[("euler", 2, 0.9), ("euler", 1, 0.6)], convergence=euler_orders
        ),
        ledger_run(quick, "cn2_euler", 2, 0.89, 50.0, device="cuda"),  # timed elsewhere: no cost pair
        ledger_run(
            quick,
            "cn2_rk4",
            0,
            0.90,
            125.0,
            sweep=[("rk4_classic", 2, 0.9), ("rk4_classic", 1, 0.85), ("euler", 2, 0.88), ("midpoint", 4, 0.91)]
            + [("euler", 1, 0.2)],  # below 2 steps: not part of "keeps its accuracy"
        ),
        ledger_run(
            quick,
            "cn2_rk4",
            1,
            0.80,
            180.0,
            sweep=[("rk4_classic", 2, 0.8), ("rk4_classic", 1, 0.8), ("euler", 2, 0.75)],
        ),
        ledger_run(quick, "cn2_rk4", 2, 0.80, 125.0),
        ledger_run(quick, "cn1to2_rk4", 0, 0.92, 100.0),
    ]
    values = analysis.claim_values(runs)
    assert values["cn.cost.euler_as_resnet"] == pytest.approx([0.5, 0.75])  # per epoch: 15 epochs on both sides
    assert values["cn.cost.rk4_over_euler"] == pytest.approx([2.5, 2.0])
    assert values["cn.manifestation.euler_loses_more"] == pytest.approx([0.3 - 0.05, 0.1 - 0.0])
    assert values["cn.manifestation.rk4_keeps_accuracy"] == pytest.approx([0.02, 0.05])
    assert values["cn.manifestation.rk4_fewer_steps"] == pytest.approx([0.05, 0.0])  # 2 -> 1 step, RK4 alone
    assert values["cn.refinement.keeps_accuracy"] == pytest.approx([2.0])
    assert values["cn.convergence.euler"] == pytest.approx([1.0]) and values["cn.convergence.rk4_classic"] == [2.0]
    assert not any(k.startswith("cn.accuracy.") for k in values)  # digits runs say nothing about the CIFAR tables
    # parameter counts at the paper's size, whatever the runs: the refined row ends with 2-2-2's weights
    assert values["cn.parameters.resnet20"] == [0.272474] and values["cn.parameters.cn1to2_rk4"] == [0.27321]
    assert values["cn.parameters.wrn58"] == [13.631108] and len([k for k in values if "parameters" in k]) == len(E.ROWS)
    paper = params.load("02_continuousnet_tables", "paper")
    on_cifar = analysis.claim_values([ledger_run(paper, "wrn58", 0, 0.7916, 60.0)])
    assert on_cifar["cn.accuracy.wrn58"] == pytest.approx([79.16]) and "cn.cost.euler_as_resnet" not in on_cifar
    ledger = claims.ledger_for("02_continuousnet_tables", "quick")
    for claim_id, v in values.items():  # every id names a claim of the file
        ledger.measure(claim_id, v)
