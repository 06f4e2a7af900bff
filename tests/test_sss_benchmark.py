"""Paper 3, the benchmark: models, data, protocol and results of docs/papers/sss.md §2–4 and §7."""

import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from repronets.core import data, train
from repronets.core.counting import count_macs, count_parameters
from repronets.report import claims
from repronets.report.plotting import plt
from repronets.runs import params
from repronets.runs.results import RunStore
from repronets.sss import analysis, experiment, models, reference, trial
from repronets.sss.layer import SSSLinear, per_stage_forward


@pytest.mark.parametrize("dataset", list(reference.MODEL_PARAMETERS))
def test_model_parameter_counts_of_the_reference(dataset):
    shape, classes = reference.MODEL_INPUTS[dataset]
    got = {k: count_parameters(models.build(k, shape, classes, 50), trainable_only=False) for k in models.model_keys()}
    assert got == reference.MODEL_PARAMETERS[dataset]


def test_hidden_layers_are_named_factories_in_the_originals_order():
    assert models.HIDDEN_LAYERS.names() == models.model_keys(models.STATE_DIMS)  # standard_nn, ss_1_dim …, rank_1
    rng = np.random.default_rng(0)
    assert type(models.HIDDEN_LAYERS.create("standard_nn", 12, rng)) is torch.nn.Linear
    assert type(models.HIDDEN_LAYERS.create("rank_1", 12, rng)) is models.Rank1Linear
    for s in models.STATE_DIMS:
        layer = models.HIDDEN_LAYERS.create(f"ss_{s}_dim", 12, rng)
        assert isinstance(layer, SSSLinear) and layer.state_dim == s and layer.stages == 12
    hidden = models.build("ss_3_dim", (16,), 10, 12).hidden
    assert isinstance(hidden, SSSLinear) and hidden.state_dim == 3


def test_conv_features_and_rank1_layer():
    for shape, conv_params in reference.CONV_PARAMETERS.items():
        f = models.ConvFeatures(shape)
        assert f.out_features == reference.CONV_FEATURES
        assert count_parameters(f, trainable_only=False) == conv_params
    layer = models.Rank1Linear(50, np.random.default_rng(0))
    assert count_parameters(layer, trainable_only=False) == 150
    assert float(layer.v1.detach().abs().max()) <= math.sqrt(6 / 51)
    assert float(layer.bias.detach().abs().max()) <= math.sqrt(6 / 50)
    x = torch.randn(3, 50)
    assert torch.allclose(layer(x), x @ layer.dense().T + layer.bias, atol=1e-5)
    assert torch.linalg.matrix_rank(layer.dense()) == 1
    assert not models.uses_conv((1, 8, 8)) and models.uses_conv((1, 28, 28))


def test_outputs_double_softmax_or_logits():
    x = torch.randn(4, 16)
    probs = models.build("ss_2_dim", (16,), 10, 20, "softmax", seed=1)(x)
    logits = models.build("ss_2_dim", (16,), 10, 20, "logits", seed=1)(x)
    assert torch.allclose(probs.sum(1), torch.ones(4)) and torch.allclose(probs, torch.softmax(logits, 1))
    with pytest.raises(ValueError, match="output"):
        models.build("standard_nn", (16,), 10, 20, "probabilities")
    with pytest.raises(KeyError, match="unknown model 'ss_x_dim'"):
        models.build("ss_x_dim", (16,), 10, 20)


def test_builds_are_seeded():
    a, b = models.build("ss_3_dim", (16,), 10, 20, seed=4), models.build("ss_3_dim", (16,), 10, 20, seed=4)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_stopping_rule_is_the_originals():
    rule = trial.OriginalStopping(
        None, None, min_epochs=200, patience=20, min_improvement=5e-4, eval_batch_size=100_000
    )
    flat = [0.5] * 300
    assert not rule.should_stop(flat[:200])  # never before epoch 201
    assert rule.should_stop(flat[:201])  # no improvement at all: stops at 201
    rising = list(np.linspace(0.1, 0.9, 260))
    assert not rule.should_stop(rising)  # still improving by more than 5e-4 within the window
    tiny = [0.5] * 230 + [0.5004] * 20  # an improvement below min_improvement does not count
    assert rule.should_stop(tiny)
    small = trial.OriginalStopping(None, None, min_epochs=0, patience=5, min_improvement=5e-4, eval_batch_size=1)
    assert not small.should_stop([0.1] * 10)  # epochs must exceed 2·patience
    assert small.should_stop([0.1] * 11)


