"""Paper 1: the checks of docs/papers/tau.md §6 and the issue's list."""

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from repronets.core import data, train
from repronets.core.counting import count_macs
from repronets.core.counting import count_parameters as _count
from repronets.report import claims
from repronets.runs import params
from repronets.runs.results import RunResult, RunStore
from repronets.tau import ARCHITECTURES, analysis, reference, trial
from repronets.tau import experiment as E
from repronets.tau.models import FracDNN, TauResNet
from repronets.tau.training import AdaptivePruning, DependentLastTau, PruningError, TauTracker, objective, tau_penalty


def count_parameters(model):
    """The τ paper counts trainable parameters (a frozen τ is not one)."""
    return _count(model, trainable_only=True)


def smoke_params(**kw):
    return dataclasses.replace(params.load("01_tau_speedup", "smoke"), **kw)


# ---------------------------------------------------------------- architecture


def test_parameter_counts_match_the_reference():
    assert count_parameters(TauResNet()) == 130_006
    assert count_parameters(TauResNet(tau_trainable=False, fixed="first")) == 130_005  # as released
    assert count_parameters(TauResNet(tau_trainable=False, fixed="all")) == 130_000
    assert count_parameters(TauResNet(dependent_last=True)) == 130_005
    assert count_parameters(TauResNet(tau_trainable=False, fixed="first", dependent_last=True)) == 130_004
    assert count_parameters(FracDNN()) == 130_006
    assert count_parameters(FracDNN(tau_trainable=False)) == 130_000


def test_taus_start_at_T_over_their_number_and_fixed_taus_are_saved_buffers():
    for T in (1.0, 6.0):
        for model in (TauResNet(T=T), FracDNN(T=T)):
            assert torch.allclose(model.taus(), torch.full((6,), T / 6)) and float(
                model.taus().detach().sum()
            ) == pytest.approx(T)
    fixed = TauResNet(tau_trainable=False, fixed="all")
    assert "blocks.0.tau" in fixed.state_dict() and "blocks.0.tau" not in dict(fixed.named_parameters())


def test_resnet_and_fracdnn_start_from_identical_weights_under_one_seed():
    torch.manual_seed(0)
    resnet = TauResNet()
    torch.manual_seed(0)
    frac = FracDNN()
    for block, linear in zip(resnet.blocks, frac.linears):
        assert torch.equal(block.linear.weight, linear.weight) and torch.equal(block.linear.bias, linear.bias)
    assert torch.equal(resnet.classifier.weight, frac.classifier.weight) and resnet.classifier.bias is None


def test_as_released_fixed_resnet_trains_every_tau_but_the_first():
    torch.manual_seed(0)
    model = TauResNet(tau_trainable=False, fixed="first")
    before = model.taus().detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(torch.rand(8, 784)), torch.randint(0, 10, (8,))).backward()
    opt.step()
    after = model.taus().detach()
    assert after[0] == before[0] and (after[1:] != before[1:]).all()


def shared_weights(T, taus):
    torch.manual_seed(1)
    resnet = TauResNet(T=T)
    torch.manual_seed(1)
    frac = FracDNN(T=T, gamma=1.0)
    with torch.no_grad():
        for block, tau in zip(resnet.blocks, taus):
            block.tau.fill_(tau)
        for t, tau in zip(frac.tau_tensors(), taus):
            t.fill_(tau)
    return resnet, frac


@pytest.mark.parametrize("taus", [[1 / 6] * 6, [0.3, 0.05, 0.4, 0.1, 0.9, 0.25]])
def test_fracdnn_with_gamma_one_is_the_resnet_exactly(taus):
    resnet, frac = shared_weights(1.0, taus)
    x = torch.rand(16, 784)
    assert torch.equal(resnet(x), frac(x))


def test_uniform_tau_memory_weights_are_the_classical_L1_weights():
    frac = FracDNN(T=1.0)
    taus = frac.taus().detach()
    assert float(frac.memory_weights(taus, 1)[0]) == pytest.approx(math.sqrt(2) - 1, abs=1e-6)  # 0.41421
    for n in range(1, 6):
        expected = torch.tensor([math.sqrt(n - j + 1) - math.sqrt(n - j) for j in range(n)])
        assert torch.allclose(frac.memory_weights(taus, n), expected, atol=1e-6)


