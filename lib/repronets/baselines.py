"""Notebook 00: the data every paper uses, and reference baselines on it.

The baselines are the floor the papers' models should beat on the same data and budget: softmax regression
and a one-hidden-layer ReLU MLP, trained with the τ paper's protocol (plain SGD, cross-entropy, no
augmentation, pixels in [0, 1]). Run them without Jupyter with ``python -m repronets.baselines --profile quick``.
"""

from __future__ import annotations

import dataclasses
import sys

import torch
from torch import nn

from . import data, train
from .counting import count_parameters
from .params import CommonParams, param
from .results import RunStore

MODELS = ("softmax", "mlp")
# Part of every run's key: bump it when a change alters these runs' numbers, so finished runs made by the
# older code are not reused (they stay in the run store, under their old keys).
CODE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Params(CommonParams):
    datasets: list[str] = param(choices=data.DATASETS, doc="datasets to describe and train on")
    train_limit: int = param(ge=0, doc="stratified subset of the training split; 0 = all of it")
    models: list[str] = param(choices=MODELS, doc="baselines to train")
    hidden: int = param(ge=1, doc="width of the MLP's hidden layer")
    epochs: int = param(ge=1)
    batch_size: int = param(ge=1)
    lr: float = param(gt=0.0, doc="SGD learning rate")
    seeds: list[int] = param(ge=0, doc="one run per seed; bands show their spread")
    samples_per_class: int = param(ge=1, le=20, doc="images per class in the sample grid")


def build_model(name: str, input_shape: tuple[int, ...], num_classes: int, hidden: int) -> nn.Module:
    features = int(torch.tensor(input_shape).prod())
    if name == "softmax":
        return nn.Sequential(nn.Flatten(), nn.Linear(features, num_classes))
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))
    raise ValueError(f"unknown baseline {name!r}: choose one of {MODELS}")


def load_splits(p: Params, name: str):
    return data.train_test(name, root=p.data_root or None, download=p.download, train_limit=p.train_limit)


def describe(p: Params, name: str) -> dict:
    """A dataset card: sizes, shape, classes, class balance and pixel statistics of the training split."""
    tr, te = load_splits(p, name)
    counts = torch.bincount(tr.y, minlength=tr.num_classes).float()
    return {
        "dataset": name,
        "train": len(tr),
        "test": len(te),
        "input shape": "×".join(map(str, tr.input_shape)),
        "classes": tr.num_classes,
        "smallest class share": float(counts.min() / counts.sum()),
        "largest class share": float(counts.max() / counts.sum()),
        "pixel mean": float(tr.x.mean()),
        "pixel std": float(tr.x.std()),
    }


def run_params(p: Params, dataset: str, model: str, seed: int) -> dict:
    """What determines one run's numbers: its key. Where the data lives and the device are not part of it
    (the device is recorded in the run's metadata)."""
    return {
        "code_version": CODE_VERSION,
        "dataset": dataset,
        "model": model,
        "seed": seed,
        "train_limit": p.train_limit,
        "hidden": p.hidden if model == "mlp" else None,
        "epochs": p.epochs,
        "batch_size": p.batch_size,
        "optimizer": "sgd",
        "lr": p.lr,
    }


def train_one(p: Params, run: dict, checkpoint=None) -> dict:
    tr, te = load_splits(p, run["dataset"])
    torch.manual_seed(run["seed"])
    model = build_model(run["model"], tr.input_shape, tr.num_classes, p.hidden)
    config = train.TrainConfig(
        epochs=run["epochs"],
        batch_size=run["batch_size"],
        optimizer=run["optimizer"],
        lr=run["lr"],
        seed=run["seed"],
        device=p.device,
        eval_before=True,
        log_steps=False,
        name=f"{run['dataset']}/{run['model']}/seed{run['seed']}",
    )
    history = train.fit(model, tr, config, test_data=te, checkpoint=checkpoint)
    return {
        "epochs": history.epochs,
        "final_test_acc": history.epochs["test_acc"][-1],
        "final_test_loss": history.epochs["test_loss"][-1],
        "parameters": count_parameters(model, trainable_only=False),
        "train_samples": len(tr),
        "test_samples": len(te),
    }


def run(p: Params, store: RunStore | None = None):
    """Every (dataset, model, seed) run of the profile; finished runs are loaded, the rest trained."""
    store = store or RunStore()
    grid = [run_params(p, d, m, s) for d in p.datasets for m in p.models for s in p.seeds]
    return [store.run("baselines", g, lambda g, ckpt: train_one(p, g, ckpt), device=p.device) for g in grid]


if __name__ == "__main__":
    from .cli import experiment_main

    sys.exit(experiment_main("00_data_and_baselines", run))