def test_shares_are_nested_and_validation_is_15_percent():
    n = reference.PENDIGITS_TRAIN_SAMPLES
    split = data.Split("pendigits", "train", torch.arange(float(n))[:, None], torch.arange(n) % 10, tuple("0123456789"))
    expected = reference.PENDIGITS_SHARE_0_1
    tenth = trial.share_of(split, 0.1, seed=0)
    assert len(tenth) == expected["samples"]  # ⌊0.1·7494⌋, as sklearn's train_test_split(train_size=0.1)
    half = trial.share_of(split, 0.5, seed=0)
    assert set(tenth.x[:, 0].tolist()) <= set(half.x[:, 0].tolist())
    train_part, val = trial.validation_split(tenth, 0.15, seed=0)
    assert (len(train_part), len(val)) == (expected["train"], expected["validation"])
    assert not set(train_part.x[:, 0].tolist()) & set(val.x[:, 0].tolist())


def test_pendigits_reader(tmp_path):
    folder = tmp_path / "pendigits"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, rows in (("pendigits.tra", 30), ("pendigits.tes", 12)):
        table = np.c_[rng.integers(0, 101, (rows, 16)), np.arange(rows) % 10]
        # the UCI files pad numbers to width 3 with spaces after the comma
        (folder / name).write_text("\n".join(",".join(f"{v:3d}" for v in row) for row in table) + "\n")
    tr = data.load("pendigits", "train", root=tmp_path)
    te = data.load("pendigits", "test", root=tmp_path)
    assert tr.x.shape == (30, 16) and te.x.shape == (12, 16) and tr.num_classes == 10
    assert float(tr.x.max()) <= 100 and tr.y.tolist()[:3] == [0, 1, 2]
    with pytest.raises(data.DatasetNotFound, match="pendigits"):
        data.load("pendigits", "train", root=tmp_path / "nowhere")


def _postures_csv(rows: int) -> str:
    header = "Class,User," + ",".join(f"{a}{i}" for i in range(12) for a in "XYZ")
    lines = [header, ",".join(["0"] * 38)]  # the all-zero first row the original skips
    rng = np.random.default_rng(1)
    for r in range(rows):
        values = [f"{v:.3f}" for v in rng.normal(0, 50, 36)]
        if r % 3 == 0:
            values[-3:] = ["?"] * 3  # a missing marker
        lines.append(",".join([str(1 + r % 5), str(r % 14), *values]))
    return "\n".join(lines) + "\n"


def test_hand_postures_reader(tmp_path):
    folder = tmp_path / "hand_postures"
    folder.mkdir()
    inner = tmp_path / "Postures.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("Postures.csv", _postures_csv(50))
    with zipfile.ZipFile(folder / "hand_postures.zip", "w") as z:  # the UCI download wraps Postures.zip
        z.write(inner, "Postures.zip")
    (folder / "hand_postures.zip").rename(folder / "Postures.zip")
    tr = data.load("hand_postures", "train", root=tmp_path)
    te = data.load("hand_postures", "test", root=tmp_path)
    assert (len(tr), len(te)) == (40, 10) and tr.x.shape[1] == 36  # 80/20; Class and User are not features
    assert tr.num_classes == 5 and int(tr.y.min()) == 0  # classes 1..5 shifted to 0..4
    assert torch.isfinite(tr.x).all() and (tr.x[:, -3:] == 0).any()  # '?' became 0
    assert not (tr.x == 0).all(1).any()  # the all-zero row was skipped
    again = data.load("hand_postures", "train", root=tmp_path)
    assert torch.equal(tr.x, again.x)  # the split is seeded
    with pytest.raises(data.DatasetNotFound, match="'hand_postures' not found .*Postures.csv or .*Postures.zip"):
        data.load("hand_postures", "train", root=tmp_path / "nowhere")