def reference_fracdnn(model: FracDNN, x: torch.Tensor) -> torch.Tensor:
    """The scheme of docs/papers/tau.md §1.2 written out with loops in float64, independent of the vectorised
    forward."""
    g = model.gamma
    taus = [float(t) for t in model.taus().detach()]
    u = [x.double().flatten(1)]
    states = []  # u_{n+1} - u_n (with u treated as 0 before a dimension change)
    for n, lin in enumerate(model.linears):
        W, b = lin.weight.double(), lin.bias.double()
        step = taus[n] ** g * math.gamma(2 - g) * torch.relu(u[n] @ W.T + b)
        prev = u[n] if lin.in_features == lin.out_features else torch.zeros_like(step)
        memory = torch.zeros_like(step)
        for j in range(n):
            upper = sum(taus[j : n + 1]) ** (1 - g)
            lower = sum(taus[j + 1 : n + 1]) ** (1 - g)
            memory += taus[n] ** g / taus[j] * (upper - lower) * states[j]
        u.append(prev + step - memory)
        states.append(u[n + 1] - prev)
    return u[-1] @ model.classifier.weight.double().T


def test_fracdnn_forward_matches_the_scheme_with_non_uniform_steps():
    torch.manual_seed(2)
    model = FracDNN(T=2.0)
    with torch.no_grad():
        for t, v in zip(model.tau_tensors(), [0.5, 0.1, 0.3, 0.7, 0.2, 0.2]):
            t.fill_(v)
    x = torch.rand(5, 784)
    assert torch.allclose(model(x).double(), reference_fracdnn(model, x), atol=1e-5)


def test_detached_memory_changes_only_the_tau_gradients():
    x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
    grads = {}
    for memory in ("detached", "autograd"):
        torch.manual_seed(3)
        model = FracDNN(T=1.0, memory=memory)
        with torch.no_grad():
            for t, v in zip(model.tau_tensors(), [0.1, 0.3, 0.15, 0.2, 0.1, 0.15]):
                t.fill_(v)
        F.cross_entropy(model(x), y).backward()
        grads[memory] = (torch.stack([t.grad for t in model.tau_tensors()]), model.linears[0].weight.grad.clone())
    assert not torch.allclose(grads["detached"][0], grads["autograd"][0])
    assert torch.allclose(grads["detached"][1], grads["autograd"][1])


def test_tau_is_clamped_to_eps_before_every_forward_pass():
    model = FracDNN(eps=1e-4)
    with torch.no_grad():
        model.tau3.fill_(-0.5)
    model(torch.rand(2, 784))
    assert float(model.tau3.detach()) == pytest.approx(1e-4)
    assert float(model.taus().detach().min()) >= float(torch.tensor(1e-4))  # eps as float32


def test_the_registry_builds_each_architecture_with_blocks_plus_one_tau():
    assert ARCHITECTURES.names() == ("resnet", "fracdnn")
    resnet = ARCHITECTURES.create("resnet", 784, 10, width=100, blocks=5, T=1.0, tau_trainable=False, fixed="all")
    frac = ARCHITECTURES.create("fracdnn", 784, 10, width=100, blocks=5, T=1.0, gamma=0.25, memory="autograd")
    assert isinstance(resnet, TauResNet) and count_parameters(resnet) == 130_000
    assert isinstance(frac, FracDNN) and len(frac.taus()) == 6 and (frac.gamma, frac.memory) == (0.25, "autograd")
    with pytest.raises(KeyError, match="unknown τ architecture 'odenet'; known: resnet, fracdnn"):
        ARCHITECTURES.create("odenet", 784, 10, width=100, blocks=5, T=1.0)


@pytest.mark.parametrize(
    "arch, fixed, make",
    [
        ("resnet", "first", lambda: TauResNet(64, 100, 5, 10, 6.0, False, "first")),
        ("resnet", "all", lambda: TauResNet(64, 100, 5, 10, 6.0, False, "all")),
        ("fracdnn", None, lambda: FracDNN(64, 100, 6, 10, 6.0, False, 0.5, 1e-4, "detached")),
    ],
)
def test_an_experiment_builds_the_run_s_model_from_its_seed_and_options(arch, fixed, make):
    p = smoke_params(fixed_modes=[fixed or "first"])
    run = E.run_spec(p, arch, "digits", 4, 6.0, False, fixed=fixed)
    built = trial.build_model(run, 64, 10)
    torch.manual_seed(4)
    expected = make()
    assert type(built) is type(expected) and count_parameters(built) == count_parameters(expected)
    assert all(torch.equal(a, b) for a, b in zip(built.state_dict().values(), expected.state_dict().values()))


# ---------------------------------------------------------------- objective


