import subprocess
import sys
import textwrap

import pytest
import torch
from repronets.core import data, train
from torch import nn


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train").take(400, seed=0), data.load("digits", "test")


def mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 10))


def config(**kw):
    base = dict(
        epochs=4,
        batch_size=32,
        lr=0.1,
        momentum=0.9,
        seed=7,
        eval_before=True,
        device="cpu",
        scheduler="multistep",
        milestones=(2,),
        gamma=0.5,
    )
    return train.TrainConfig(**(base | kw))


def same_state(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_it_learns_and_logs_steps_and_epochs(digits):
    tr, te = digits
    h = train.fit(mlp(), tr, config(), test_data=te)
    assert h.epochs["epoch"] == [0, 1, 2, 3, 4]
    assert len(h.steps["loss"]) == 4 * 13 and len(h.epochs["train_loss"]) == 4
    assert h.epochs["test_acc"][0] < 0.3 < 0.85 < h.epochs["test_acc"][-1]
    assert h.epochs["lr"] == [0.1, 0.1, 0.05, 0.05]  # multistep: halved after epoch 2
    assert h.epochs["train_loss"][-1] < h.epochs["train_loss"][0]


def test_same_seed_same_numbers_bit_for_bit(digits):
    tr, te = digits
    a, b = mlp(), mlp()
    ha, hb = train.fit(a, tr, config(), test_data=te), train.fit(b, tr, config(), test_data=te)
    assert ha.steps == hb.steps and ha.epochs["test_loss"] == hb.epochs["test_loss"] and same_state(a, b)
    hc = train.fit(mlp(), tr, config(seed=8), test_data=te)
    assert hc.steps["loss"] != ha.steps["loss"]


class InterruptAfter:
    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, state):
        if state.epoch == self.epoch:
            raise KeyboardInterrupt


def test_resume_after_interrupt_gives_the_uninterrupted_numbers(digits, tmp_path):
    tr, te = digits
    reference = mlp()
    h_ref = train.fit(reference, tr, config(), test_data=te)
    ckpt = tmp_path / "ckpt.pt"
    with pytest.raises(KeyboardInterrupt):
        train.fit(mlp(), tr, config(), test_data=te, checkpoint=ckpt, callbacks=[InterruptAfter(2)])
    assert ckpt.exists()
    resumed = mlp(seed=123)  # different initial weights: all must come from the checkpoint
    h = train.fit(resumed, tr, config(), test_data=te, checkpoint=ckpt)
    assert h.steps == h_ref.steps and h.epochs["test_acc"] == h_ref.epochs["test_acc"]
    assert same_state(resumed, reference)


def test_resume_after_the_process_was_killed(digits, tmp_path):
    tr, te = digits
    ckpt = tmp_path / "ckpt.pt"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(__import__("pathlib").Path(__file__).parent)!r})
        from test_train import mlp, config
        from repronets.core import data, train
        tr, te = data.load("digits", "train").take(400, seed=0), data.load("digits", "test")
        class Kill:
            def after_epoch(self, state):
                if state.epoch == 3:
                    os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: as a killed job
        train.fit(mlp(), tr, config(), test_data=te, checkpoint={str(ckpt)!r}, callbacks=[Kill()])
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    saved = torch.load(ckpt, weights_only=False)
    assert saved["epoch"] == 2  # killed during epoch 3's callbacks, before its checkpoint
    resumed, reference = mlp(), mlp()
    h = train.fit(resumed, tr, config(), test_data=te, checkpoint=ckpt)
    h_ref = train.fit(reference, tr, config(), test_data=te)
    assert h.steps == h_ref.steps and same_state(resumed, reference)


class StopAt:
    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, state):
        state.stop = state.stop or state.epoch == self.epoch


