"""Paper 1: the cost of trainable step sizes, and of the original's data path.

Step: one SGD step (forward, backward, update; batch 100, 784 → 100, 5 blocks, 100 → 10) of the τ-ResNet with
trainable τ, with all τ fixed, and of the same residual MLP without τ (x + σ(Wx + b)), which is the baseline.
Epoch: one training epoch on MNIST (600 steps) through ``repronets.core.train.fit`` with the in-memory tensor loader,
against the same epoch fed by a per-sample DataLoader like the original's (PIL decoding + ToTensor per image).
"""

import torch
import torch.nn.functional as F
from bench_data_loading import PerSampleMNIST
from repronets.core import data, train
from repronets.tau.models import TauResNet
from repronets.tau.training import TauTracker, objective
from runner import Suite
from torch import nn
from torch.utils.data import DataLoader


class ResidualMLP(nn.Module):
    """The τ-ResNet's layers without τ: the reference for what τ costs."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(784, 100)
        self.blocks = nn.ModuleList(nn.Linear(100, 100) for _ in range(5))
        self.classifier = nn.Linear(100, 10, bias=False)

    def forward(self, x):
        x = F.relu(self.first(x.flatten(1)))
        for b in self.blocks:
            x = x + F.relu(b(x))
        return self.classifier(x)


def suite() -> Suite:
    x, y = torch.rand(100, 1, 28, 28), torch.randint(0, 10, (100,))

    def step(model, loss_fn):
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def run():
            loss, _ = loss_fn(model, x, y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        return run

    plain = lambda m, x, y: (F.cross_entropy(m(x), y), {})  # noqa: E731
    s = Suite("tau_step", "one SGD step, batch 100, MNIST-sized τ-ResNet (784-100×6-10)", unit="step", min_run_time=2.0)
    s.add("residual MLP without τ", step(ResidualMLP(), plain), baseline=True)
    s.add("τ-ResNet, τ trainable, cross-entropy", step(TauResNet(), plain))
    s.add("τ-ResNet, τ fixed (all), cross-entropy", step(TauResNet(tau_trainable=False, fixed="all"), plain))
    s.add("τ-ResNet, τ trainable, + L1 and horizon terms", step(TauResNet(), objective(1.0, horizon=0.5, l1=0.01)))
    return s


def epoch_suite() -> Suite:
    try:
        split, source = data.load("mnist", "train"), "real MNIST"
    except data.DatasetNotFound:
        split = data.Split(
            "mnist", "train", torch.rand(60_000, 1, 28, 28), torch.randint(0, 10, (60_000,)), tuple(map(str, range(10)))
        )
        source = "random images of MNIST's shape"
    config = train.TrainConfig(epochs=1, batch_size=100, lr=0.01, device="cpu", progress=False)

    def ours():
        train.fit(TauResNet(), split, config, loss_fn=objective(1.0), callbacks=[TauTracker(6)])

    per_sample = DataLoader(
        PerSampleMNIST((split.x[:, 0] * 255).round().to(torch.uint8), split.y),
        batch_size=100,
        shuffle=True,
        num_workers=0,
    )

    def original_style():
        model = TauResNet()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        loss_fn = objective(1.0)
        for xb, yb in per_sample:
            loss, _ = loss_fn(model, xb, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()

    s = Suite(
        "tau_epoch",
        f"one training epoch of the τ-ResNet on MNIST, 600 steps of 100 ({source})",
        unit="epoch",
        min_run_time=5.0,
    )
    s.add("per-sample PIL DataLoader, plain loop (as the original)", original_style, baseline=True)
    s.add("repronets: tensor batches, train.fit with τ tracking", ours)
    return s


SUITES = [suite, epoch_suite]
