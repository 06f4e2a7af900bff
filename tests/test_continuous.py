"""Paper 2: the checks of shared/papers/continuousnet.md §9 and the issue's list."""

import math

import pytest
import torch
from repronets import data, params, train
from repronets.continuous import experiment as E
from repronets.continuous.blocks import ODEBlock, ResidualFunction, manifestation, refine
from repronets.continuous.integrators import odeint, stage_pieces
from repronets.continuous.models import (
    ContinuousNet,
    continuousnet,
    resnet_v2,
    wide_continuousnet,
    wide_resnet,
)
from repronets.continuous.training import Refinement, lr_milestones
from repronets.counting import count_parameters
from repronets.transforms import random_crop

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
    with pytest.raises(ValueError, match="unknown scheme 'rk5'"):
        stage_pieces("rk5", 1, 1)


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


# ---------------------------------------------------------------- training


def test_the_schedules_epochs():
    # ContinuousNet: decay after 0-based epoch 30 -> LR 0.1 for 31 epochs; the ResNet script: 30 epochs.
    assert lr_milestones([30, 60, 90], "continuousnet") == [31, 61, 91]
    assert lr_milestones([30, 60, 90], "resnet") == [30, 60, 90]
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
    assert E.run_params(p, "cn1to2_rk4", 0)["refine_at"] == [25]  # before the 26th epoch
    assert E.run_params(p, "cn1to8_rk4", 0)["refine_at"] == [30, 50, 70]
    assert E.run_params(p, "cn2_rk4", 0)["weight_decay"] == 1e-4 and E.run_params(p, "cn2_euler", 0)["T"] == 2.0
    assert E.run_params(p, "resnet20", 0)["milestones"] == [30, 60, 90]
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
    x = torch.arange(3 * 2 * 6 * 6, dtype=torch.float32).reshape(3, 2, 6, 6) + 1
    torch.manual_seed(1)
    y = random_crop(x, 2)
    assert y.shape == x.shape
    for i in range(3):  # each crop is a window of the zero-padded image
        padded = torch.nn.functional.pad(x[i], (2, 2, 2, 2))
        assert any(torch.equal(y[i], padded[:, dy : dy + 6, dx : dx + 6]) for dy in range(5) for dx in range(5))


def test_channels_last_training_gives_the_same_model_as_the_default_layout():
    p = params.load("02_continuousnet_tables", "smoke")
    run = E.run_params(p, "cn2_euler", 0) | {"train_limit": 64, "epochs": 1}
    import dataclasses

    results = [E.train_one(dataclasses.replace(p, device="cpu", channels_last=cl), run) for cl in (False, True)]
    a, b = (r["epochs"]["train_loss"][0] for r in results)
    assert a == pytest.approx(b, rel=1e-4)


@pytest.mark.parametrize("row", sorted(E.ROWS))
def test_every_table_row_trains_and_sweeps(row):
    """Every row of the paper profile at tiny width, so each model, refinement schedule and sweep path runs here."""
    import dataclasses

    p = dataclasses.replace(
        params.load("02_continuousnet_tables", "smoke"),
        device="cpu",
        alpha=2,
        widen_factor=1,
        epochs=4,
        manifestation_steps=[1, 3],
        convergence_doublings=2,
    )
    run = E.run_params(p, row, 0) | {"train_limit": 40}
    out = E.train_one(p, run)
    assert len(out["epochs"]["test_acc"]) == 4 and 0.0 <= out["final_test_acc"] <= 1.0
    spec = E.ROWS[row]
    if spec.pieces:
        pieces = spec.pieces * 2 ** len(spec.refine_at)
        assert len(out["manifestation"]) == 2 * len(p.manifestation_schemes)
        assert {c["steps"] for c in out["convergence"]} == {pieces, 2 * pieces}
