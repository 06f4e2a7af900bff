"""Batched runs (repronets.tau.grouped): what one member-epoch of the τ-ResNet costs when R runs train as one, against
one sequential run's epoch (train.fit, the same objective and τ tracking, no evaluation), with 1 and with 2
threads: on MNIST (600 steps of 100; the paper profile) and on the embedded digits (14 steps of 100; the quick
profile). The members are seeds of the trainable-τ ResNet (T = 1).
"""

import dataclasses

import torch
from repronets.core import data, train
from repronets.runs import params
from repronets.tau import experiment as E
from repronets.tau import grouped, trial
from repronets.tau.models import TauResNet
from repronets.tau.training import TauTracker, objective
from runner import Suite

MEMBERS = (1, 8, 32)


def training_split(dataset: str):
    if dataset == "digits":
        return data.load("digits", "train"), "digits"
    try:
        return data.load("mnist", "train"), "real MNIST"
    except data.DatasetNotFound:
        x, y = torch.rand(60_000, 1, 28, 28), torch.randint(0, 10, (60_000,))
        return data.Split("mnist", "train", x, y, tuple(map(str, range(10)))), "random images of MNIST's shape"


def suite_for(dataset: str, threads: int):
    def make() -> Suite:
        torch.set_num_threads(threads)
        split, source = training_split(dataset)
        p = dataclasses.replace(params.load("01_tau_speedup", "quick"), datasets=[dataset], epochs=1, device="cpu")
        features = split.x[0].numel()
        epochs = 1 if dataset == "mnist" else 10  # so fit's set-up is not counted as part of one short epoch
        config = train.TrainConfig(epochs=epochs, batch_size=100, lr=p.lr, device="cpu", progress=False)

        def sequential():
            torch.manual_seed(0)
            train.fit(TauResNet(features), split, config, loss_fn=objective(1.0), callbacks=[TauTracker(6)])

        def together(size: int):
            runs = [E.run_spec(p, "resnet", dataset, seed, 1.0, trainable=True) for seed in range(size)]
            group = grouped._TauGroup(runs, [trial.build_model(r, features, 10) for r in runs], torch.device("cpu"))
            epoch = iter(range(1, 10**6))
            return lambda: group.train_epoch(split, next(epoch))

        steps = -(-len(split) // 100)
        s = Suite(
            f"tau_batched_{dataset}_t{threads}",
            f"τ-ResNet member-epochs, {steps} steps of 100 ({source}), {threads} thread(s)",
            unit="member-epoch",
            min_run_time=1.0,
        )
        s.add("one sequential run (train.fit)", sequential, baseline=True, units=epochs)
        for size in MEMBERS:
            s.add(f"batched, R = {size}", together(size), units=size, note=f"one call trains {size} member(s)")
        return s

    return make


SUITES = [suite_for(d, t) for d in ("digits", "mnist") for t in (1, 2)]


def sss_suite_for(model: str, threads: int = 1):
    """Paper 3: R repeats of one SSS-benchmark run (digits, share 1.0, full batch, Adam: the original protocol) as one
    batch, per epoch (one step and the protocol's two evaluations), against one sequential run's epoch (train.fit
    with the original's stopping callback). The goal of the issue: 32 repeats in at most 3× one run's time."""

    def make() -> Suite:
        from repronets.sss import experiment as S
        from repronets.sss import grouped as sss_batched
        from repronets.sss import trial as sss_trial

        torch.set_num_threads(threads)
        p = params.load("03_sss_benchmarks", "quick")
        p = dataclasses.replace(p, max_epochs=10**6, min_epochs=10**6 - 1)  # never stops while timed
        dataset = S.load_dataset(p, "digits")

        def runs(size: int):
            return [S.run_spec(p, "digits", 1.0, model, 50, r, "double_softmax") for r in range(size)]

        def sequential():
            (run,) = runs(1)
            tr, val, _, net = sss_trial.prepare(p, run, dataset)
            rule = sss_trial.OriginalStopping(
                tr, val, run["min_epochs"], run["patience"], run["min_improvement"], 100_000
            )
            config = train.TrainConfig(epochs=20, batch_size=100_000, optimizer="adam", lr=p.lr, device="cpu")
            return lambda: train.fit(net, tr, config, callbacks=[rule], checkpoint=None)  # 20 epochs: see units

        def together(size: int):
            members = runs(size)
            group = sss_batched._SSSGroup(
                members, [sss_trial.prepare(p, r, dataset) for r in members], torch.device("cpu")
            )
            return group.train_epoch

        s = Suite(
            f"sss_batched_{model}_t{threads}",
            f"SSS benchmark ({model}, h = 50) on digits, share 1.0, one epoch of the original protocol, "
            f"{threads} thread(s): R repeats per call",
            unit="epoch",
            min_run_time=1.0,
        )
        s.add("one sequential run (train.fit + the original's evaluations)", sequential(), baseline=True, units=20)
        for size in MEMBERS:
            s.add(f"batched, R = {size} repeats", together(size), note=f"one call: an epoch of {size} run(s)")
        return s

    return make


SUITES += [sss_suite_for(m) for m in ("standard_nn", "ss_2_dim", "rank_1")]