def test_raw_and_scaled_inputs():
    split = data.Split(
        "pendigits", "train", torch.tensor([[0.0, 10.0], [100.0, 30.0]]), torch.tensor([0, 1]), ("0", "1")
    )
    raw = trial.prepare_inputs(split, [split], "raw")
    assert torch.equal(raw[0].x, split.x)
    scaled = trial.prepare_inputs(split, [split], "scaled")
    assert torch.allclose(scaled[0].x.mean(0), torch.zeros(2)) and torch.allclose(scaled[0].x.std(0), torch.ones(2))
    images = data.Split("digits", "train", torch.full((2, 1, 8, 8), 0.5), torch.tensor([0, 1]), ("0", "1"))
    assert float(trial.prepare_inputs(images, [], "raw")[0].x.max()) == 8.0  # 17 grey levels, 0..16


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    p = params.load("03_sss_benchmarks", "smoke")
    p = type(p)(**{**params.as_dict(p), "losses": ["double_softmax", "logits"], "models": ["standard_nn", "ss_2_dim"]})
    store = RunStore(tmp_path_factory.mktemp("runs"))
    return p, store, experiment.run(p, store)


def test_runs_follow_the_protocol_and_keep_the_structure(smoke_runs):
    p, store, runs = smoke_runs
    assert len(runs) == len(p.training_set_shares) * 2 * len(p.widths) * p.repeats * 2
    for r in runs:
        res = r.result
        epochs = res["epochs"]
        assert p.min_epochs < epochs <= p.max_epochs
        assert len(res["training_loss_history"]) == len(res["val_accuracy_history"]) == epochs
        if r.params["loss"] == "double_softmax":  # bounded below by log(1 + 9/e) with the second softmax
            assert min(res["training_loss_history"]) > math.log(1 + 9 / math.e)
        if r.params["model"] == "ss_2_dim":
            assert max(res["hankel_ranks_after_training"]) <= 2  # structure kept through training
    again = experiment.run(p, store)
    assert all(r.cached for r in again) and [r.result for r in again] == [r.result for r in runs]


def test_original_results_file(smoke_runs, tmp_path):
    p, _, runs = smoke_runs
    (path,) = experiment.export(runs, tmp_path)
    assert path.name == "benchmark_results.json"
    out = json.loads(path.read_text())
    assert set(experiment.ORIGINAL_HEADER_KEYS) <= set(out) and len(experiment.ORIGINAL_HEADER_KEYS) == 7
    assert out["nb_iterations"] == p.repeats and out["batch_size"] == 100000
    share = str(p.training_set_shares[0])
    entry = out["digits"][share]["ss_2_dim"][str(p.widths[0])]["0"]
    assert set(entry) == {*experiment.ORIGINAL_ENTRY_KEYS, "provenance"} and len(experiment.ORIGINAL_ENTRY_KEYS) == 6
    assert "ss_2_dim@logits" in out["digits"][share]
    assert entry["nb_model_parameters"] == count_parameters(
        models.build("ss_2_dim", (1, 8, 8), 10, p.widths[0]), trainable_only=False
    )


def test_training_is_deterministic(smoke_runs):
    p, _, runs = smoke_runs  # the fixture's runs were trained in batches
    once, again = (experiment.train_one(p, runs[1].params) for _ in range(2))
    assert again["test_accuracy"] == once["test_accuracy"]
    assert again["training_loss_history"] == once["training_loss_history"]
    assert runs[1].meta["batch"]["members"] == 2  # a group: one model and share, two losses
    np.testing.assert_allclose(once["training_loss_history"], runs[1].result["training_loss_history"], rtol=1e-4)


def test_complexity_counts(tmp_path):
    p = params.load("03_sss_benchmarks", "smoke")
    result = experiment.complexity(p, RunStore(tmp_path)).result
    rows = {(r["n"], r["layer"]): r for r in result["rows"]}
    n = p.complexity_sizes[-1]
    assert rows[(n, "dense")]["macs_per_sample"] == n * n
    for s in p.complexity_states:
        assert rows[(n, f"sss_{s}")]["minimal_macs_per_sample"] == experiment.generator_macs(n, s)
    # the chunked formulation's count grows linearly in n at fixed s and chunk: doubling n doubles it
    layer_a, layer_b = experiment.random_sss(1024, 2), experiment.random_sss(2048, 2)
    layer_a.chunk = layer_b.chunk = 32
    a = experiment.counted_macs(layer_a, torch.randn(1, 1024))
    b = experiment.counted_macs(layer_b, torch.randn(1, 2048))
    assert 1.9 < b / a < 2.3