def test_regularizer_values_on_a_hand_computed_case():
    taus = torch.tensor([0.2, 0.3, 0.5])
    assert float(tau_penalty(taus, T=1.5, horizon=0.5)) == pytest.approx(0.5 * (1.0 - 1.5) ** 2)  # 0.125
    assert float(tau_penalty(taus, T=1.5, l1=0.01)) == pytest.approx(0.01)
    assert float(tau_penalty(taus, T=1.5, l2=0.1)) == pytest.approx(0.1 * 0.38)
    assert float(tau_penalty(taus, 1.5, 0.5, 0.01, 0.1)) == pytest.approx(0.125 + 0.01 + 0.038)
    assert float(tau_penalty(TauResNet(T=1.0).taus().detach(), 1.0, l1=0.01)) == pytest.approx(0.01)  # λT at step 0
    assert float(tau_penalty(TauResNet(T=6.0).taus().detach(), 6.0, horizon=0.5, l1=0.01)) == pytest.approx(0.06)


def test_regularizer_gradients():
    taus = torch.tensor([0.2, -0.3, 0.5], requires_grad=True)
    tau_penalty(taus, T=1.5, horizon=0.5).backward()
    assert torch.allclose(taus.grad, torch.full((3,), 0.4 - 1.5))  # every τ gets Στ − T
    taus.grad = None
    tau_penalty(taus, T=1.5, l1=0.01).backward()
    assert torch.allclose(taus.grad, torch.tensor([0.01, -0.01, 0.01]))  # lr·λ·sign(τ) per SGD step


def test_initial_loss_is_close_to_ln_10():
    tr = data.load("digits", "train")
    for model in (TauResNet(64, T=1.0), FracDNN(64, T=1.0)):
        torch.manual_seed(0)
        loss, metrics = objective(T=1.0)(model, tr.x, tr.y)
        assert float(metrics["ce"]) == pytest.approx(math.log(10), abs=0.05)
        assert float(loss.detach()) == pytest.approx(float(metrics["ce"]))  # R(τ) = 0 at initialisation


# ---------------------------------------------------------------- hooks


def short_run(model, callbacks, epochs=2, loss_fn=None, checkpoint=None):
    tr = data.load("digits", "train").take(300, seed=0)
    config = train.TrainConfig(epochs=epochs, batch_size=50, lr=0.05, device="cpu", seed=0)
    return train.fit(
        model, tr, config, loss_fn=loss_fn or objective(model.T), callbacks=callbacks, checkpoint=checkpoint
    )


@pytest.mark.parametrize(
    "make", [lambda: TauResNet(64, T=6.0, dependent_last=True), lambda: FracDNN(64, T=6.0, dependent_last=True)]
)
def test_dependent_last_tau_keeps_the_sum_at_T_after_every_step(make):
    model = make()
    tracker = TauTracker(6)
    short_run(model, [DependentLastTau(6.0), tracker])
    sums = tracker.table().sum(1)
    assert len(sums) == 12 and torch.allclose(sums, torch.full_like(sums, 6.0), atol=1e-5)


def pruning_model(taus):
    model = TauResNet(64, T=sum(taus))
    with torch.no_grad():
        for block, tau in zip(model.blocks, taus):
            block.tau.fill_(tau)
    return model


class State:
    def __init__(self, model):
        self.model, self.epoch, self.step, self.rebuilt = model, 1, 10, 0

    def rebuild_optimizer(self):
        self.rebuilt += 1


def test_pruning_removes_a_block_below_one_percent_and_keeps_one_at_it():
    state = State(pruning_model([0.2, 0.2, 0.2, 0.2, 0.2, 0.0101]))  # share 0.9999 %
    before = count_macs(state.model, torch.zeros(1, 64))
    pruner = AdaptivePruning(0.01, "smallest_share")
    pruner.after_epoch(state)
    assert state.model.block_ids == [0, 1, 2, 3, 4] and state.rebuilt == 1
    # the event says what the block cost: the network's multiply-adds before = after + the removed block's
    assert pruner.events[0]["multiply_adds"] == 100 * 100
    assert before == count_macs(state.model, torch.zeros(1, 64)) + pruner.events[0]["multiply_adds"]
    state = State(pruning_model([0.2, 0.2, 0.2, 0.2, 0.2, 0.0102]))  # share 1.0097 %
    AdaptivePruning(0.01, "smallest_share").after_epoch(state)
    assert state.model.block_ids == [0, 1, 2, 3, 4, 5] and state.rebuilt == 0


def test_each_pruning_rule_removes_the_block_it_should():
    taus = [0.2, 0.2, -0.05, 0.2, 0.2, 0.001]  # smallest share: block 5; most negative: block 2
    for rule, removed in (("smallest_share", 5), ("signed_min", 2)):
        state = State(pruning_model(taus))
        pruner = AdaptivePruning(0.01, rule)
        pruner.after_epoch(state)
        assert removed not in state.model.block_ids and len(state.model.blocks) == 5
        assert pruner.events[0]["block"] == removed
    state = State(pruning_model(taus))  # never more than one block per epoch, even with two below the bar
    pruner = AdaptivePruning(0.2, "smallest_share")
    pruner.after_epoch(state)
    assert len(state.model.blocks) == 5


