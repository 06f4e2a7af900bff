"""One trial of paper 3: one model trained on one run's splits under the original protocol (the stopping rule of
:class:`OriginalStopping`), and the result it stores. ``p`` is the notebook's parameters
(:class:`repronets.sss.experiment.Params`: data root, device); the grid, the sweep, the complexity measurements and
the original's result file are in :mod:`repronets.sss.experiment`, many trials trained as one in
:mod:`repronets.sss.grouped`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..core import data, train
from ..core.counting import count_parameters
from . import models
from .layer import SSSLinear

# The per-epoch lists of a run, as the original's results file names them.
HISTORY_KEYS = ("training_loss_history", "accuracy_history", "val_accuracy_history")

# The value range of each dataset as loaded (images in [0, 1]) → the original's raw range.
RAW_SCALE = {"digits": 16.0, "mnist": 255.0, "fashion_mnist": 255.0, "cifar10": 255.0, "cifar100": 255.0, "svhn": 255.0}


class OriginalStopping:
    """The original's per-epoch evaluation and stopping rule (module docstring), as a ``train.fit`` callback; its
    histories are part of the checkpoint, so a resumed run continues them."""

    def __init__(
        self,
        train_part: data.Split,
        validation: data.Split,
        min_epochs: int,
        patience: int,
        min_improvement: float,
        eval_batch_size: int,
    ):
        self.train_part, self.validation = train_part, validation
        self.min_epochs, self.patience, self.min_improvement = min_epochs, patience, min_improvement
        self.eval_batch_size = eval_batch_size
        self.history = {k: [] for k in HISTORY_KEYS}

    def after_epoch(self, state) -> None:
        fit = train.evaluate(state.model, self.train_part, batch_size=self.eval_batch_size)
        val = train.evaluate(state.model, self.validation, batch_size=self.eval_batch_size)
        self.history["training_loss_history"].append(fit["loss"])
        self.history["accuracy_history"].append(fit["acc"])
        self.history["val_accuracy_history"].append(val["acc"])
        state.stop = self.should_stop(self.history["val_accuracy_history"])

    def should_stop(self, val_acc: list[float]) -> bool:
        epochs, p = len(val_acc), self.patience
        if epochs <= self.min_epochs or epochs <= 2 * p:
            return False
        return max(val_acc[-p:]) < max(val_acc[:-p]) + self.min_improvement

    def state_dict(self) -> dict:
        return {"history": self.history}

    def load_state_dict(self, saved: dict, state) -> None:
        self.history = saved["history"]


def share_of(split: data.Split, share: float, seed: int) -> data.Split:
    """The first ⌊share·N⌋ samples of the split shuffled once with ``seed`` (nested across shares, as the original's
    shuffle-then-train_test_split(shuffle=False))."""
    order = np.random.default_rng(seed).permutation(len(split))
    return split.subset(order[: max(1, math.floor(share * len(split)))])


def validation_split(split: data.Split, fraction: float, seed: int) -> tuple[data.Split, data.Split]:
    """(train part, validation part) with ⌈fraction·N⌉ validation samples, shuffled as sklearn's train_test_split."""
    from sklearn.model_selection import train_test_split

    rest, val = train_test_split(np.arange(len(split)), test_size=fraction, random_state=seed, shuffle=True)
    return split.subset(rest), split.subset(val)


def prepare_inputs(train_part: data.Split, others: list[data.Split], inputs: str) -> list[data.Split]:
    """Raw: the original's ranges; scaled: images as loaded ([0, 1]), feature vectors standardised with the training
    part's statistics."""
    splits = [train_part, *others]
    name = train_part.name
    if inputs == "raw":
        scale = RAW_SCALE.get(name, 1.0)
        return [dataclasses.replace(s, x=s.x * scale) for s in splits]
    if name in data.TABULAR_DATASETS:
        mean, std = train_part.x.mean(0), train_part.x.std(0).clamp_min(1e-6)
        return [dataclasses.replace(s, x=(s.x - mean) / std) for s in splits]
    return splits


def load_dataset(p, name: str) -> tuple[data.Split, data.Split]:
    return data.train_test(name, root=p.data_root or None, download=p.download)


def prepare(p, run: dict, dataset=None):
    """A run's (train part, validation, test) splits as it sees them and its initialised model; ``dataset``: the
    (train, test) splits when the caller has them already."""
    full, test = dataset or load_dataset(p, run["dataset"])
    subset = share_of(full, run["share"], run["split_seed"])
    train_part, validation = validation_split(subset, run["validation_fraction"], run["seed"])
    train_part, validation, test = prepare_inputs(train_part, [validation, test], run["inputs"])
    output = "softmax" if run["loss"] == "double_softmax" else "logits"
    model = models.build(run["model"], train_part.input_shape, full.num_classes, run["width"], output, run["seed"])
    return train_part, validation, test, model


def run_label(run: dict) -> str:
    return f"{run['dataset']}/{run['share']}/{run['model']}/r{run['repeat']}/{run['loss']}"


def train_one(p, run: dict, checkpoint=None, dataset=None) -> dict:
    """One run of the grid; ``dataset``: its (train, test) splits when the caller has them already."""
    train_part, validation, test, model = prepare(p, run, dataset)
    stopping = OriginalStopping(
        train_part, validation, run["min_epochs"], run["patience"], run["min_improvement"], run["eval_batch_size"]
    )
    config = train.TrainConfig(
        epochs=run["max_epochs"],
        batch_size=run["batch_size"],
        **train.optimizer_options(run),
        device=p.device,
        seed=run["seed"],
        eval_batch_size=run["eval_batch_size"],
        log_steps=False,
        checkpoint_every_s=train.SHORT_EPOCHS_CHECKPOINT_S,
        name=run_label(run),
    )
    history = train.fit(model, train_part, config, callbacks=[stopping], checkpoint=checkpoint)
    tested = train.evaluate(model, test.to(next(model.parameters()).device), batch_size=run["eval_batch_size"])
    sizes = (len(train_part), len(validation), len(test))
    return stored_result(p, model, stopping.history, tested, sum(history.epochs["train_time"]), sizes)


def stored_result(p, model, histories: dict, tested: dict, train_time_s: float, sizes) -> dict:
    """A run's stored result, from its final model (sequential, or one member of a batch)."""
    result = {
        **histories,
        "test_loss": tested["loss"],
        "test_accuracy": tested["acc"],
        "nb_model_parameters": count_parameters(model, trainable_only=False),
        "epochs": len(histories["val_accuracy_history"]),
        "train_time_s": train_time_s,
        "train_samples": sizes[0],
        "validation_samples": sizes[1],
        "test_samples": sizes[2],
        "device": str(train.resolve_device(p.device)),
    }
    hidden = model.head.hidden if isinstance(model, models.ConvNet) else model.hidden
    if isinstance(hidden, SSSLinear):
        result["hankel_ranks_after_training"] = list(models.hankel_ranks(hidden.dense(), hidden.stages))
    return result
