"""Many SSS-benchmark runs trained as one: every member is its own run of
:func:`repronets.sss.trial.train_one` under the original protocol.

Members share a model key, width, training-set share and the protocol's settings (:func:`group_key`); they differ
in repeat (seed: validation split and initialisation) and loss (the double softmax is applied per member). Each
member has its own data (its train and validation parts, of one size within a share), its own Adam state (Adam is
element-wise; all members start together, so its step count, one per stacked tensor, is every member's), its own
histories and its own stopping rule: a member that stops is frozen there
(:meth:`repronets.core.members.Members.freeze_`;
its later evaluations are dropped) and its result is that of its final epoch, as the sequential run's; the group
trains until every member has stopped or the cap is reached.

Why not one group across shares: their train parts differ in size, and padding them to the largest costs the
quick profile's four shares 2.2× the multiply-adds; grouped per share, notebook 03's runs took 123 s of training
against 173 s padded (1 thread, measured on this project's 2-core CPU).

Only full-batch runs are batched (one step per epoch, as every profile here uses); a member whose train part is
larger than ``batch_size`` is trained on its own. Not bit-identical to the sequential runs: batched matrix
products add in another order; ``tests/test_sss_benchmark.py`` bounds the difference.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from ..core import data, train
from ..core.members import Members, restore_batch, save_batch
from ..runs.results import canonical
from . import models
from .trial import HISTORY_KEYS, OriginalStopping, prepare, stored_result, train_one

SHARED = (
    "code_version",
    "dataset",
    "share",
    "model",
    "width",
    "inputs",
    "split_seed",
    "validation_fraction",
    "optimizer",
    "lr",
    "weight_decay",
    "batch_size",
    "eval_batch_size",
    "min_epochs",
    "max_epochs",
    "patience",
    "min_improvement",
)
MAX_MEMBERS = 64


def group_key(run: dict) -> str:
    return canonical({k: run.get(k) for k in SHARED})


def train_members(p, runs: list[dict], checkpoint=None, dataset=None) -> list[dict]:
    """The results of ``runs`` (one :func:`group_key`), each as ``train_one`` returns it."""
    if len({group_key(r) for r in runs}) != 1:
        raise ValueError("train_members: the runs do not share one group_key; train them apart")
    prepared = [prepare(p, r, dataset) for r in runs]
    alone = [i for i, (tr, *_) in enumerate(prepared) if len(tr) > runs[i]["batch_size"]]
    together = [i for i in range(len(runs)) if i not in alone]
    out: dict[int, dict] = {i: train_one(p, runs[i], dataset=dataset) for i in alone}
    if len(together) == 1:
        out[together[0]] = train_one(p, runs[together[0]], dataset=dataset)
    elif together:
        group = _SSSGroup([runs[i] for i in together], [prepared[i] for i in together], train.resolve_device(p.device))
        group.fit(checkpoint)
        for r, i in enumerate(together):
            tr, val, te, model = prepared[i]
            model.load_state_dict(group.members.state_dict(r))
            tested = train.evaluate(model, te.to(group.device), batch_size=runs[i]["eval_batch_size"])
            sizes = (len(tr), len(val), len(te))
            out[i] = stored_result(p, model, group.histories[r], tested, group.train_time[r], sizes) | {
                "batched_members": len(together)
            }
    return [out[i] for i in range(len(runs))]


def _stacked(splits: list[data.Split], device) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, N, ...) inputs and (R, N) targets of members whose splits have one size (the runs of one share)."""
    sizes = {len(s) for s in splits}
    if len(sizes) != 1:
        raise ValueError(f"members of one batch need splits of one size; got {sorted(sizes)}")
    return torch.stack([s.x for s in splits]).to(device), torch.stack([s.y for s in splits]).to(device)


class _SSSGroup:
    def __init__(self, runs: list[dict], prepared: list, device: torch.device):
        self.runs, self.device, self.size = runs, device, len(runs)
        self.members = Members([m.to(device) for *_, m in prepared])
        # The double softmax (models.TwoHiddenLayerNet's output="softmax") differs between members of one group, so
        # the stacked model ends in logits and the softmax is applied here to the members whose loss has it.
        head = self.members.base.head if isinstance(self.members.base, models.ConvNet) else self.members.base
        head.softmax = False
        softmax = [r["loss"] == "double_softmax" for r in runs]
        self.softmax = torch.tensor(softmax, device=device)[:, None, None] if any(softmax) else None
        self.train = _stacked([tr for tr, *_ in prepared], device)
        self.validation = _stacked([val for _, val, *_ in prepared], device)
        first = runs[0]
        self.rule = OriginalStopping(None, None, first["min_epochs"], first["patience"], first["min_improvement"], 0)
        config = train.TrainConfig(
            epochs=first["max_epochs"], batch_size=first["batch_size"], **train.optimizer_options(first)
        )
        self.optimizer = train.OPTIMIZERS[config.optimizer](self.members.parameters(), config)
        self.epoch = 0
        self.stopped = [False] * self.size
        self.train_time = [0.0] * self.size
        self.histories = [{k: [] for k in HISTORY_KEYS} for _ in runs]

    def losses(self, split) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's mean cross-entropy and accuracy over its own samples of ``split``, (R,) each."""
        x, y = split
        out = self.members(x)
        if self.softmax is not None:
            out = torch.where(self.softmax, out.softmax(-1), out)
        ce = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view_as(y)
        return ce.mean(1), (out.argmax(2) == y).float().mean(1)

    def fit(self, checkpoint) -> None:
        saved = train.resume_from(checkpoint, map_location=self.device)
        if saved is not None:
            self.restore(saved, checkpoint)
        clock = train.CheckpointClock(checkpoint, train.SHORT_EPOCHS_CHECKPOINT_S)
        while self.epoch < self.runs[0]["max_epochs"] and not all(self.stopped):
            self.train_epoch()
            clock.after_epoch(self.save)

    def train_epoch(self) -> None:
        """One full-batch step of every member, then the protocol's evaluations and each running member's rule."""
        started = time.perf_counter()
        loss, _ = self.losses(self.train)
        self.optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()  # members' parameters are disjoint: each gets its own loss's gradient
        self.optimizer.step()
        self.members.restore_frozen_()
        seconds = time.perf_counter() - started
        self.epoch += 1
        with torch.no_grad():
            fit_loss, fit_acc = (v.tolist() for v in self.losses(self.train))
            val_acc = self.losses(self.validation)[1].tolist()
        for r, h in enumerate(self.histories):
            if self.stopped[r]:
                continue
            self.train_time[r] += seconds / self.size
            h["training_loss_history"].append(fit_loss[r])
            h["accuracy_history"].append(fit_acc[r])
            h["val_accuracy_history"].append(val_acc[r])
            if self.rule.should_stop(h["val_accuracy_history"]):
                self.stopped[r] = True
                self.members.freeze_(r, list(self.members.tensors))

    def save(self, path) -> None:
        values = {
            "epoch": self.epoch,
            "stopped": self.stopped,
            "train_time": self.train_time,
            "histories": self.histories,
        }
        save_batch(path, canonical(self.runs), self.members, self.optimizer, values)

    def restore(self, saved: dict, path) -> None:
        restore_batch(saved, path, canonical(self.runs), self.members, self.optimizer)
        self.epoch, self.stopped = saved["epoch"], saved["stopped"]
        self.train_time, self.histories = saved["train_time"], saved["histories"]