def test_the_input_layer_is_never_pruned_by_the_corrected_rule_and_breaks_the_faithful_one():
    taus = [0.001, 0.2, 0.2, 0.2, 0.2, 0.2]
    state = State(pruning_model(taus))
    AdaptivePruning(0.01, "smallest_share").after_epoch(state)
    assert state.model.block_ids == [0, 1, 2, 3, 4, 5]
    with pytest.raises(PruningError, match="input layer"):
        AdaptivePruning(0.01, "signed_min").after_epoch(State(pruning_model(taus)))
    # The faithful rule keeps a frozen τ0 among the candidates until the first prune.
    frozen = TauResNet(64, tau_trainable=False, fixed="first")
    assert AdaptivePruning(0.01, "signed_min").candidates(frozen) == [0, 1, 2, 3, 4, 5]
    assert AdaptivePruning(0.01, "smallest_share").candidates(frozen) == [1, 2, 3, 4, 5]


def test_with_every_tau_fixed_pruning_removes_nothing_and_the_run_completes():
    """The paper grid's ResNet runs with every τ fixed and pruning on (they crashed after the first epoch)."""
    frozen = TauResNet(64, tau_trainable=False, fixed="all")
    state = State(frozen)
    for rule in ("smallest_share", "signed_min"):
        AdaptivePruning(0.99, rule).after_epoch(state)
        assert frozen.block_ids == [0, 1, 2, 3, 4, 5] and state.rebuilt == 0
    p = smoke_params(epochs=2, train_limit=200, batch_size=50, device="cpu")
    run = E.run_spec(p, "resnet", "digits", 0, 1.0, trainable=False, fixed="all", pruning=True)
    run["prune_crit"] = 0.99
    result = trial.train_one(p, run)
    assert result["pruning_events"] == []
    assert result["forward_multiply_adds"] == count_macs(trial.build_model(run, 64, 10), torch.zeros(1, 64)) == 57_400


class Interrupt:
    def after_epoch(self, state):
        if state.epoch == 3:
            raise KeyboardInterrupt


def test_a_pruned_run_resumes_from_its_checkpoint_with_the_same_numbers(tmp_path):
    def run(callbacks_extra=(), checkpoint=None):
        torch.manual_seed(0)
        model = TauResNet(64, T=1.0)
        tracker, pruner = TauTracker(6), AdaptivePruning(0.25, "smallest_share")  # 6 equal τ: 16.7 % < 25 %
        history = short_run(
            model, [tracker, pruner, *callbacks_extra], epochs=5, loss_fn=objective(1.0, l1=0.01), checkpoint=checkpoint
        )
        return model, tracker, pruner, history

    model, tracker, pruner, history = run()
    assert len(pruner.events) >= 2
    ckpt = tmp_path / "c.pt"
    with pytest.raises(KeyboardInterrupt):
        run([Interrupt()], ckpt)
    resumed, tracker2, pruner2, history2 = run(checkpoint=ckpt)
    assert pruner2.events == pruner.events and resumed.block_ids == model.block_ids
    assert torch.equal(torch.nan_to_num(tracker2.table(), -1), torch.nan_to_num(tracker.table(), -1))
    assert history2.steps == history.steps


# ---------------------------------------------------------------- experiment


def test_the_original_grid_has_44_resnet_and_24_fracdnn_runs():
    p = smoke_params(datasets=["mnist", "fashion_mnist"], grid="original", T_values=[1.0, 6.0], fixed_modes=["first"])
    runs = E.grid(p)
    assert sum(r["architecture"] == "resnet" for r in runs) == 44
    assert sum(r["architecture"] == "fracdnn" for r in runs) == 24
    assert [r["dataset"] for r in runs[:11]] == ["fashion_mnist"] * 11  # Fashion-MNIST first, as in main.py
    assert len(E.grid(dataclasses.replace(p, fixed_modes=["first", "all"]))) == 76
    assert not any(r["dependent_last"] and (r["l1"] or r["horizon"] or r["pruning"]) for r in runs)
    assert not any(not r["tau_trainable"] and (r["l1"] or r["horizon"]) for r in runs)


def test_figure_T_must_be_among_T_values(tmp_path):
    values = dataclasses.asdict(smoke_params()) | {"figure_T": 6.0}
    with pytest.raises(params.ParamsError, match="figure_T 6.0 must be one of T_values"):
        params.validate(E.Params, values, source="x.yaml")


