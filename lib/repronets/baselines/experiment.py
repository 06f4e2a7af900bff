"""Notebook 00: the data every paper uses, and reference baselines on it.

The baselines are the floor the papers' models should beat on the same data and budget: softmax regression
and a one-hidden-layer ReLU MLP, trained with the τ paper's protocol (plain SGD, cross-entropy, no
augmentation, pixels in [0, 1]). Run them without Jupyter with ``python -m repronets.baselines --profile quick``.
The models are in :mod:`repronets.baselines.models`, the notebook's tables and figure in
:mod:`repronets.baselines.analysis`, its explorer in :mod:`repronets.baselines.explore`.
"""

from __future__ import annotations

import dataclasses
import functools

import torch
from torch import nn

from ..core import data, train
from ..core.counting import count_parameters
from ..core.members import MemberTrainer
from ..runs.params import FIRST, OptimizerParams, param
from ..runs.results import RunResult, RunStore, canonical
from .models import MODELS

KIND = "baselines"  # the runs' folder in the run store
# Part of every run's key: bump it when a change alters these runs' numbers, so finished runs made by the
# older code are not reused (they stay in the run store, under their old keys).
CODE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Params(OptimizerParams):
    datasets: list[str] = param(choices=data.DATASETS, doc="datasets to describe and train on")
    train_limit: int = param(ge=0, doc="stratified subset of the training split; 0 = all of it", dry=200)
    models: list[str] = param(choices=MODELS.names(), doc="baselines to train")
    hidden: int = param(ge=1, doc="width of the MLP's hidden layer")
    epochs: int = param(ge=1, dry=1)
    batch_size: int = param(ge=1)
    seeds: list[int] = param(ge=0, doc="one run per seed; bands show their spread", dry=FIRST)
    samples_per_class: int = param(ge=1, le=20, doc="images per class in the sample grid")
    batch_runs: bool = param(doc="train the seeds of one baseline as one batch")


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


def run_spec(p: Params, dataset: str, model: str, seed: int) -> dict:
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
        "optimizer": p.optimizer,
        "lr": p.lr,
        "momentum": p.momentum,
        "weight_decay": p.weight_decay,
    }


def build_model(run: dict, tr: data.Split) -> nn.Module:
    """The run's baseline, initialised from its seed."""
    torch.manual_seed(run["seed"])
    options = {"hidden": run["hidden"]} if run["hidden"] is not None else {}  # the MLP's width, None otherwise
    return MODELS.create(run["model"], tr.input_shape, tr.num_classes, **options)


def train_config(p: Params, run: dict) -> train.TrainConfig:
    return train.TrainConfig(
        epochs=run["epochs"],
        batch_size=run["batch_size"],
        **train.optimizer_options(run),
        seed=run["seed"],
        device=p.device,
        eval_before=True,
        log_steps=False,
        name=f"{run['dataset']}/{run['model']}/seed{run['seed']}",
    )


def train_one(p: Params, run: dict, checkpoint=None) -> dict:
    tr, te = load_splits(p, run["dataset"])
    model = build_model(run, tr)
    history = train.fit(model, tr, train_config(p, run), test_data=te, checkpoint=checkpoint)
    return stored_result(model, history, tr, te)


def stored_result(model: nn.Module, history: train.History, tr: data.Split, te: data.Split) -> dict:
    return {
        "epochs": history.epochs,
        "final_test_acc": history.epochs["test_acc"][-1],
        "final_test_loss": history.epochs["test_loss"][-1],
        "parameters": count_parameters(model, trainable_only=False),
        "train_samples": len(tr),
        "test_samples": len(te),
    }


# The run keys that seeds trained together share (everything but the seed).
BATCH_SHARED = ("code_version", "dataset", "model", "train_limit", "hidden", "epochs", "batch_size", "optimizer", "lr",
                "momentum", "weight_decay")  # fmt: skip


def batch_key(run: dict) -> str:
    return canonical({k: run[k] for k in BATCH_SHARED})


def train_members(p: Params, runs: list[dict], checkpoint=None) -> list[dict]:
    """The seeds of one baseline trained as one batch (:class:`repronets.core.members.MemberTrainer`); each result is
    its sequential run's within float tolerance (``tests/test_baselines.py``)."""
    tr, te = load_splits(p, runs[0]["dataset"])
    models = [build_model(r, tr) for r in runs]
    config = train_config(p, runs[0])
    names = [train_config(p, r).name for r in runs]
    trainer = MemberTrainer(models, [r["seed"] for r in runs], config, names, train.resolve_device(p.device))
    histories = trainer.fit(tr, te, checkpoint)
    for r, model in enumerate(models):
        model.load_state_dict(trainer.members.state_dict(r))
    return [stored_result(m, h, tr, te) | {"batched_members": len(runs)} for m, h in zip(models, histories)]


def run_grid(p: Params) -> list[dict]:
    """Every run's parameters: dataset × model × seed."""
    return [run_spec(p, d, m, s) for d in p.datasets for m in p.models for s in p.seeds]


def run(p: Params, store: RunStore | None = None) -> list[RunResult]:
    """Every (dataset, model, seed) run of the profile; finished runs are loaded, the rest trained (the seeds of one
    baseline as one batch with ``batch_runs``)."""
    store = store or RunStore()
    grid = run_grid(p)
    together = dict(group=batch_key, fn_group=functools.partial(train_members, p)) if p.batch_runs else {}
    return store.sweep(KIND, grid, functools.partial(train_one, p), device=p.device, **together)