def test_generator_macs_are_the_references_and_the_per_stage_loops():
    # one multiply-add per generator entry (docs/papers/sss.md §1.3): the reference's weight counts (§1.4) ...
    for n, by_state in reference.LAYER_WEIGHTS.items():
        for s, expected in by_state.items():
            assert experiment.generator_macs(n, s) == expected, (n, s)
    # ... and what the original's stage-by-stage recursions multiply, counted (m = 1; the bias adds no product)
    for n, s in ((7, 1), (16, 2), (33, 3), (40, 5)):
        layer = experiment.random_sss(n, s)
        u = torch.randn(3, n)
        assert count_macs(per_stage_forward, layer, u) == 3 * experiment.generator_macs(n, s), (n, s)


def test_missing_data_is_named_before_any_training(tmp_path):
    p = params.load("03_sss_benchmarks", "smoke")
    p = type(p)(**{**params.as_dict(p), "datasets": ["digits", "pendigits"], "data_root": str(tmp_path / "empty")})
    store = RunStore(tmp_path / "runs")
    with pytest.raises(data.DatasetNotFound, match="pendigits"):
        experiment.run(p, store)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("result.json"))


def _claim_frames():
    """Runs of two shares × two repeats × two losses (hand-set accuracies) and a complexity sweep of three sizes."""
    acc = {  # (loss, share, repeat) → accuracy of dense, SSS s=4, SSS s=1, rank 1
        ("double_softmax", 0.5, 0): (0.80, 0.95, 0.90, 0.40),
        ("double_softmax", 0.5, 1): (0.96, 0.94, 0.91, 0.50),
        ("double_softmax", 1.0, 0): (0.85, 0.97, 0.93, 0.60),
        ("double_softmax", 1.0, 1): (0.97, 0.96, 0.92, 0.55),
        ("logits", 0.5, 0): (0.95, 0.93, 0.92, 0.45),
        ("logits", 1.0, 0): (0.97, 0.95, 0.94, 0.58),
    }
    keys = ("standard_nn", "ss_4_dim", "ss_1_dim", "rank_1")
    rows = [
        {"dataset": "digits", "width": 50, "loss": loss, "share": share, "repeat": r, "key": k, "test_accuracy": a}
        for (loss, share, r), accs in acc.items()
        for k, a in zip(keys, accs)
    ]
    cdf = pd.DataFrame(
        [
            {"n": n, "layer": "dense", "state_dim": None, "seconds": n * n * 1e-9, "macs_per_sample": n * n}
            for n in (64, 256, 1024)
        ]
        + [
            {
                "n": n,
                "layer": f"sss_{s}",
                "state_dim": s,
                "seconds": n * 1e-7 * s,
                "macs_per_sample": 3 * s * n**p,
                "minimal_macs_per_sample": 3 * s * n**p,
            }
            for s, p in ((1, 1.0), (2, 1.5))
            for n in (64, 256, 1024)
        ]
    )
    return pd.DataFrame(rows), cdf