def test_a_run_keeps_the_original_json_schema(tmp_path):
    p = smoke_params(epochs=2, train_limit=200, batch_size=50)
    store = RunStore(tmp_path)
    plain = E.run_spec(p, "resnet", "digits", 0, 1.0, True)
    frac = E.run_spec(p, "fracdnn", "digits", 0, 1.0, True, l1=True)
    runs = [store.run("tau", r, lambda r, c: trial.train_one(p, r, c)) for r in (plain, frac)]
    paths = E.export(runs, tmp_path / "export")
    assert [str(q.relative_to(tmp_path / "export")) for q in paths] == [
        "resnet/digits/tau_trainable__l1_reg_for_taus_None__tau_l2_factor_None__adaptive_pruning_False__T_1__"
        "dependent_tau_False__seed_0.json",
        "frac_dnn/digits/tau_trainable__l1_reg_for_taus_0.01__tau_l2_factor_None__T_1__dependent_tau_False__seed_0.json",
    ]
    for path, run in zip(paths, runs):
        record = json.loads(path.read_text())
        assert set(record) == {*E.ORIGINAL_STEP_KEYS, *E.ORIGINAL_RESULT_KEYS, "provenance"}
        assert len(E.ORIGINAL_STEP_KEYS + E.ORIGINAL_RESULT_KEYS) == 17  # the original main.py's record
        steps = 2 * 4  # 200 samples in batches of 50
        assert len(record["losses"]) == len(record["clean_losses"]) == len(record["tau_tracking"]) == steps
        assert len(record["test_accs"]) == len(record["test_losses"]) == 3 and all(
            len(r) == 6 for r in record["tau_tracking"]
        )
        assert record["provenance"]["run_key"] == run.key and "git" in record["provenance"]
    plain_rec, frac_rec = (json.loads(q.read_text()) for q in paths)
    assert plain_rec["clean_losses"] == plain_rec["losses"] and frac_rec["clean_losses"] != frac_rec["losses"]
    assert plain_rec["number_of_tau_blocks"] == 5 and frac_rec["number_of_tau_blocks"] == 6
    assert plain_rec["T"] == 1 and isinstance(plain_rec["T"], int) and plain_rec["l1_reg"] == 0.0
    assert frac_rec["l1_reg"] == 0.01 and plain_rec["test_accs"][0] < 0.3


def test_the_optimizer_settings_of_the_profile_reach_the_training(tmp_path):
    p = smoke_params(epochs=1, train_limit=200, batch_size=50)
    plain = E.run_spec(p, "resnet", "digits", 0, 1.0, True)
    assert (plain["optimizer"], plain["momentum"], plain["weight_decay"]) == ("sgd", 0.0, 0.0)
    heavy = E.run_spec(dataclasses.replace(p, momentum=0.9), "resnet", "digits", 0, 1.0, True)
    taus = [trial.train_one(p, run)["final_taus"] for run in (plain, heavy)]
    assert taus[0] != taus[1]


def test_epochs_to_threshold():
    assert E.epochs_to([0.1, 0.5, 0.9, 0.95], 0.9) == 2
    assert E.epochs_to([0.1, 0.5], 0.9) is None


# ---------------------------------------------------------------- analysis


def speed_frame(rows):
    """A table shaped as analysis.speedup_table makes it: (dataset, T, curve, final acc, epochs to 0.5, to 0.9)."""
    columns = ["dataset", "T", "curve", "final acc", "epochs to 0.5", "epochs to 0.9"]
    return pd.DataFrame(rows, columns=columns)


def test_the_speedup_summary_reads_the_highest_threshold_reached_and_the_fixed_curve_s_delay():
    speed = speed_frame(
        [
            ("digits", 1.0, "ResNet τ fixed", 0.45, 30.0, np.nan),
            ("digits", 1.0, "ResNet τ variable", 0.92, 10.0, 40.0),
            ("digits", 1.0, "FracDNN τ variable", 0.60, 20.0, np.nan),
            ("digits", 6.0, "ResNet τ fixed", 0.40, np.nan, np.nan),
        ]
    )
    assert analysis.speedup_summary(speed, [0.5, 0.9], epochs=100).splitlines() == [
        "digits, T = 1: final accuracy ResNet τ fixed: 0.450, ResNet τ variable: 0.920, FracDNN τ variable: 0.600",
        "  ResNet: τ variable reaches 0.9 after 40 epochs; τ fixed not within 100 epochs",
        "digits, T = 6: final accuracy ResNet τ fixed: 0.400",
    ]
    speed.loc[0, "epochs to 0.9"] = 120.0
    assert "τ fixed after 120 (3.0× later)" in analysis.speedup_summary(speed, [0.5, 0.9], epochs=200)


