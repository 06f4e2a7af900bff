"""Many SSS-benchmark runs trained as one: every member is its own run of
:func:`repronets.sss.experiment.train_one` under the original protocol.

Members share a model key, width, loss and the protocol's settings (:func:`group_key`); they differ in repeat
(seed: validation split and initialisation) and training-set share. Each member has its own data: its train part
and validation part (their sizes differ between shares) are padded to the largest member's and masked, so a
member's full-batch loss is the mean over its own samples and its evaluations are over its own samples. Each has
its own Adam state (Adam is element-wise; all members start together, so its step count, one per stacked tensor,
is every member's), its own histories and its own stopping rule: a member that stops is frozen there
(:meth:`repronets.batched.Members.freeze_`; its later evaluations are dropped) and its result is that of its final
epoch, as the sequential run's; the group trains until every member has stopped or the cap is reached.

Only full-batch runs are batched (one step per epoch, as every profile here uses); a member whose train part is
larger than ``batch_size`` is trained on its own. Not bit-identical to the sequential runs: batched matrix
products and the masked sums add in another order; ``tests/test_sss.py`` bounds the difference.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .. import data, train
from ..batched import Members
from ..results import canonical

SHARED = (
    "code_version",
    "dataset",
    "model",
    "width",
    "loss",
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
CHECKPOINT_EVERY_S = 30.0


def group_key(run: dict) -> str:
    return canonical({k: run.get(k) for k in SHARED})


def train_members(p, runs: list[dict], checkpoint=None, dataset=None) -> list[dict]:
    """The results of ``runs`` (one :func:`group_key`), each as ``train_one`` returns it."""
    from .experiment import prepare, run_result, train_one

    if len({group_key(r) for r in runs}) != 1:
        raise ValueError("train_members: the runs do not share one group_key; train them apart")
    prepared = [prepare(p, r, dataset) for r in runs]
    alone = [i for i, (tr, *_) in enumerate(prepared) if len(tr) > runs[i]["batch_size"]]
    together = [i for i in range(len(runs)) if i not in alone]
    out: dict[int, dict] = {i: train_one(p, runs[i], dataset=dataset) for i in alone}
    if len(together) == 1:
        out[together[0]] = train_one(p, runs[together[0]], dataset=dataset)
    elif together:
        group = _Group([runs[i] for i in together], [prepared[i] for i in together], train.resolve_device(p.device))
        group.fit(checkpoint)
        for r, i in enumerate(together):
            tr, val, te, model = prepared[i]
            model.load_state_dict(group.members.state_dict(r))
            tested = train.evaluate(model, te.to(group.device), batch_size=runs[i]["eval_batch_size"])
            sizes = (len(tr), len(val), len(te))
            out[i] = run_result(p, model, group.histories[r], tested, group.train_time[r], sizes) | {
                "batched_members": len(together)
            }
    return [out[i] for i in range(len(runs))]


def _padded(splits: list[data.Split], device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(R, N_max, ...) inputs, (R, N_max) targets and (R, N_max) weights: 1/N_r on a member's own samples, 0 on
    padding, so a weighted sum is the member's mean."""
    n = max(len(s) for s in splits)
    x = torch.zeros(len(splits), n, *splits[0].x.shape[1:])
    y = torch.zeros(len(splits), n, dtype=splits[0].y.dtype)
    w = torch.zeros(len(splits), n)
    for r, s in enumerate(splits):
        x[r, : len(s)], y[r, : len(s)], w[r, : len(s)] = s.x, s.y, 1.0 / len(s)
    return x.to(device), y.to(device), w.to(device)


class _Group:
    def __init__(self, runs: list[dict], prepared: list, device: torch.device):
        from .experiment import OriginalStopping

        self.runs, self.device, self.size = runs, device, len(runs)
        self.members = Members([m.to(device) for *_, m in prepared])
        self.train = _padded([tr for tr, *_ in prepared], device)
        self.validation = _padded([val for _, val, *_ in prepared], device)
        first = runs[0]
        self.rule = OriginalStopping(None, None, first["min_epochs"], first["patience"], first["min_improvement"], 0)
        config = train.TrainConfig(
            epochs=first["max_epochs"], batch_size=first["batch_size"], **train.optimizer_options(first)
        )
        self.optimizer = train.OPTIMIZERS[config.optimizer](self.members.parameters(), config)
        self.epoch = 0
        self.stopped = [False] * self.size
        self.train_time = [0.0] * self.size
        self.histories = [
            {"training_loss_history": [], "accuracy_history": [], "val_accuracy_history": []} for _ in runs
        ]

    def losses(self, split) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's mean cross-entropy and accuracy over its own samples of ``split`` (padded), (R,) each."""
        x, y, w = split
        out = self.members(x)
        ce = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view_as(w)
        return (ce * w).sum(1), ((out.argmax(2) == y).float() * w).sum(1)

    def fit(self, checkpoint) -> None:
        if checkpoint and checkpoint.exists():
            self.restore(checkpoint)
        last_save = time.perf_counter()
        while self.epoch < self.runs[0]["max_epochs"] and not all(self.stopped):
            self.train_epoch()
            if checkpoint and time.perf_counter() - last_save >= CHECKPOINT_EVERY_S:
                self.save(checkpoint)
                last_save = time.perf_counter()

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
            "runs": canonical(self.runs),
            "epoch": self.epoch,
            "stopped": self.stopped,
            "train_time": self.train_time,
            "histories": self.histories,
            "members": self.members.checkpoint_state(),
        }
        train.save_checkpoint(path, {"optimizer": self.optimizer}, values)

    def restore(self, path) -> None:
        saved = train.read_checkpoint(path, map_location=self.device)
        if saved["runs"] != canonical(self.runs):
            raise ValueError(f"group checkpoint {path} was written for other runs; delete it to start over")
        self.members.load_checkpoint_state(saved["members"])
        train.restore_states(saved, {"optimizer": self.optimizer})
        self.epoch, self.stopped = saved["epoch"], saved["stopped"]
        self.train_time, self.histories = saved["train_time"], saved["histories"]