def test_claim_values_are_the_claims_measures():
    df, cdf = _claim_frames()
    values = analysis.claim_values(df, cdf)
    # paired by share and repeat, averaged over the shares per repeat: SSS s=4 − dense
    assert values["sss.beats_dense.double_softmax"] == pytest.approx([(0.15 + 0.12) / 2, (-0.02 - 0.01) / 2])
    assert values["sss.beats_dense.logits"] == pytest.approx([-0.02])  # one repeat, two shares
    # "on several datasets", judged per dataset: the pairs of each dataset apart (a second dataset, mnist, here)
    mnist = df[df.dataset == "digits"].assign(dataset="mnist")
    mnist.loc[mnist.key == "ss_4_dim", "test_accuracy"] += 0.1
    both = analysis.claim_values(pd.concat([df, mnist]), cdf)
    assert both["sss.beats_dense.double_softmax.digits"] == pytest.approx(values["sss.beats_dense.double_softmax"])
    assert both["sss.beats_dense.double_softmax.mnist"] == pytest.approx([0.135 + 0.1, -0.015 + 0.1])
    assert len(both["sss.beats_dense.double_softmax"]) == 4  # the pooled claim: every dataset's pairs
    assert not any(k.startswith("sss.beats_rank1.logits.") for k in both)
    assert values["sss.beats_rank1.double_softmax"] == pytest.approx([(0.50 + 0.33) / 2, (0.41 + 0.37) / 2])
    assert values["sss.cost.linear"] == pytest.approx([1.0, 1.5])  # log-log slopes of n and n^1.5
    assert values["sss.cost.linear.chunked"] == pytest.approx([1.0, 1.5])  # the chunked layer's own counts
    # time ratio SSS / dense at n = 1024: 1024·1e-7·s / (1024²·1e-9)
    assert values["sss.cost.faster_than_dense"] == pytest.approx([1e-7 / 1024e-9, 2e-7 / 1024e-9])
    assert values["sss.parameters"] == [0.0] * len(reference.MODEL_PARAMETERS)
    # without the SSS s=4 runs the dense claims have no pair and are left out (not testable)
    assert not {"sss.beats_dense.double_softmax", "sss.beats_dense.logits"} & set(
        analysis.claim_values(df[df.key != "ss_4_dim"], cdf)
    )
    # a measurement that stops below 1024 does not test "beyond a size"
    assert "sss.cost.faster_than_dense" not in analysis.claim_values(df, cdf[cdf.n < 1024])
    ledger = claims.Ledger(claims.load_claims(Path(__file__).parents[1] / "claims" / "03_sss_benchmarks.yaml"), "quick")
    for claim_id, v in {**both, **values}.items():  # the per-dataset ids exist in the claim file
        ledger.measure(claim_id, v)
    verdicts = {k: d.verdict for k, d in ledger.decisions().items()}
    assert verdicts["sss.parameters"] == "reproduced" and verdicts["sss.cost.linear"] == "not reproduced"  # 1.5
    # two repeats (two state dimensions): however far apart the values, that is below the ledger's minimum of units
    for claim_id in ("sss.beats_rank1.double_softmax", "sss.cost.faster_than_dense"):
        d = ledger.decisions()[claim_id]
        assert (
            d.verdict == "inconclusive" and "at least 3" in d.reason and "(the interval alone: reproduced)" in d.reason
        )


def test_accuracy_distribution_figure_shows_every_run():
    df, _ = _claim_frames()
    df = df.assign(model=[analysis.model_label(k) for k in df.key])
    fig = analysis.accuracy_distribution_figure(df)
    axes = fig.axes
    assert [ax.get_title().split(" · ")[1] for ax in axes] == list(analysis.LOSS_NAMES.values())
    dots = [sum(len(c.get_offsets()) for c in ax.collections) for ax in axes]
    assert dots == [(df.loss == loss).sum() for loss in analysis.LOSS_NAMES]  # one dot per run
    plt.close(fig)


def test_accuracy_distribution_figure_is_the_same_on_every_build():
    import io

    import numpy as np

    df, _ = _claim_frames()
    df = df.assign(model=[analysis.model_label(k) for k in df.key])
    images = []
    for _ in range(2):
        np.random.rand(3)  # whatever the global generator's state, the jitter is the same
        fig = analysis.accuracy_distribution_figure(df)
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        plt.close(fig)
        images.append(buffer.getvalue())
    assert images[0] == images[1]


def test_fit_modes_count_stalled_runs_per_hidden_layer_and_leave_rank1_out():
    rows = [
        # (model, loss, repeat, final training accuracy, test accuracy)
        ("standard_nn", "double_softmax", 0, 0.99, 0.95),
        ("standard_nn", "double_softmax", 1, 0.90, 0.86),
        ("standard_nn", "double_softmax", 2, 0.82, 0.79),
        ("ss_4_dim", "double_softmax", 0, 0.95, 0.93),  # at the border: fitted
        ("ss_4_dim", "double_softmax", 1, 0.949, 0.88),  # just below: stalled
        ("ss_4_dim", "double_softmax", 2, 0.99, 0.96),
        ("rank_1", "double_softmax", 0, 0.60, 0.40),
        ("standard_nn", "logits", 0, 1.0, 0.97),
    ]
    df = pd.DataFrame(
        [
            dict(dataset="digits", width=50, share=1.0, key=k, model=analysis.model_label(k), loss=loss, repeat=r,
                 final_train_loss=1.5, final_train_accuracy=fit, test_accuracy=acc)
            for k, loss, r, fit, acc in rows
        ]
    )  # fmt: skip
    modes = analysis.fit_modes(df).set_index(["loss", "hidden layer"])
    dense, sss4 = analysis.model_label("standard_nn"), analysis.model_label("ss_4_dim")
    ds, lg = analysis.LOSS_NAMES["double_softmax"], analysis.LOSS_NAMES["logits"]
    assert modes.loc[(ds, dense), ["runs", "stalled"]].tolist() == [3, 2]
    assert modes.loc[(ds, dense), "test acc, stalled"] == pytest.approx((0.86 + 0.79) / 2)
    assert modes.loc[(ds, dense), "test acc, fitted"] == pytest.approx(0.95)
    assert modes.loc[(ds, sss4), "stalled"] == 1 and modes.loc[(lg, dense), "stalled"] == 0
    assert analysis.model_label("rank_1") not in modes.index.get_level_values("hidden layer")
    lines = analysis.summary(df, pd.DataFrame(columns=["dataset", "loss"]), pd.DataFrame(), analysis.fit_modes(df))
    assert any(f"{dense} 2/3" in line and f"{sss4} 1/3" in line for line in lines)
    fig = analysis.fit_modes_figure(df)
    assert [sum(len(c.get_offsets()) for c in ax.collections) for ax in fig.axes] == [6, 1]  # one dot per run
    plt.close(fig)