def test_the_speedup_table_reads_the_published_curve_by_dataset_and_label():
    frame = pd.DataFrame(
        {
            "dataset": ["mnist", "digits"],
            "T": [1.0, 1.0],
            "curve": ["FracDNN τ fixed", "FracDNN τ fixed"],
            "l1": [0.0, 0.0],
            "horizon": [0.0, 0.0],
            "dependent_last": [False, False],
            "pruning": [False, False],
            "final_test_acc": [0.9, 0.8],
            "epochs_to_0.95": [50, 60],
        }
    )
    assert analysis.has_reference(["digits", "mnist"]) and not analysis.has_reference(["digits"])
    table = analysis.speedup_table(frame, [0.95], with_reference=True).set_index("dataset")
    published = reference.FIGURE[("mnist", "FracDNN τ fixed")]
    assert table.loc["mnist", "final acc (original)"] == published.final_accuracy == 0.97
    assert table.loc["mnist", "epochs to 0.95 (original)"] == published.epochs_to[0.95] == 78
    assert np.isnan(table.loc["digits", "final acc (original)"])


def synthetic_runs(overrides, **kw):
    """The runs of a 3-epoch profile (the figure grid unless ``grid`` says otherwise) with made-up test accuracies:
    ``overrides`` maps (dataset, architecture, curve, pruning, T, seed) to (accuracies, blocks removed). Every other
    run gets 0.1, 0.2, 0.3, 0.3 + seed/100, except those no claim measures: the as-released "first" ResNet and the
    runs with the time-horizon term get 0.9 from epoch 1 on, and the latter remove 5 blocks."""
    p = smoke_params(epochs=3, T_values=[1.0, 6.0], fixed_modes=["first", "all"], seeds=[0, 1], **kw)
    runs = []
    for run in E.grid(p):
        unmeasured = run["fixed"] == "first" or run["horizon"] > 0
        default = [0.1, 0.9, 0.9, 0.9] if unmeasured else [0.1, 0.2, 0.3, 0.3 + run["seed"] / 100]
        key = (run["dataset"], run["architecture"], analysis.curve_label(run), run["pruning"], run["T"], run["seed"])
        accs, removed = overrides.get(key, (default, 5 * (run["horizon"] > 0)))
        events = [{"epoch": 1, "block": 5, "multiply_adds": 10_000}] * removed
        result = {"test_accs": accs, "final_test_acc": accs[-1], "pruning_events": events}
        result["forward_multiply_adds"] = 57_400 - 10_000 * removed  # the figure network's on digits, less removed
        # Στ ends 0.01·(seed + 1) from T with the horizon term, 0.05·(seed + 1) without
        result["final_taus"] = [(run["T"] + (0.01 if run["horizon"] else 0.05) * (run["seed"] + 1)) / 6] * 6
        runs.append(RunResult("k", "tau", run, result, {}, None))
    return runs[::-1]  # claim_values orders by seed itself


def test_claim_values_pair_the_figure_s_runs_by_seed_and_the_pruning_runs_by_T_and_seed():
    var, fix = "ResNet τ variable", "ResNet τ fixed"  # the figure's name for every τ frozen
    runs = synthetic_runs(
        {
            ("digits", "resnet", var, False, 1.0, 0): ([0.1, 0.5, 0.85, 0.9], 0),  # reaches 0.8 at epoch 2
            ("digits", "resnet", var, False, 1.0, 1): ([0.1, 0.8, 0.85, 0.92], 0),  # at 1
            ("digits", "resnet", fix, False, 1.0, 0): ([0.1, 0.2, 0.3, 0.4], 0),  # never: counts as 3 + 1
            ("digits", "resnet", fix, False, 1.0, 1): ([0.1, 0.2, 0.81, 0.85], 0),  # at 2
            ("digits", "resnet", var, True, 1.0, 0): ([0.1, 0.5, 0.8, 0.88], 1),
            ("digits", "resnet", var, True, 1.0, 1): ([0.1, 0.8, 0.85, 0.93], 2),
            ("digits", "resnet", var, False, 6.0, 0): ([0.1, 0.5, 0.9, 0.95], 0),
            ("digits", "resnet", var, False, 6.0, 1): ([0.1, 0.5, 0.9, 0.9], 0),
            ("digits", "resnet", var, True, 6.0, 0): ([0.1, 0.5, 0.9, 0.94], 0),
            ("digits", "resnet", var, True, 6.0, 1): ([0.1, 0.5, 0.9, 0.92], 3),
        },
        datasets=["digits"],
    )
    values = analysis.claim_values(runs, T=1.0)
    assert set(values) == {
        "tau.speedup.resnet.digits",
        "tau.pruning.removes_blocks",
        "tau.pruning.keeps_accuracy",
        "tau.pruning.saves_training_compute",
        "tau.parameters.six_extra",  # counted on built models: no run needed
    }
    assert values["tau.parameters.six_extra"] == [6.0, 6.0]  # ResNet, FracDNN
    assert values["tau.speedup.resnet.digits"] == [4 - 2, 2 - 1]
    # by seed, then T: (0, T 1), (0, T 6), (1, T 1), (1, T 6)
    assert values["tau.pruning.removes_blocks"] == [1, 0, 2, 3]
    assert values["tau.pruning.keeps_accuracy"] == pytest.approx([0.88 - 0.9, 0.94 - 0.95, 0.93 - 0.92, 0.92 - 0.9])
    # digits (64 inputs), width 100, 5 blocks, 10 classes: 6,400 + 5 × 10,000 + 1,000 multiply-adds per sample; each
    # removal after epoch 1 of 3 saves a 10,000 block in epochs 2 and 3
    saved = [k * 2 * 10_000 / (3 * 57_400) for k in (1, 0, 2, 3)]
    assert values["tau.pruning.saves_training_compute"] == pytest.approx([1 - x for x in saved], rel=1e-12)
    # at T = 6 both τ-variable runs reach 0.8 at epoch 2, the all-fixed ones (defaults) never
    assert analysis.claim_values(runs, T=6.0)["tau.speedup.resnet.digits"] == [4 - 2, 4 - 2]