def test_a_stopped_run_stays_stopped_and_the_checkpoint_interval_is_honoured(digits, tmp_path):
    tr, te = digits
    ckpt = tmp_path / "ckpt.pt"
    h = train.fit(mlp(), tr, config(epochs=6), checkpoint=ckpt, callbacks=[StopAt(3)])
    assert h.epochs["epoch"][-1] == 3 and torch.load(ckpt, weights_only=False)["stop"]
    # resuming from the checkpoint of a run that stopped early trains no further epoch
    assert train.fit(mlp(), tr, config(epochs=6), checkpoint=ckpt, callbacks=[StopAt(3)]).epochs == h.epochs
    rare = tmp_path / "rare.pt"
    with pytest.raises(KeyboardInterrupt):
        train.fit(mlp(), tr, config(checkpoint_every_s=3600.0), checkpoint=rare, callbacks=[InterruptAfter(3)])
    assert not rare.exists()  # within the interval: no checkpoint written yet
    frequent = tmp_path / "frequent.pt"
    with pytest.raises(KeyboardInterrupt):
        train.fit(mlp(), tr, config(checkpoint_every_s=0.0), checkpoint=frequent, callbacks=[InterruptAfter(3)])
    assert torch.load(frequent, weights_only=False)["epoch"] == 2


def test_checkpoint_of_another_config_is_refused(digits, tmp_path):
    tr, te = digits
    ckpt = tmp_path / "ckpt.pt"
    train.fit(mlp(), tr, config(epochs=1), checkpoint=ckpt)
    with pytest.raises(ValueError, match="another config.*lr"):
        train.fit(mlp(), tr, config(epochs=1, lr=0.2), checkpoint=ckpt)


def test_non_finite_loss_names_run_step_and_epoch(digits):
    tr, _ = digits
    calls = {"n": 0}

    def exploding(model, x, y):
        calls["n"] += 1
        loss = nn.functional.cross_entropy(model(x), y)
        return (loss * float("nan") if calls["n"] == 17 else loss), {}

    with pytest.raises(train.NonFiniteLossError, match=r"run 'exploder': loss is nan at step 17 \(epoch 2\)"):
        train.fit(mlp(), tr, config(name="exploder"), loss_fn=exploding)


def test_callbacks_can_replace_the_model_and_rebuild_the_optimizer(digits):
    tr, _ = digits

    class Widen:
        def after_epoch(self, state):
            if state.epoch == 1:
                state.model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
                state.rebuild_optimizer()

    class StopAt:
        def after_epoch(self, state):
            state.stop = state.epoch == 3

    h = train.fit(mlp(), tr, config(epochs=10), callbacks=[Widen(), StopAt()])
    assert h.epochs["epoch"] == [1, 2, 3]


def test_bad_config_and_unavailable_device_are_clear():
    with pytest.raises(ValueError, match="optimizer 'lbfgs'"):
        config(optimizer="lbfgs")
    with pytest.raises(ValueError, match="amp 'fp8'"):
        config(amp="fp8")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            train.resolve_device("cuda")


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_on_cpu_warns_and_trains_in_float32(digits, amp):
    tr, te = digits
    seen = set()

    def recording(model, x, y):  # the dtypes of what the step computes, in training and in evaluation
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y)
        seen.update({logits.dtype, loss.dtype})
        return loss, {}

    model = mlp()
    # config() forces the CPU, so the warning is due whether or not this machine has CUDA.
    with pytest.warns(UserWarning, match=f"amp='{amp}' needs CUDA; training in float32 on cpu"):
        h = train.fit(model, tr, config(epochs=1, amp=amp), test_data=te, loss_fn=recording)
    assert len(h.epochs["epoch"]) == 2 and seen == {torch.float32}
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_evaluate_weights_by_batch_size(digits):
    _, te = digits
    model = mlp()
    whole = train.evaluate(model, te, batch_size=10_000)
    pieces = train.evaluate(model, te, batch_size=7)
    assert whole["acc"] == pytest.approx(pieces["acc"]) and whole["loss"] == pytest.approx(pieces["loss"], rel=1e-5)


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 cut short", b"not a checkpoint at all"])
def test_an_unreadable_checkpoint_is_named_moved_aside_and_the_run_restarts(digits, tmp_path, content):
    tr, te = digits
    h_ref = train.fit(mlp(), tr, config(), test_data=te)
    ckpt = tmp_path / "checkpoint.pt"
    ckpt.write_bytes(content)
    with pytest.warns(UserWarning, match=rf"checkpoint {ckpt} cannot be read .* this run restarts from scratch"):
        h = train.fit(mlp(), tr, config(), test_data=te, checkpoint=ckpt)
    assert h.steps == h_ref.steps  # from scratch: the numbers of a run that never had a checkpoint
    (aside,) = tmp_path.glob("checkpoint.pt.unreadable-*")
    assert aside.read_bytes() == content  # kept for inspection, nothing lost
