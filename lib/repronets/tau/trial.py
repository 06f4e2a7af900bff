"""One trial of paper 1: one τ-model trained from one run's parameters (the dict that
:func:`repronets.tau.experiment.run_spec` makes), and the result it stores. The grid, the sweep and the original's
result files are in :mod:`repronets.tau.experiment`; many trials trained as one batch in :mod:`repronets.tau.grouped`.
"""

from __future__ import annotations

import math

import torch

from ..core import data, train
from ..core.counting import count_parameters
from .models import ARCHITECTURES
from .training import AdaptivePruning, DependentLastTau, TauTracker, objective

# The run keys of one architecture's own options: a run holds its architecture's (see run_spec); the others are
# absent or None there.
OPTIONS = ("fixed", "memory", "gamma", "eps")


def build_model(run: dict, in_features: int, num_classes: int):
    """The run's architecture, by name from the library's registry, initialised from the run's seed."""
    torch.manual_seed(run["seed"])
    options = {k: run[k] for k in OPTIONS if run.get(k) is not None}
    return ARCHITECTURES.create(
        run["architecture"],
        in_features,
        num_classes,
        width=run["width"],
        blocks=run["blocks"],
        T=run["T"],
        tau_trainable=run["tau_trainable"],
        dependent_last=run["dependent_last"],
        **options,
    )


def run_label(run: dict) -> str:
    """How progress bars and errors name a run, e.g. ``resnet/mnist/T1/fix-all/seed0``."""
    mode = "var" if run["tau_trainable"] else f"fix-{run['fixed'] or 'all'}"
    return f"{run['architecture']}/{run['dataset']}/T{run['T']:g}/{mode}/seed{run['seed']}"


def train_one(p, run: dict, checkpoint=None) -> dict:
    """Train the run (``p``: the notebook's parameters, for the data root and device) and return its result."""
    tr, te = data.train_test(
        run["dataset"], root=p.data_root or None, download=p.download, train_limit=run["train_limit"]
    )
    in_features = math.prod(tr.input_shape)
    model = build_model(run, in_features, tr.num_classes)
    tracker = TauTracker(len(model.tau_tensors()))
    callbacks = ([DependentLastTau(run["T"])] if run["dependent_last"] else []) + [tracker]
    pruner = AdaptivePruning(run["prune_crit"], run["pruning_rule"]) if run["pruning"] else None
    if pruner:
        callbacks.append(pruner)
    config = train.TrainConfig(
        epochs=run["epochs"],
        batch_size=run["batch_size"],
        **train.optimizer_options(run),
        seed=run["seed"],
        device=p.device,
        eval_before=True,
        name=run_label(run),
    )
    history = train.fit(
        model,
        tr,
        config,
        test_data=te,
        callbacks=callbacks,
        checkpoint=checkpoint,
        loss_fn=objective(run["T"], run["horizon"], run["l1"], run["l2"]),
    )
    return stored_result(run, model, history, tracker.table(), pruner.events if pruner else [], len(tr), len(te))


def stored_result(run: dict, model, history: train.History, tau_tracking, pruning_events, n_train, n_test) -> dict:
    """A run's stored result, from its trained model and history (sequential or one member of a batch)."""
    T = int(run["T"]) if float(run["T"]).is_integer() else run["T"]
    return {
        # The original's keys (docs/papers/tau.md §4); the per-step series are stored as tensors (see original_record).
        "test_losses": history.epochs["test_loss"],
        "test_accs": history.epochs["test_acc"],
        "lr": run["lr"],
        "n_epochs": run["epochs"],
        "batch_size": run["batch_size"],
        "tau_is_trainable": run["tau_trainable"],
        "adaptive_pruning": run["pruning"],
        "dependent_last_tau": run["dependent_last"],
        "l1_reg": run["l1"],
        "l2_reg": run["l2"],
        "tau_sum_factor": run["horizon"],
        "T": T,
        "internal_dimension": run["width"],
        # The original records 5 for the ResNet but its incremented count, 6, for the FracDNN.
        "number_of_tau_blocks": run["blocks"] + (run["architecture"] == "fracdnn"),
        # Ours.
        "architecture": run["architecture"],
        "dataset": run["dataset"],
        "fixed": run["fixed"],
        "final_test_acc": history.epochs["test_acc"][-1],
        "final_taus": model.taus().tolist(),
        "parameters": count_parameters(model, trainable_only=True),
        "pruning_events": pruning_events,
        # per sample, the final (pruned) network's: its linear layers' weights (biases, activations and τ scalings,
        # a few per cent at width 100, left out); each pruning event holds its block's
        "forward_multiply_adds": sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)),
        "train_samples": n_train,
        "test_samples": n_test,
        "wall_time_train_s": history.wall_time,
        "tensors": {
            "losses": torch.tensor(history.steps["loss"]),
            "clean_losses": torch.tensor(history.steps["ce"]),
            "tau_tracking": tau_tracking,
        },
    }