def test_claim_values_measure_every_claim_of_the_claim_file_from_the_original_grid():
    runs = synthetic_runs(
        {("mnist", "fracdnn", "FracDNN τ variable", False, 1.0, 1): ([0.1, 0.96, 0.97, 0.975], 0)},
        datasets=["mnist", "fashion_mnist", "digits"],
        grid="original",  # beside the figure's runs: L1 or the horizon term alone or together, dependent τ, pruning
    )
    values = analysis.claim_values(runs, T=1.0)
    ledger = claims.ledger_for("01_tau_speedup", "paper")
    assert set(values) == set(ledger.claims)
    # one value per pair of runs that differ in the horizon term alone: every trainable, non-dependent run with the term
    with_term = [r.params for r in runs if r.params["horizon"] and r.params["tau_trainable"]]
    assert len(with_term) == 2 * 3 * 2 * 6  # seeds × datasets × T × (four ResNet and two FracDNN runs with the term)
    assert values["tau.horizon.keeps_sum_near_T"] == pytest.approx(
        sorted(0.04 * (q["seed"] + 1) for q in with_term), abs=1e-12
    )
    # fixed "all", not the as-released "first" (which reaches 0.9 at epoch 1)
    assert values["tau.figure.fixed_resnet.mnist"] == [0.3, 0.31]
    # the released "first" mode's epochs to the dataset's threshold: 0.9 never reaches 0.95 (3 + 1), reaches 0.85 at 1
    assert values["tau.figure.released_fixed.mnist"] == [4, 4]
    assert values["tau.figure.released_fixed.fashion_mnist"] == [1, 1]
    assert values["tau.final.fracdnn_variable.mnist"] == [0.3, 0.975]
    assert values["tau.final.fracdnn_variable.fashion_mnist"] == [0.3, 0.31]
    # the FracDNN τ variable of seed 1 reaches 0.95 at epoch 1; everything else never (3 + 1)
    assert values["tau.speedup.fracdnn.mnist"] == [0, 3]
    assert values["tau.speedup.resnet.mnist"] == [0, 0]
    # the pruning companion (L1, no horizon term) only: one run per dataset, T and seed
    assert values["tau.pruning.removes_blocks"] == [0] * 12
    assert values["tau.pruning.keeps_accuracy"] == [0] * 12
    assert values["tau.pruning.saves_training_compute"] == [1.0] * 12


# ---------------------------------------------------------------- batched runs


def batched_group(p):
    """One group of every kind of member the τ grids have (seeds, T, both fixed modes, a dependent τ, L1 with
    pruning that fires), with momentum so that the pruned member's optimizer reset matters."""
    mk = lambda seed, T=1.0, **kw: E.run_spec(p, "resnet", "digits", seed, T, **kw)  # noqa: E731
    runs = [
        mk(0, trainable=True),
        mk(1, 6.0, trainable=False, fixed="first"),
        mk(2, trainable=False, fixed="all"),
        mk(3, trainable=True, l1=True, pruning=True),
        mk(4, trainable=True, dependent=True, horizon=True),
    ]
    runs[3]["prune_crit"] = 0.19  # six τ of 1/6 each: the first epoch already removes a block
    return runs