# ---------------------------------------------------------------- batched runs


def batched_runs(model: str, loss: str):
    """Five repeats of one model and share with ``loss`` and one with the other loss: members whose stopping rule
    fires at different epochs (small patience), so frozen members and the per-member double softmax are exercised."""
    p = params.load("03_sss_benchmarks", "smoke")
    p = type(p)(**{**params.as_dict(p), "min_epochs": 3, "max_epochs": 40, "patience": 2, "min_improvement": 0.01})
    other = "logits" if loss == "double_softmax" else "double_softmax"
    runs = [experiment.run_spec(p, "digits", 0.5, model, 20, r, loss) for r in range(5)]
    return p, runs + [experiment.run_spec(p, "digits", 0.5, model, 20, 0, other)]


# Why not bit-identical: vmap's batched products add in another order than one model's; over ≤ 40 full-batch Adam
# epochs the histories agree to about 1e-6.
BATCH_TOL = dict(atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    "model, loss", [("standard_nn", "logits"), ("ss_2_dim", "double_softmax"), ("rank_1", "double_softmax")]
)
def test_each_batched_member_is_its_sequential_run(model, loss):
    from repronets.sss import grouped

    p, runs = batched_runs(model, loss)
    together = grouped.train_members(p, runs)
    epochs = set()
    for run, b in zip(runs, together):
        s = experiment.train_one(p, run)
        what = f"{model} share {run['share']} repeat {run['repeat']}"
        assert b["epochs"] == s["epochs"] and b["batched_members"] == len(runs), what
        for key in trial.HISTORY_KEYS:
            np.testing.assert_allclose(b[key], s[key], **BATCH_TOL, err_msg=f"{what}: {key}")
        np.testing.assert_allclose(b["test_loss"], s["test_loss"], **BATCH_TOL, err_msg=what)
        assert abs(b["test_accuracy"] - s["test_accuracy"]) <= 1 / s["test_samples"] + 1e-9, what
        assert (b["train_samples"], b["nb_model_parameters"]) == (s["train_samples"], s["nb_model_parameters"])
        assert b.get("hankel_ranks_after_training") == s.get("hankel_ranks_after_training"), what
        epochs.add(s["epochs"])
    assert len(epochs) > 1  # the members stopped at different epochs


def test_an_interrupted_sss_batch_resumes_with_the_same_numbers(tmp_path, monkeypatch):
    from repronets.sss import grouped

    p, runs = batched_runs("ss_2_dim", "logits")
    whole = grouped.train_members(p, runs)
    monkeypatch.setattr(train, "SHORT_EPOCHS_CHECKPOINT_S", 0.0)
    save = grouped._SSSGroup.save

    def interrupted(self, path):
        save(self, path)
        if self.epoch == 5:
            raise KeyboardInterrupt

    monkeypatch.setattr(grouped._SSSGroup, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        grouped.train_members(p, runs, tmp_path / "group.pt")
    monkeypatch.setattr(grouped._SSSGroup, "save", save)
    resumed = grouped.train_members(p, runs, tmp_path / "group.pt")
    for a, b in zip(resumed, whole):
        assert {k: v for k, v in a.items() if k != "train_time_s"} == {
            k: v for k, v in b.items() if k != "train_time_s"
        }