# Why not bit-identical: the members' matrix products are batched (vmap → bmm), which sums in another order than
# one model's mm. Over 4 epochs of 6 steps the step losses of the two agree to about 5e-7.
BATCH_TOL = dict(atol=1e-5, rtol=1e-5)


def assert_same_run(batched_result, sequential_result, what):
    b, s = batched_result, sequential_result
    np.testing.assert_allclose(b["test_losses"], s["test_losses"], **BATCH_TOL, err_msg=what)
    np.testing.assert_allclose(b["test_accs"], s["test_accs"], atol=1 / s["test_samples"] + 1e-9, err_msg=what)
    for name in ("losses", "clean_losses", "tau_tracking"):
        torch.testing.assert_close(b["tensors"][name], s["tensors"][name], **BATCH_TOL, equal_nan=True, msg=what)
    np.testing.assert_allclose(b["final_taus"], s["final_taus"], **BATCH_TOL, err_msg=what)
    assert b["pruning_events"] == s["pruning_events"] or (
        [e["block"] for e in b["pruning_events"]] == [e["block"] for e in s["pruning_events"]]
    ), what
    assert (b["parameters"], b["train_samples"]) == (s["parameters"], s["train_samples"]), what


@pytest.mark.parametrize("architecture", ["resnet", "fracdnn"])
def test_each_batched_member_is_its_sequential_run(architecture):
    from repronets.tau import grouped

    p = smoke_params(epochs=4, train_limit=300, batch_size=50, momentum=0.5, device="cpu")
    runs = batched_group(p)
    if architecture == "fracdnn":  # the FracDNN has no pruning and no "first" mode
        runs = [E.run_spec(p, "fracdnn", "digits", seed, T, trainable=t, dependent=d)
                for seed, T, t, d in [(0, 1.0, True, False), (1, 6.0, False, False), (2, 1.0, True, True)]]  # fmt: skip
    together = grouped.train_members(p, runs)
    for run, result in zip(runs, together):
        assert result["batched_members"] == len(runs)
        assert_same_run(result, trial.train_one(p, run), f"{run['architecture']} seed {run['seed']}")
    if architecture == "resnet":
        assert [e["block"] for e in together[3]["pruning_events"]][:1] == [1] and together[3]["parameters"] < 58006


def test_a_pruned_block_is_the_network_without_it():
    torch.manual_seed(0)
    model, x = TauResNet(64, T=1.0), torch.randn(7, 64)
    with torch.no_grad():
        model.blocks[3].tau.zero_()
    zeroed = model(x)
    model.remove_block(3)
    assert torch.equal(model(x), zeroed)


def test_an_interrupted_batch_resumes_from_its_checkpoint_with_the_same_numbers(tmp_path, monkeypatch):
    from repronets.tau import grouped

    p = smoke_params(epochs=4, train_limit=200, batch_size=50, momentum=0.5, device="cpu")
    runs = batched_group(p)
    whole = grouped.train_members(p, runs)
    monkeypatch.setattr(grouped._TauGroup, "checkpoint_every_s", 0.0)
    prune = grouped._TauGroup.prune

    def interrupted(self):
        prune(self)
        if self.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(grouped._TauGroup, "prune", interrupted)
    ckpt = tmp_path / "group.pt"
    with pytest.raises(KeyboardInterrupt):
        grouped.train_members(p, runs, ckpt)
    monkeypatch.setattr(grouped._TauGroup, "prune", prune)
    resumed = grouped.train_members(p, runs, ckpt)
    for a, b in zip(resumed, whole):
        assert a["test_losses"] == b["test_losses"] and a["pruning_events"] == b["pruning_events"]
        assert torch.equal(a["tensors"]["losses"], b["tensors"]["losses"])
        assert torch.equal(a["tensors"]["tau_tracking"].nan_to_num(-1), b["tensors"]["tau_tracking"].nan_to_num(-1))


def test_batched_runs_are_stored_under_the_sequential_runs_keys(tmp_path):
    p = smoke_params(epochs=1, train_limit=200, T_values=[1.0, 6.0], seeds=[0, 1])
    alone = E.run(dataclasses.replace(p, batch_runs=False), RunStore(tmp_path / "alone"))
    together = E.run(p, RunStore(tmp_path / "together"))
    assert [r.key for r in together] == [r.key for r in alone]
    assert {r.meta.get("batch", {}).get("members") for r in together} == {
        12,
        8,
    }  # ResNet: 3 configurations × 2 T × 2 seeds; FracDNN: 2 × 2 × 2
    assert all("batch" not in r.meta for r in alone)
    again = E.run(p, RunStore(tmp_path / "together"))
    assert all(r.cached for r in again)
    assert not list((tmp_path / "together" / "tau" / "_groups").glob("*/checkpoint.pt"))
